"""What a run makes and uses: artifacts, checkpoints, models and datasets, with their lineage."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from registrum import validation as v
from registrum.client import files as f
from registrum.client.settings import ClientSettings
from registrum.client.transport import Transport, open_transport
from registrum.client.writer import Writer
from registrum.entities import Artifact, ModelVersion, encode_nonfinite
from registrum.errors import InvalidArgument, RegistrumError, StoreUnavailable

log = logging.getLogger("registrum")


def _default_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "artifact"


class RunOutputs:
    """Run methods for files, models and datasets (mixed into `Run`)."""

    id: str
    project: str
    name: str | None
    settings: ClientSettings
    _writer: Writer | None
    _transport: Transport | None = None
    _model: Artifact | dict[str, Any] | None = None  # the last model, or its pending event

    def _store(self) -> Transport:
        """A transport for calls that answer now, once the run itself has reached the store."""
        if self._writer is None or self.settings.mode == "offline":
            raise StoreUnavailable(
                f"run {self.id} is {self.settings.mode}: the store cannot answer"
            )
        if not self._writer.flush(self.settings.init_timeout):
            raise StoreUnavailable(f"the store has not received run {self.id} yet")
        if self._transport is None:
            self._transport = open_transport(
                self.settings.store, home=self.settings.home, token=self.settings.token
            )
        return self._transport

    def _guard(self, what: str, exc: RegistrumError) -> None:
        if self.settings.strict:
            raise exc
        log.warning("registrum: could not %s: %s", what, exc)

    def log_artifact(
        self,
        path: str | Path,
        *,
        name: str | None = None,
        type: str = "artifact",
        metadata: Mapping[str, Any] | None = None,
    ) -> Artifact | None:
        """Uploads a file or folder as the next version of artifact `name` and returns it.

        Files the store has are not sent again. Offline, or with the store
        unreachable, the files are snapshotted and sent in the background (None).
        """
        logged = self._log_files(path, name=name, type=type, metadata=metadata)
        return logged if isinstance(logged, Artifact) else None

    def _log_files(
        self,
        path: str | Path,
        *,
        name: str | None,
        type: str,
        metadata: Mapping[str, Any] | None,
        keep: bool = False,
    ) -> Artifact | dict[str, Any] | None:
        """The artifact now, or the event that sends it in the background (whose snapshots it
        keeps for a registration, with `keep`), or None when the run is disabled."""
        local = f.collect(path)
        name = v.name(name or _default_name(Path(path).name), "artifact name")
        v.name(type, "artifact type")
        if self._writer is None:
            return None
        try:
            store = self._store()
            artifact: Artifact = f.upload_then(
                store,
                local,
                lambda manifest: store.create_artifact(
                    self.project,
                    name,
                    type=type,
                    files=manifest,
                    run_id=self.id,
                    metadata=dict(metadata or {}),
                ),
                label=f"uploading {name}",
            )
            return artifact
        except StoreUnavailable:
            pairs = [(x.path, x.source) for x in local]
            return self._in_background(pairs, name=name, type=type, metadata=metadata, keep=keep)
        except RegistrumError as exc:
            self._guard(f"log artifact {name}", exc)
            return None

    def log_checkpoint(
        self,
        path: str | Path,
        *,
        step: int | None = None,
        metrics: Mapping[str, float] | None = None,
        name: str = "checkpoints",
        best: bool = False,
        keep_earlier_best: bool = False,
    ) -> None:
        """Takes a snapshot of a checkpoint file (or folder) now, without reading it, and
        uploads it in the background: the caller never waits for hashing or the network.

        Args:
            best: this checkpoint is the run's best so far. A project's retention policy
                always keeps the run's latest best, and the earlier best checkpoints of
                `name` are deleted when it arrives (collected later by `registrum gc`)...
            keep_earlier_best: ...unless this is True.
        """
        pairs = f.listing(path)
        name = v.name(name, "artifact name")
        meta: dict[str, Any] = {
            "step": step,
            "metrics": encode_nonfinite(dict(metrics or {})),
            "file": str(path),
        }
        if best:
            meta["best"] = True
            meta["replaces_best"] = not keep_earlier_best
        if self._writer is not None:
            self._in_background(pairs, name=name, type="checkpoint", metadata=meta)

    def _in_background(
        self,
        pairs: list[tuple[str, Path]],
        *,
        name: str,
        type: str,
        metadata: Mapping[str, Any] | None,
        keep: bool = False,
    ) -> dict[str, Any]:
        assert self._writer is not None
        folder = self._writer.spool.path / "files"
        event = {
            "project": self.project,
            "name": name,
            "type": type,
            "files": [{"path": rel, **f.snapshot(source, folder)} for rel, source in pairs],
            "metadata": dict(metadata or {}),
            "keep": keep,
        }
        self._writer.submit("log_artifact", **event)
        return event

    def log_model(
        self,
        path: str | Path,
        *,
        flavor: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Artifact | None:
        """Logs the run's candidate model (an artifact of type `model`); not registered yet.

        Returns the artifact, or None when the store cannot be reached: the model is then
        sent in the background, and `register_model` without `model=` still registers it.
        """
        if flavor is not None:
            v.name(flavor, "flavor")
        meta = {"flavor": flavor, **dict(metadata or {})}
        logged = self._log_files(
            path,
            name=name or f"{_default_name(self.name or self.id)}-model",
            type="model",
            metadata=meta,
            keep=True,
        )
        if logged is None:
            return None
        self._model = logged
        return logged if isinstance(logged, Artifact) else None

    def register_model(
        self,
        name: str,
        *,
        model: Artifact | None = None,
        path: str | Path | None = None,
        flavor: str | None = None,
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, Any] | None = None,
        aliases: Sequence[str] = (),
        signature: Mapping[str, Any] | None = None,
        description: str | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> ModelVersion | None:
        """Registers a model version from this run.

        The files are `model` (from `log_model`), `path`, or the run's last
        logged model. Returns the version. When the store cannot be reached
        (offline, or down), the registration is kept in the run's spool and made
        when the run is delivered (by the run itself, or `registrum sync`), and
        this returns None.
        """
        name = v.name(name, "model name")
        if model is not None and path is not None:
            raise InvalidArgument("give model= or path=, not both")
        if flavor is not None:
            v.name(flavor, "flavor")
        for alias in aliases:
            v.alias(alias)
        chosen: Artifact | dict[str, Any] | None = model
        if path is not None:
            self.log_model(path, flavor=flavor)
            chosen = self._model
        chosen = chosen or self._model
        if chosen is None:
            if self._writer is None:
                return None
            raise InvalidArgument(
                "nothing to register: pass path=, or model= from run.log_model(...)"
            )
        if isinstance(chosen, Artifact):
            flavor = flavor or (chosen.metadata or {}).get("flavor")
        else:
            flavor = flavor or chosen["metadata"].get("flavor")
        request: dict[str, Any] = {
            "flavor": flavor,
            "metrics": dict(metrics) if metrics is not None else None,
            "params": dict(params) if params is not None else None,
            "aliases": list(aliases),
            "signature": dict(signature) if signature is not None else None,
            "description": description,
            "tags": v.string_map(tags, "tags") if tags is not None else None,
            # One key for this registration, kept in the spool if it is queued: however often
            # it is sent (an answer lost, a retry, `registrum sync`), one version is made.
            "idempotency_key": str(uuid.uuid4()),
        }
        if self._writer is None:
            return None
        try:
            if not isinstance(chosen, Artifact):
                raise StoreUnavailable("the model is still on its way to the store")
            version: ModelVersion = self._store().register_model_version(
                name, run_id=self.id, artifact_id=chosen.id, **request
            )
            return version
        except StoreUnavailable:
            self._queue_registration(name, chosen, request)
            return None
        except RegistrumError as exc:
            self._guard(f"register model {name}", exc)
            return None

    def _queue_registration(
        self, name: str, model: Artifact | dict[str, Any], request: dict[str, Any]
    ) -> None:
        assert self._writer is not None
        if request["metrics"] is not None:
            request = dict(request, metrics=encode_nonfinite(request["metrics"]))
        reference = {"artifact_id": model.id} if isinstance(model, Artifact) else model
        self._writer.submit("register_model", name=name, model=reference, **request)
        log.info("registrum: registration of %s is queued until the store answers", name)

    def use_model(self, ref: str) -> Path:
        """Downloads a model version (`name@alias`, `name@3`) into the local cache, records
        that this run used it, and returns the folder holding its files. An offline run
        reads the version from its store and records the use in its spool, delivered with
        the rest of the run."""
        v.model_ref(ref)
        offline = self._writer is not None and self.settings.mode == "offline"
        if offline:
            if self._transport is None:
                self._transport = open_transport(
                    self.settings.store, home=self.settings.home, token=self.settings.token
                )
            store = self._transport
        else:
            store = self._store()
        version: ModelVersion = store.get_model_version(ref)
        dest = self.settings.home / "cache" / "models" / version.model / str(version.version)
        f.download(
            store, [x.to_dict() for x in version.artifact.files], dest, label=f"downloading {ref}"
        )
        if offline:
            assert self._writer is not None
            self._writer.submit("add_run_input", kind="model_version", target_id=version.id)
        else:
            store.add_run_input(self.id, kind="model_version", target_id=version.id, role="input")
        return dest

    def use_dataset(
        self,
        data: Any,
        *,
        name: str,
        role: str = "train",
        metadata: Mapping[str, Any] | None = None,
    ) -> Any:
        """Fingerprints `data` (arrays, frames, tensors, lists, files, folders) and records the
        dataset version this run used. Same content, same version. Returns the fingerprint."""
        from registrum.capture.fingerprint import fingerprint

        name = v.name(name, "dataset name")
        v.name(role, "role")
        print_ = fingerprint(data)
        if self._writer is not None:
            self._writer.submit(
                "log_dataset",
                project=self.project,
                name=name,
                fingerprint=print_.digest,
                schema=dict(print_.schema, kind=print_.kind),
                rows=print_.rows,
                metadata=dict(metadata or {}),
                role=role,
            )
        return print_
