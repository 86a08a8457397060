from __future__ import annotations

import io
import json
import shutil
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

import registrum
from registrum.cli import main
from registrum.errors import InvalidArgument
from registrum.importers import ImportReport, import_neptune
from registrum.importers._progress import ProgressBar
from registrum.importers.neptune import project_name, run_id_for
from registrum.server import Settings
from serving import running_server

SCHEMA = pa.schema(
    [
        ("project_id", pa.string()),
        ("run_id", pa.string()),
        ("attribute_path", pa.string()),
        ("attribute_type", pa.string()),
        ("step", pa.decimal128(18, 6)),
        ("timestamp", pa.timestamp("ms", tz="UTC")),
        ("int_value", pa.int64()),
        ("float_value", pa.float64()),
        ("string_value", pa.string()),
        ("bool_value", pa.bool_()),
        ("datetime_value", pa.timestamp("ms", tz="UTC")),
        ("string_set_value", pa.list_(pa.string())),
        ("file_value", pa.struct([("path", pa.string())])),
        (
            "histogram_value",
            pa.struct(
                [
                    ("type", pa.string()),
                    ("edges", pa.list_(pa.float64())),
                    ("values", pa.list_(pa.float64())),
                ]
            ),
        ),
    ]
)
PROJECT = "acme/churn"
FOLDER = "acme_churn-3f2a"  # neptune-exporter's sanitized project folder
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
VALUE = {
    "int": "int_value",
    "float": "float_value",
    "string": "string_value",
    "bool": "bool_value",
    "datetime": "datetime_value",
    "string_set": "string_set_value",
    "float_series": "float_value",
    "string_series": "string_value",
    "histogram_series": "histogram_value",
    "file": "file_value",
    "file_series": "file_value",
}
LOSS_STEPS = ["0.5", "1.25", "2", "2.75"]
LOSS_VALUES = [0.9, 0.7, float("nan"), 0.4]


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0.timestamp() + seconds, tz=UTC)


def _row(run: str, path: str, kind: str, value: Any, step: str | None = None, t: float = 0) -> Any:
    row: dict[str, Any] = {
        "project_id": PROJECT,
        "run_id": run,
        "attribute_path": path,
        "attribute_type": kind,
        "step": None if step is None else Decimal(step),
        "timestamp": _at(t) if step is not None else None,
    }
    row[VALUE[kind]] = value
    return row


def _sys(run: str, name: str, **extra: tuple[str, Any]) -> list[Any]:
    rows = [
        _row(run, "sys/id", "string", run),
        _row(run, "sys/name", "string", name),
        _row(run, "sys/owner", "string", "ada"),
        _row(run, "sys/creation_time", "datetime", T0),
        _row(run, "sys/modification_time", "datetime", _at(3600)),
        _row(run, "sys/failed", "bool", False),
    ]
    for path, (kind, value) in extra.items():
        rows = [r for r in rows if r["attribute_path"] != f"sys/{path}"]
        rows.append(_row(run, f"sys/{path}", kind, value))
    return rows


