"""What a run makes and uses: artifacts, checkpoints, models and datasets, with their lineage."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from registrum.client import files as f
from registrum.client.settings import ClientSettings
from registrum.client.transport import open_transport
from registrum.client.writer import Writer
from registrum.entities import Artifact, ModelVersion
from registrum.errors import InvalidArgument, RegistrumError, StoreUnavailable
from registrum.store import validation as v

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
    _transport: Any = None
    _model: Artifact | None = None

    def _store(self) -> Any:
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
        local = f.collect(path)
        name = v.name(name or _default_name(Path(path).name), "artifact name")
        v.name(type, "artifact type")
        if self._writer is None:
            return None
        try:
            store = self._store()
            f.upload(store, local, label=f"uploading {name}")
            artifact: Artifact = store.create_artifact(
                self.project,
                name,
                type=type,
                files=[x.manifest() for x in local],
                run_id=self.id,
                metadata=dict(metadata or {}),
            )
            return artifact
        except StoreUnavailable:
            self._in_background(local, name=name, type=type, metadata=metadata)
            return None
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
    ) -> None:
        """Snapshots a checkpoint file (or folder) now and uploads it in the background."""
        local = f.collect(path)
        v.name(name, "artifact name")
        meta: dict[str, Any] = {"step": step, "metrics": dict(metrics or {}), "file": str(path)}
        if self._writer is not None:
            self._in_background(local, name=name, type="checkpoint", metadata=meta)

    def _in_background(
        self, local: list[f.LocalFile], *, name: str, type: str, metadata: Mapping[str, Any] | None
    ) -> None:
        assert self._writer is not None
        folder = self._writer.spool.path / "files"
        snapped = [{"path": x.path, "source": str(f.snapshot(x.source, folder))} for x in local]
        self._writer.submit(
            "log_artifact",
            project=self.project,
            name=name,
            type=type,
            files=snapped,
            metadata=dict(metadata or {}),
        )

    def log_model(
        self,
        path: str | Path,
        *,
        flavor: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Artifact | None:
        """Logs the run's candidate model (an artifact of type `model`); not registered yet."""
        if flavor is not None:
            v.name(flavor, "flavor")
        meta = {"flavor": flavor, **dict(metadata or {})}
        model = self.log_artifact(
            path,
            name=name or f"{_default_name(self.name or self.id)}-model",
            type="model",
            metadata=meta,
        )
        if model is not None:
            self._model = model
        return model

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
    ) -> ModelVersion | None:
        """Registers a model version from this run.

        The files are `model` (from `log_model`), `path`, or the run's last
        logged model. Returns the version, or None if the store could not be reached.
        """
        v.name(name, "model name")
        if model is not None and path is not None:
            raise InvalidArgument("give model= or path=, not both")
        if path is not None:
            model = self.log_model(path, flavor=flavor)
        model = model or self._model
        if model is None:
            raise InvalidArgument(
                "nothing to register: pass path=, or model= from run.log_model(...)"
            )
        try:
            version: ModelVersion = self._store().register_model_version(
                name,
                run_id=self.id,
                artifact_id=model.id,
                flavor=flavor or (model.metadata or {}).get("flavor"),
                metrics=dict(metrics) if metrics is not None else None,
                params=dict(params) if params is not None else None,
                aliases=list(aliases),
                signature=dict(signature) if signature is not None else None,
                description=description,
            )
            return version
        except RegistrumError as exc:
            self._guard(f"register model {name}", exc)
            return None

    def use_model(self, ref: str) -> Path:
        """Downloads a model version (`name@alias`, `name@3`) into the local cache, records
        that this run used it, and returns the folder holding its files."""
        v.model_ref(ref)
        store = self._store()
        version: ModelVersion = store.get_model_version(ref)
        dest = self.settings.home / "cache" / "models" / version.model / str(version.version)
        f.download(
            store, [x.to_dict() for x in version.artifact.files], dest, label=f"downloading {ref}"
        )
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

        v.name(name, "dataset name")
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
