"""`registrum import neptune`: a neptune-exporter export loaded into a Registrum store.

What maps to what (docs/coming-from-neptune.md has the table):

* a Neptune project (`workspace/project`) → the project `workspace.project` (`project_name`);
* a run → a run whose id is the Neptune run id (`run_id_for`), so a second import finds it;
  `sys/name` → its name and its `group` tag, `sys/forking/parent` → its parent run,
  `sys/owner` → user, `sys/creation_time` → start, `sys/modification_time` → end,
  `sys/failed`/`sys/state` → status, `sys/tags` → tags, `sys/description` → description;
* int, float, bool, string, datetime (ISO 8601 text) and string_set (a sorted list)
  attributes → typed params;
* float series → metrics with their exact decimal steps (a per-series step scale);
* string series and histogram series → `media` artifacts (one JSON Lines file per series);
* files, file sets and file series → artifacts (uploaded once per content);
* model-registry models and model versions → registered models and versions; each version
  is also a run (job type `model-version`) holding its attributes, and its source run.

Writes go through a `Transport`, so an embedded store and `--store http://...` work alike.
Every write is idempotent (deterministic run ids and batch `seq`s, identical artifacts
returned as they are, versions found by their `neptune.id` tag), and a run gets its
`neptune.import` tag only once everything of it is stored: an interrupted import resumes
with the runs it had not finished, and a repeated one skips every complete run.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from registrum import validation as v
from registrum.client import files as f
from registrum.client.settings import ClientSettings
from registrum.client.transport import Transport, open_transport
from registrum.errors import InvalidArgument, ModelNotFound, RegistrumError, RunNotFound
from registrum.importers import _neptune_export as ex
from registrum.importers import _neptune_mapping as m
from registrum.importers._neptune_mapping import project_name, run_id_for
from registrum.importers._neptune_media import media_files
from registrum.importers._progress import ImportReport, ProgressBar

__all__ = ["import_neptune", "project_name", "run_id_for"]

MARKER = "neptune.import"  # tag set last: the run is complete
BATCH = 100_000  # points per metric batch


def import_neptune(
    data_path: str | Path,
    files_path: str | Path,
    *,
    store: str | None = None,
    projects: Sequence[str] | None = None,
    stream: TextIO | None = None,
) -> ImportReport:
    """Loads a neptune-exporter export (`data_path`: its Parquet parts, `files_path`: its files)
    into `store` (a URL; default `REGISTRUM_URL`, else the embedded store).

    `projects` picks Neptune projects by id (`workspace/project`) or by the Registrum name
    they map to. Returns the report; `report.ok` is False when anything failed, and running
    the same import again resumes there. A missing folder or a file that is not an export
    raises `InvalidArgument` before anything is written.
    """
    data, files = Path(data_path), Path(files_path)
    export = ex.discover(data)
    if not files.is_dir():
        raise InvalidArgument(
            f"files path {files} is not a folder: give the folder neptune-exporter wrote "
            "with --files-path"
        )
    chosen = _choose(export, projects)
    settings = ClientSettings.from_env(store=store)
    transport = open_transport(settings.store, home=settings.home, token=settings.token)
    report = ImportReport("neptune")
    try:
        for project_id in chosen:
            _ProjectImport(transport, project_id, export[project_id], files, report).run(stream)
    finally:
        transport.close()
    return report


def _choose(export: dict[str, list[ex.Entity]], projects: Sequence[str] | None) -> list[str]:
    if not projects:
        return sorted(export)
    by_name = {project_name(p): p for p in export}
    chosen = []
    for wanted in projects:
        found = wanted if wanted in export else by_name.get(wanted)
        if found is None:
            raise InvalidArgument(
                f"project {wanted!r} is not in the export; it holds {', '.join(sorted(export))}"
            )
        chosen.append(found)
    return list(dict.fromkeys(chosen))


@dataclass
class _Done:
    """What the import of one entity left for the registry step."""

    run_id: str
    files: list[dict[str, Any]] = field(default_factory=list)


class _ProjectImport:
    """One Neptune project: its runs (parents first), then its model registry."""

    def __init__(
        self,
        transport: Transport,
        project_id: str,
        entities: list[ex.Entity],
        files_path: Path,
        report: ImportReport,
    ) -> None:
        self.store = transport
        self.project_id = project_id
        self.project = project_name(project_id)
        self.entities = entities
        self.files_path = files_path
        self.report = report
        self.ids = {e.run_id for e in entities if e.scope == "runs"}

    def run(self, stream: TextIO | None) -> None:
        self.report.projects += 1
        runs = [e for e in self.entities if e.scope == "runs"]
        versions, models = self._registry_entities()
        label = f"{self.project_id} → {self.project}"
        with ProgressBar(label, len(runs) + len(versions), stream=stream) as bar:
            for entity in m.parents_first(runs, ex.fork_parents(runs)):
                self._guarded(entity, job_type=None)
                bar.advance(note=entity.run_id)
            self._registry(models, versions, bar)

    def _registry_entities(
        self,
    ) -> tuple[list[tuple[ex.Entity, ex.EntityData]], dict[str, ex.EntityData | None]]:
        """The model versions (with their data) and the models (id → data, None where the
        export holds versions of a model but not the model itself)."""
        versions = []
        models: dict[str, ex.EntityData | None] = {}
        for entity in self.entities:
            if entity.scope == "models":
                models[entity.run_id] = ex.read_entity(entity)
        for entity in self.entities:
            if entity.scope == "model_versions":
                data = ex.read_entity(entity)
                versions.append((entity, data))
                models.setdefault(m.model_of(entity.run_id, data), None)
        versions.sort(key=lambda pair: m.version_order(pair[0].run_id))
        return versions, models

    def _guarded(self, entity: ex.Entity, *, job_type: str | None) -> None:
        """Imports one run (read now, so one run's points at a time are held); a failure is
        reported, and the import goes on with the next run."""
        try:
            self._entity(entity, ex.read_entity(entity), job_type=job_type, complete=True)
        except (RegistrumError, OSError, ValueError) as exc:
            self.report.fail(f"{self.project_id} {entity.run_id}", str(exc))

    def _entity(
        self, entity: ex.Entity, data: ex.EntityData, *, job_type: str | None, complete: bool
    ) -> _Done | None:
        run_id = run_id_for(self.project_id, entity.run_id)
        marker = entity.fingerprint()
        try:
            existing = self.store.get_run(run_id)
        except RunNotFound:
            existing = None
        if existing is not None and existing.project != self.project:
            raise InvalidArgument(
                f"run id {run_id} is taken by a run of project {existing.project!r}: "
                "import this project into another store"
            )
        if existing is not None and existing.tags.get(MARKER) == marker:
            self.report.runs_unchanged += 1
            return None
        for kind, rows in sorted(data.unknown.items()):
            self.report.skip(
                f"{self.project_id} {entity.run_id}",
                f"{rows} value(s) of attribute type {kind!r}, which has no Registrum counterpart",
            )
        self._create(entity, data, run_id, job_type)
        self._metrics(run_id, data)
        done = _Done(run_id)
        self._media(run_id, data)
        done.files = self._files(entity, run_id, data)
        self._finish(run_id, data)
        if complete:
            self.store.set_tags(run_id, {MARKER: marker})
        self.report.runs += 1
        return done

    def _create(
        self, entity: ex.Entity, data: ex.EntityData, run_id: str, job_type: str | None
    ) -> None:
        name = m.label(data.text("sys/name"))
        group = m.label(data.text("sys/experiment/name")) or name
        tags = {"neptune.id": entity.run_id, "neptune.project": self.project_id}
        if group:
            tags["group"] = group
        for tag_path in ("sys/tags", "sys/group_tags"):
            found = data.scalars.get(tag_path)
            for tag in sorted(found[1] or []) if found else []:
                label = m.label(tag)
                if label:
                    tags[label] = ""
        fork_step = data.text("sys/forking/step")
        if fork_step is not None:
            tags["neptune.fork_step"] = fork_step
        self.store.create_run(
            self.project,
            run_id=run_id,
            name=name,
            job_type=job_type,
            parent_id=self._parent(entity, data),
            user=m.label(data.text("sys/owner")),
            host=m.label(data.text("sys/hostname")),
            description=data.text("sys/description") or None,
            start_time=m.seconds(data.scalars.get("sys/creation_time")),
            config=m.params(data),
            tags=tags,
        )

    def _parent(self, entity: ex.Entity, data: ex.EntityData) -> str | None:
        parent = data.text("sys/forking/parent")
        if not parent:
            return None
        if parent not in self.ids:
            self.report.skip(
                f"{self.project_id} {entity.run_id} fork parent",
                f"{parent} is not in the export: the run is imported without its parent",
            )
            return None
        return run_id_for(self.project_id, parent)

    def _metrics(self, run_id: str, data: ex.EntityData) -> None:
        start = m.seconds(data.scalars.get("sys/creation_time")) or 0.0
        for series in data.float_series:
            if not len(series.steps):
                continue
            if series.scale:
                self.store.set_metric_step_scale(run_id, series.path, series.scale)
            times = series.times.copy()
            times[~(times == times)] = start  # a point without a time gets the run's start
            for begin in range(0, len(series.steps), BATCH):
                steps = series.steps[begin : begin + BATCH]
                result = self.store.log_metrics(
                    run_id,
                    seq=m.seq(series.path, begin, steps),
                    keys=[series.path] * len(steps),
                    steps=steps,
                    values=series.values[begin : begin + BATCH],
                    timestamps=times[begin : begin + BATCH],
                )
                if not result.duplicate:
                    self.report.points += result.points

    def _media(self, run_id: str, data: ex.EntityData) -> None:
        with tempfile.TemporaryDirectory(prefix="registrum-neptune-") as tmp:
            for path, file, meta in media_files(data, Path(tmp)):
                self._artifact(run_id, path, "media", [f.local_file(file.name, file)], meta)

    def _files(self, entity: ex.Entity, run_id: str, data: ex.EntityData) -> list[dict[str, Any]]:
        """Uploads file attributes and file series; returns their combined manifest (the
        model files of a model version)."""
        manifest: list[dict[str, Any]] = []
        for path, (kind, relative) in sorted(data.files.items()):
            files = [f.local_file(p, s) for p, s in self._local(entity, path, relative)]
            meta = {"neptune_path": path, "neptune_type": kind}
            manifest += self._artifact(run_id, path, kind, files, meta)
        for path, points in sorted(data.file_series.items()):
            files = []
            for point in points:
                step = "none" if point.step is None else m.step_text(point.step)
                for p, s in self._local(entity, path, point.value["path"]):
                    files.append(f.local_file(f"step={step}/{p}", s))
            series_meta: dict[str, Any] = {
                "neptune_path": path,
                "neptune_type": "file_series",
                "steps": len(points),
            }
            manifest += self._artifact(run_id, path, "file_series", files, series_meta)
        return manifest

    def _local(self, entity: ex.Entity, path: str, relative: str) -> list[tuple[str, Path]]:
        found = ex.resolve_file(self.files_path, entity, relative)
        if found is None:
            raise InvalidArgument(
                f"attribute {path!r}: its file {relative!r} is not under the files path "
                f"{self.files_path}; give neptune-exporter's --files-path, or put the file back"
            )
        return f.listing(found)

    def _artifact(
        self,
        run_id: str,
        path: str,
        kind: str,
        files: list[f.LocalFile],
        metadata: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """One artifact of the run, named `<run id>.<attribute path with dots>`; only content
        the store lacks is sent."""
        hashed = {x.sha256: x.size for x in files if x.sha256 is not None}
        missing = set(self.store.missing_blobs(list(hashed))) if hashed else set()
        sent = sum(hashed[s] for s in missing) + sum(x.size for x in files if x.sha256 is None)
        name = m.artifact_name(run_id, path)
        manifest = f.upload(self.store, files, label=f"uploading {name}")
        before = {a.id for a in self.store.list_artifacts(self.project, name=name)}
        artifact = self.store.create_artifact(
            self.project, name, type=kind, files=manifest, run_id=run_id, metadata=metadata
        )
        if artifact.id not in before:
            self.report.artifacts += 1
        self.report.bytes += sent
        return [{**x, "path": f"{path}/{x['path']}".replace("//", "/")} for x in manifest]

    def _finish(self, run_id: str, data: ex.EntityData) -> None:
        failed = data.scalars.get("sys/failed")
        state = (data.text("sys/state") or "").lower()
        if failed and failed[1]:
            status = "failed"
        elif state in ("active", "running"):
            status = "crashed"  # its process can no longer report: it ended unfinished
        else:
            status = "finished"
        end = m.seconds(data.scalars.get("sys/modification_time"))
        self.store.finish_run(run_id, status, end_time=end)

    # -- the model registry -------------------------------------------------------------

    def _registry(
        self,
        models: dict[str, ex.EntityData | None],
        versions: list[tuple[ex.Entity, ex.EntityData]],
        bar: ProgressBar,
    ) -> None:
        names: dict[str, str | None] = {}
        for model_id, data in sorted(models.items()):
            names[model_id] = self._guarded_model(model_id, data)
        stopped: set[str] = set()  # models with a failed version: later ones wait for it
        for entity, data in versions:
            model_id = m.model_of(entity.run_id, data)
            name = names.get(model_id)
            what = f"{self.project_id} {entity.run_id}"
            if name is None:
                self.report.skip(what, "its model could not be imported")
            elif model_id in stopped:
                self.report.skip(
                    what,
                    "an earlier version of its model failed; versions are numbered in "
                    "Neptune's order, so it follows once that one is imported",
                )
            elif not self._version(name, entity, data):
                stopped.add(model_id)
            bar.advance(note=entity.run_id)

    def _guarded_model(self, model_id: str, data: ex.EntityData | None) -> str | None:
        try:
            return self._model(model_id, data)
        except RegistrumError as exc:
            self.report.fail(f"{self.project_id} model {model_id}", str(exc))
            return None

    def _model(self, model_id: str, data: ex.EntityData | None) -> str:
        """The registered model for Neptune model `model_id`, made if new: named by its
        `sys/name`, else by its id."""
        name = (data.text("sys/name") if data else None) or model_id
        try:
            name = v.name(name, "model name")
        except InvalidArgument:
            name = v.name(model_id, "model name")
        try:
            model = self.store.get_model(name)
        except ModelNotFound:
            model = None
        if model is not None:
            if model.tags.get("neptune.id") != model_id:
                raise InvalidArgument(
                    f"a model named {name!r} exists already and is not Neptune model "
                    f"{model_id}: rename it, or import into another store"
                )
            return name
        tags = {"neptune.id": model_id, "neptune.project": self.project_id}
        if data is not None:
            tags.update({k: m.tag_text(val) for k, (_, val) in m.user_scalars(data).items()})
            skipped = len(data.float_series) + len(data.files) + len(data.string_series)
            if skipped:
                self.report.skip(
                    f"{self.project_id} model {model_id}",
                    f"{skipped} series or file attribute(s) of the model itself (its versions "
                    "carry theirs)",
                )
        description = data.text("sys/description") if data else None
        self.store.create_model(name, project=self.project, description=description, tags=tags)
        self.report.models += 1
        return name

    def _version(self, name: str, entity: ex.Entity, data: ex.EntityData) -> bool:
        """A model version: its run first, then the version (found again by its
        `neptune.id` tag), then the run's completion tag. False when it failed (reported)."""
        what = f"{self.project_id} {entity.run_id}"
        try:
            registered = {
                mv.tags.get("neptune.id"): mv for mv in self.store.list_model_versions(name)
            }
            done = self._entity(entity, data, job_type="model-version", complete=False)
            if done is None:
                return True  # complete from an earlier import
            if entity.run_id not in registered:
                files = done.files or self._version_card(done.run_id, entity, data)
                self.store.register_model_version(
                    name,
                    project=self.project,
                    run_id=done.run_id,
                    files=files,
                    description=data.text("sys/description") or None,
                    tags=m.version_tags(entity, data),
                    idempotency_key=f"neptune:{self.project_id}:{entity.run_id}",
                )
                self.report.versions += 1
            self.store.set_tags(done.run_id, {MARKER: entity.fingerprint()})
        except (RegistrumError, OSError, ValueError) as exc:
            self.report.fail(what, str(exc))
            return False
        return True

    def _version_card(
        self, run_id: str, entity: ex.Entity, data: ex.EntityData
    ) -> list[dict[str, Any]]:
        """A version with no files gets one: its attributes as JSON, so it has a manifest."""
        card = {"neptune_id": entity.run_id, "params": m.params(data)}
        with tempfile.TemporaryDirectory(prefix="registrum-neptune-") as tmp:
            path = Path(tmp) / "neptune-model-version.json"
            path.write_text(json.dumps(card, sort_keys=True, indent=1, default=str))
            files = [f.local_file(path.name, path)]
            meta = {"neptune_type": "model_version"}
            return self._artifact(run_id, "model-version", "model", files, meta)