def _write(folder: Path, run: str, rows: list[Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    pq.write_table(table, folder / f"{run}_part_0.parquet", compression="snappy")


def write_export(root: Path) -> tuple[Path, Path]:
    """An export with two runs (CLS-2 forked from CLS-1), a model and two versions."""
    data, files = root / "data", root / "files"
    project_files = files / FOLDER
    (project_files / "CLS-1" / "images").mkdir(parents=True)
    (project_files / "CLS-1" / "config.yaml").write_text("lr: 0.001\n")
    (project_files / "CLS-1" / "images" / "s1.png").write_bytes(b"\x89PNG one")
    (project_files / "CLS-1" / "images" / "s2.png").write_bytes(b"\x89PNG two")
    (project_files / "CLS-2").mkdir()
    (project_files / "CLS-2" / "config.yaml").write_text("lr: 0.002\n")
    (project_files / "model_versions" / "CLS-MOD-1").mkdir(parents=True)
    (project_files / "model_versions" / "CLS-MOD-1" / "weights.bin").write_bytes(b"w" * 1000)

    run1 = _sys("CLS-1", "baseline", tags=("string_set", ["gpu", "v1"]))
    run1 += [
        _row("CLS-1", "config/lr", "float", 0.001),
        _row("CLS-1", "config/epochs", "int", 3),
        _row("CLS-1", "config/use_amp", "bool", True),
        _row("CLS-1", "config/optimizer", "string", "adam"),
        _row("CLS-1", "config/started", "datetime", T0),
        _row("CLS-1", "config/labels", "string_set", ["b", "a"]),
        _row("CLS-1", "config/file", "file", {"path": "CLS-1/config.yaml"}),
    ]
    run1 += [
        _row("CLS-1", "metrics/loss", "float_series", value, step, t=i)
        for i, (step, value) in enumerate(zip(LOSS_STEPS, LOSS_VALUES, strict=True))
    ]
    run1 += [_row("CLS-1", "metrics/acc", "float_series", 0.5 + s / 10, str(s)) for s in range(3)]
    run1 += [
        _row("CLS-1", "logs/stdout", "string_series", "epoch 1 done", "1"),
        _row("CLS-1", "logs/stdout", "string_series", "halfway", "0.5"),
    ]
    run1 += [
        _row(
            "CLS-1",
            "hist/weights",
            "histogram_series",
            {"type": "COUNTING", "edges": [0.0, 1.0, 2.0], "values": [3.0, 4.0]},
            "1.5",
        )
    ]
    run1 += [
        _row("CLS-1", "images/samples", "file_series", {"path": "CLS-1/images/s1.png"}, "1"),
        _row("CLS-1", "images/samples", "file_series", {"path": "CLS-1/images/s2.png"}, "2.5"),
    ]
    _write(data / FOLDER, "CLS-1", run1)

    run2 = _sys(
        "CLS-2",
        "baseline",
        failed=("bool", True),
        **{"forking/parent": ("string", "CLS-1"), "forking/step": ("float", 1.25)},
    )
    run2 += [
        _row("CLS-2", "metrics/loss", "float_series", 0.65, "1.5"),
        _row("CLS-2", "sys/hostname", "string", " gpu-box-7\n"),
        _row("CLS-2", "metrics/loss", "float_series", 0.6, "1.75"),
        _row("CLS-2", "config/file", "file", {"path": "CLS-2/config.yaml"}),
        _row("CLS-2", "source/nb", "string", "nb-1") | {"attribute_type": "notebook_ref"},
    ]
    _write(data / FOLDER, "CLS-2", run2)

    model = [*_sys("CLS-MOD", "churn-model"), _row("CLS-MOD", "team", "string", "growth")]
    _write(data / FOLDER / "models", "CLS-MOD", model)
    v1 = _sys("CLS-MOD-1", "churn-model", stage=("string", "production"))
    v1 += [
        _row("CLS-MOD-1", "sys/model_id", "string", "CLS-MOD"),
        _row("CLS-MOD-1", "val/acc", "float_series", 0.91, "0"),
        _row("CLS-MOD-1", "model/weights", "file", {"path": "CLS-MOD-1/weights.bin"}),
    ]
    _write(data / FOLDER / "model_versions", "CLS-MOD-1", v1)
    v2 = _sys("CLS-MOD-2", "churn-model", stage=("string", "staging"))
    v2 += [_row("CLS-MOD-2", "sys/model_id", "string", "CLS-MOD")]
    _write(data / FOLDER / "model_versions", "CLS-MOD-2", v2)
    return data, files


@pytest.fixture
def export(tmp_path: Path) -> tuple[Path, Path]:
    return write_export(tmp_path / "export")


def _counts(report: ImportReport) -> dict[str, int]:
    return {
        k: getattr(report, k)
        for k in ("projects", "runs", "runs_unchanged", "points", "artifacts", "models")
    } | {"versions": report.versions, "bytes": report.bytes}


def _check_landed(store: str) -> None:
    client = registrum.Client(store)
    name = project_name(PROJECT)
    assert name == "acme.churn"

    run = client.run("CLS-1")
    assert run.project == name
    assert (run.name, run.user, run.status) == ("baseline", "ada", "finished")
    assert run.start_time == T0.timestamp()
    assert run.end_time == T0.timestamp() + 3600
    assert run.params["config/lr"] == 0.001
    assert run.params["config/epochs"] == 3 and isinstance(run.params["config/epochs"], int)
    assert run.params["config/use_amp"] is True
    assert run.params["config/optimizer"] == "adam"
    assert run.params["config/started"] == "2025-03-01T12:00:00+00:00"
    assert run.params["config/labels"] == ["a", "b"]
    assert {"gpu", "v1"} <= set(run.tags)
    assert run.tags["group"] == "baseline"
    assert not any(k.startswith("sys/") for k in run.params)

    forked = client.run("CLS-2")
    assert (forked.parent_id, forked.status, forked.host) == ("CLS-1", "failed", "gpu-box-7")
    assert forked.tags["neptune.fork_step"] == "1.25"

    loss = client.metric_history("CLS-1", "metrics/loss")
    assert loss.steps.tolist() == [0.5, 1.25, 2.0, 2.75]
    assert loss.step_scale == 2
    assert loss.integer_steps().tolist() == [50, 125, 200, 275]
    assert loss.values[[0, 1, 3]].tolist() == [0.9, 0.7, 0.4] and np.isnan(loss.values[2])
    assert loss.timestamps.tolist() == [T0.timestamp() + i for i in range(4)]
    summary = run.metrics["metrics/loss"]
    assert (summary.last_step, summary.step_scale, summary.last) == (2.75, 2, 0.4)
    assert summary.integer_last_step() == 275
    assert run.metrics["metrics/acc"].last_step == 2
    acc = client.metric_history("CLS-1", "metrics/acc")
    assert acc.steps.dtype == np.int64 and acc.steps.tolist() == [0, 1, 2]
    assert acc.step_scale == 0
    assert client.metric_history("CLS-2", "metrics/loss").steps.tolist() == [1.5, 1.75]

    artifacts = {a.name: a for a in client.artifacts(name, run_id="CLS-1")}
    assert {a.type for a in artifacts.values()} == {"media", "file", "file_series"}
    text = artifacts["CLS-1.logs.stdout"]
    assert text.metadata["media"] == "text" and text.metadata["points"] == 2
    out = client.download_artifact(name, text.name, tmp := Path(client.settings.home) / "dl")
    lines = [json.loads(x) for x in (out / "text.jsonl").read_text().splitlines()]
    assert [(x["step"], x["text"]) for x in lines] == [(0.5, "halfway"), (1, "epoch 1 done")]
    hist = artifacts["CLS-1.hist.weights"]
    out = client.download_artifact(name, hist.name, tmp / "h")
    (line,) = [json.loads(x) for x in (out / "histograms.jsonl").read_text().splitlines()]
    assert line == {
        "step": 1.5,
        "timestamp": T0.timestamp(),
        "type": "COUNTING",
        "edges": [0.0, 1.0, 2.0],
        "values": [3.0, 4.0],
    }
    series = client.artifact(name, "CLS-1.images.samples")
    assert sorted(x.path for x in series.files) == ["step=1/s1.png", "step=2.5/s2.png"]
    assert [x.path for x in client.artifact(name, "CLS-1.config.file").files] == ["config.yaml"]

    model = client.model("churn-model")
    assert model.tags["team"] == "growth"
    versions = sorted(client.model_versions("churn-model"), key=lambda mv: mv.version)
    assert [mv.version for mv in versions] == [1, 2]
    assert [mv.tags["neptune.stage"] for mv in versions] == ["production", "staging"]
    assert versions[0].run_id == "CLS-MOD-1"
    assert [x.path for x in versions[0].artifact.files] == ["model/weights/weights.bin"]
    assert client.run("CLS-MOD-1").job_type == "model-version"


EXPECTED_FIRST = {
    "projects": 1,
    "runs": 4,
    "runs_unchanged": 0,
    "points": 4 + 3 + 2 + 1,
    "models": 1,
    "versions": 2,
}
NOTHING_NEW = {
    "projects": 1,
    "runs": 0,
    "runs_unchanged": 4,
    "points": 0,
    "artifacts": 0,
    "models": 0,
    "versions": 0,
    "bytes": 0,
}


def test_embedded_import_lands_everything_and_a_second_import_copies_nothing(
    export: tuple[Path, Path], database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRUM_HOME", str(tmp_path / "home"))
    store = database_url
    report = import_neptune(*export, store=store)
    assert report.ok, report.render()
    assert _counts(report).items() >= EXPECTED_FIRST.items()
    assert report.artifacts == 7 and report.bytes > 1000
    assert [(s.what, s.why.split(",")[0]) for s in report.skipped] == [
        ("acme/churn CLS-2", "1 value(s) of attribute type 'notebook_ref'")
    ]
    _check_landed(store)

    again = import_neptune(*export, store=store)
    assert again.ok and _counts(again) == NOTHING_NEW
    assert "0 run(s) (4 already complete), 0 metric point(s)" in again.render()
    assert len(registrum.Client(store).metric_history("CLS-1", "metrics/loss")) == 4


def test_import_through_a_server_shows_decimal_steps_on_the_http_api(
    export: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRUM_HOME", str(tmp_path / "home"))
    settings = Settings(store_url=f"sqlite:///{tmp_path}/s.db", blobs=tmp_path / "blobs")
    with running_server(settings) as url:
        assert main(["import", "neptune", "--data-path", str(export[0]), "--files-path",
                     str(export[1]), "--store", url]) == 0  # fmt: skip
        _check_landed(url)
        body = requests.get(f"{url}/api/v1/runs/CLS-1/metrics/metrics/loss", timeout=10).json()
        assert body["steps"] == [0.5, 1.25, 2.0, 2.75] and body["step_scale"] == 2
        charts = requests.get(
            f"{url}/api/v1/metrics/histories",
            params={"run_id": ["CLS-1", "CLS-2"], "key": "metrics/loss"},
            timeout=10,
        ).json()
        assert [h["steps"] for h in charts["items"]] == [[0.5, 1.25, 2.0, 2.75], [1.5, 1.75]]
        again = import_neptune(*export, store=url)
        assert again.ok and _counts(again) == NOTHING_NEW


def test_an_interrupted_import_resumes_where_it_stopped(
    export: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("REGISTRUM_HOME", str(tmp_path / "home"))
    store = f"sqlite:///{tmp_path}/r.db"
    kept, weights = tmp_path / "kept.yaml", export[1] / FOLDER / "model_versions" / "CLS-MOD-1"
    shutil.move(export[1] / FOLDER / "CLS-2" / "config.yaml", kept)
    shutil.move(weights, tmp_path / "weights")
    args = ["import", "neptune", "--data-path", str(export[0]), "--files-path", str(export[1])]

    assert main([*args, "--store", store]) == 1
    printed = capsys.readouterr().out
    assert "FAILED 2:" in printed and "CLS-2/config.yaml" in printed
    assert "CLS-MOD-1/weights.bin" in printed and "an earlier version of its model" in printed
    client = registrum.Client(store)
    assert client.run("CLS-1").tags["neptune.import"]
    assert "neptune.import" not in client.run("CLS-2").tags
    assert client.metric_history("CLS-2", "metrics/loss").steps.tolist() == [1.5, 1.75]

    assert client.model_versions("churn-model") == []
    shutil.move(kept, export[1] / FOLDER / "CLS-2" / "config.yaml")
    shutil.move(tmp_path / "weights", weights)
    report = import_neptune(*export, store=store)
    assert report.ok, report.render()
    assert (report.runs, report.runs_unchanged, report.points) == (3, 1, 0)
    assert (report.models, report.versions) == (0, 2)
    assert client.metric_history("CLS-2", "metrics/loss").steps.tolist() == [1.5, 1.75]
    assert client.run("CLS-2").status == "failed"
    _check_landed(store)


def test_bad_input_gets_a_clear_error_and_a_nonzero_exit(
    export: tuple[Path, Path], tmp_path: Path, capsys: Any
) -> None:
    store = f"sqlite:///{tmp_path}/r.db"
    missing = ["--data-path", str(tmp_path / "nope"), "--files-path", str(export[1])]
    assert main(["import", "neptune", *missing, "--store", store]) == 1
    assert "is not a folder" in capsys.readouterr().err

    wrong = tmp_path / "wrong"
    wrong.mkdir()
    pq.write_table(pa.table({"name": ["a"], "value": [1.0]}), wrong / "x.parquet")
    args = ["--data-path", str(wrong), "--files-path", str(export[1]), "--store", store]
    assert main(["import", "neptune", *args]) == 1
    err = capsys.readouterr().err
    assert "not a neptune-exporter part" in err and "project_id" in err

    with pytest.raises(InvalidArgument, match="not in the export"):
        import_neptune(*export, store=store, projects=["other/project"])
    with pytest.raises(InvalidArgument, match="files path"):
        import_neptune(export[0], tmp_path / "nofiles", store=store)


def test_a_series_keeps_its_step_scale(tmp_path: Path) -> None:
    from registrum.store import open_store

    store = open_store(f"sqlite:///{tmp_path}/r.db")
    store.create_run("p", run_id="r1")
    store.set_metric_step_scale("r1", "loss", 3)
    store.set_metric_step_scale("r1", "loss", 3)  # again: nothing changes
    store.log_metrics("r1", seq=0, keys=["loss", "loss"], steps=[1, 1500], values=[1.0, 2.0])
    assert store.metric_history("r1", "loss").steps.tolist() == [0.001, 1.5]
    with pytest.raises(InvalidArgument, match="keeps the scale of its first point"):
        store.set_metric_step_scale("r1", "loss", 2)
    store.log_metrics("r1", seq=1, keys=["acc"], steps=[1], values=[1.0])
    with pytest.raises(InvalidArgument, match="already holds points"):
        store.set_metric_step_scale("r1", "acc", 1)
    store.set_metric_step_scale("r1", "acc", 0)  # the default: accepted
    assert store.metric_history("r1", "acc").step_scale == 0
    store.close()


def test_names_map_by_a_documented_rule() -> None:
    assert project_name("acme/churn") == "acme.churn"
    assert project_name("a@b/c") == "a-b.c"
    assert project_name("ws/zero\u200bwidth") == "ws.zero-width"
    assert project_name("\ufe0f").startswith("neptune-")
    assert run_id_for("acme/churn", "CLS-12") == "CLS-12"
    odd = run_id_for("acme/churn", "my run #3")
    assert odd.startswith("neptune-") and odd == run_id_for("acme/churn", "my run #3")
    assert odd != run_id_for("acme/other", "my run #3")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_draws_on_a_terminal_only() -> None:
    shown = _Terminal()
    with ProgressBar("acme/churn", 2, stream=shown) as bar:
        bar.advance(note="CLS-1")
        bar.advance(note="CLS-2")
    text = shown.getvalue()
    assert "\racme/churn [" + "#" * ProgressBar.WIDTH + "] 2/2" in text
    assert text.endswith("\n")
    piped = io.StringIO()
    with ProgressBar("acme/churn", 1, stream=piped) as bar:
        bar.advance()
    assert piped.getvalue() == ""
