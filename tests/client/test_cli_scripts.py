"""The command line in scripts: `--format table|json|csv`, the columns `runs list` shows
(job type, parent, `--columns`, `--top-level`), what `runs show` lists, one precision for
numbers, a quiet end when the reader of a pipe goes away, and `audit list`'s filters with
the metric and blob noise left out by default."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import registrum
from registrum.cli import main
from targets import Target


@pytest.fixture
def cli(target: Target, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    store = ["--store", target.store] if target.store else []

    def run(*args: str) -> str:
        code = main([*args, *store])
        out, err = capsys.readouterr()
        assert code == 0, err
        return out

    return run


def _sweep(target: Target, tmp_path: Path) -> dict[str, str]:
    """A parent run with two trials, and a training run that used a dataset, logged a best
    checkpoint and an artifact, and registered a model."""
    ids = {}
    with registrum.init(project="p", name="sweep", job_type="sweep", store=target.store) as s:
        ids["sweep"] = s.id
        for i in range(2):
            with registrum.init(
                project="p",
                name=f"trial-{i}",
                parent=s.id,
                config={"lr": 0.1 * (i + 1)},
                store=target.store,
            ) as trial:
                trial.log({"loss": 1 / 3 + i, "acc": 0.5})
                ids[f"trial-{i}"] = trial.id
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"weights")
    with registrum.init(project="p", name="train", job_type="train", store=target.store) as run:
        run.use_dataset([[1, 2], [3, 4]], name="train-set", role="train")
        run.log({"loss": 1 / 3})
        run.log_checkpoint(weights, step=1, best=True)
        run.log_artifact(weights, name="predictions", type="predictions")
        run.register_model("clf", path=weights)
        ids["train"] = run.id
    return ids


def test_runs_list_for_people_and_for_scripts(cli, target: Target, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ids = _sweep(target, tmp_path)
    table = cli("runs", "list", "p")
    header = table.splitlines()[0].split()
    assert header[:6] == ["id", "name", "status", "job_type", "parent", "started"]
    assert "metrics.loss" in header
    trial = next(line for line in table.splitlines() if ids["trial-0"] in line)
    assert ids["sweep"] in trial and "0.333333" in trial

    rows = list(csv.DictReader(io.StringIO(cli("runs", "list", "p", "--format", "csv"))))
    assert {r["id"] for r in rows} == set(ids.values())
    by_name = {r["name"]: r for r in rows}
    assert by_name["trial-1"]["parent"] == ids["sweep"] and by_name["train"]["job_type"] == "train"
    assert float(by_name["trial-0"]["metrics.loss"]) == 1 / 3  # every digit in CSV
    assert by_name["train"]["started"].endswith("Z")

    chosen = cli("runs", "list", "p", "--format", "csv", "--columns", "params.lr,duration")
    header = next(csv.reader(io.StringIO(chosen)))
    assert header[-2:] == ["params.lr", "duration"] and "metrics.loss" not in header
    top = json.loads(cli("runs", "list", "p", "--top-level", "--format", "json"))
    assert {r["id"] for r in top} == {ids["sweep"], ids["train"]}
    assert all(r["parent_id"] is None for r in top)


def test_runs_show_lists_what_a_run_made_and_used(cli, target: Target, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ids = _sweep(target, tmp_path)
    shown = cli("runs", "show", ids["train"])
    assert "checkpoints:" in shown and "(best)" in shown
    assert "predictions:1  predictions" in shown
    assert "train-set" in shown and "(train)" in shown
    assert "registered: clf@1" in shown
    record = json.loads(cli("runs", "show", ids["train"], "--format", "json"))
    assert [c["name"] for c in record["checkpoints"]] == ["checkpoints"]
    assert {a["name"] for a in record["artifacts"]} == {"predictions", "train-model"}
    assert record["registered_versions"] == ["clf@1"]
    assert [d["name"] for d in record["datasets"]] == ["train-set"]
    fields = dict(csv.reader(io.StringIO(cli("runs", "show", ids["train"], "--format", "csv"))))
    assert fields["job_type"] == "train" and fields["metrics.loss.last"] == repr(1 / 3)


def test_other_lists_print_json_and_csv(cli, target: Target, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _sweep(target, tmp_path)
    assert [m["name"] for m in json.loads(cli("models", "list", "--format", "json"))] == ["clf"]
    [version] = json.loads(cli("models", "show", "clf", "--format", "json"))
    assert version["version"] == 1
    projects = list(csv.DictReader(io.StringIO(cli("projects", "list", "--format", "csv"))))
    assert [p["name"] for p in projects] == ["p"]
    artifacts = json.loads(cli("artifacts", "list", "p", "--format", "json"))
    assert {a["type"] for a in artifacts} == {"checkpoint", "predictions", "model"}
    assert json.loads(cli("projects", "show", "p", "--format", "json"))["models"] == ["clf"]
    graph = json.loads(cli("lineage", "clf@1", "--format", "json"))
    assert any(n["kind"] == "dataset" for n in graph["nodes"])


def test_audit_list_leaves_the_noise_out_and_filters(cli, target: Target, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ids = _sweep(target, tmp_path)
    quiet = json.loads(cli("audit", "list", "--limit", "500", "--format", "json"))
    loud = json.loads(cli("audit", "list", "--limit", "500", "--all", "--format", "json"))
    noise = {"metrics.logged", "blob.stored"}
    assert not noise & {e["action"] for e in quiet}
    assert noise <= {e["action"] for e in loud}
    logged = json.loads(cli("audit", "list", "--action", "metrics.logged", "--format", "json"))
    assert logged and {e["action"] for e in logged} == {"metrics.logged"}
    one = json.loads(cli("audit", "list", "--entity", f"run:{ids['train']}", "--format", "json"))
    assert one and {e["entity_id"] for e in one} == {ids["train"]}
    assert {
        e["entity_type"]
        for e in json.loads(cli("audit", "list", "--entity", "model", "--format", "json"))
    } == {"model"}
    assert json.loads(cli("audit", "list", "--since", "1h", "--format", "json"))
    assert json.loads(cli("audit", "list", "--until", "2000-01-01", "--format", "json")) == []
    assert (
        json.loads(cli("audit", "list", "--since", "2999-01-01T00:00:00Z", "--format", "json"))
        == []
    )


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    env = {**os.environ, "REGISTRUM_HOME": str(tmp_path / "home"), "REGISTRUM_URL": ""}
    env.pop("REGISTRUM_URL")
    script = (
        "import registrum\n"
        "for i in range(400):\n"
        "    options = dict(capture_environment=False, capture_code=False)\n"
        "    with registrum.init(project='p', **options) as r:\n"
        "        r.log({'loss': i})\n"
    )
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=300)
    piped = subprocess.run(
        f"{sys.executable} -m registrum.cli runs list p --limit 400 | head -2",
        shell=True,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert len(piped.stdout.splitlines()) == 2
    assert piped.stderr == "", piped.stderr
