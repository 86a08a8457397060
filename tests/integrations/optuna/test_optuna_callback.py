import copy
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import registrum
from registrum.client.http import HttpStore
from registrum.server import Settings
from serving import free_port, running_server
from targets import Target

optuna = pytest.importorskip("optuna", reason="needs optuna: pip install -e .[all]")

from optuna_sweeps import log_tiny_model, series, sweep_runs  # noqa: E402
from registrum_optuna import RegistrumCallback, trial_run  # noqa: E402

TrialState = optuna.trial.TrialState
WORKER = Path(__file__).with_name("optuna_worker.py")


def quadratic(trial: optuna.Trial, *, log_model: bool = True) -> float:
    """A cheap objective: three reports (pruned when the pruner says so), then a tiny model."""
    x = trial.suggest_float("x", -4.0, 4.0)
    layers = trial.suggest_int("layers", 1, 3)
    with trial_run(trial) as run:
        assert registrum.active_run() is run
        with trial_run(trial) as again:
            assert again is run
        for step in range(3):
            trial.report((x - 1.0) ** 2 + layers / (step + 1), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        trial.set_user_attr("note", f"layers={layers}")
        if log_model:
            log_tiny_model(run, f"x={x}")
    return (x - 1.0) ** 2 + layers


def test_a_pruned_tpe_study_records_every_trial_and_registers_the_best(target: Target) -> None:
    callback = RegistrumCallback(project="p", register_as="reg", store=target.store)
    study = optuna.create_study(
        study_name="tpe",
        sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=5),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3),
    )
    study.optimize(quadratic, n_trials=20, callbacks=[callback])
    callback.finish(study)
    reader = target.reader

    sweep, trials = sweep_runs(reader, "p")
    assert sorted(trials) == list(range(20))
    assert sweep.status == "finished" and sweep.name == "tpe"
    assert sweep.params["study"] == "tpe" and sweep.params["directions"] == ["minimize"]
    assert sweep.params["sampler.class"] == "TPESampler"
    assert sweep.params["sampler.n_startup_trials"] == 5
    assert sweep.params["pruner.class"] == "MedianPruner"
    assert sweep.params["pruner.n_startup_trials"] == 3
    assert sweep.params["search_space.x"].startswith("FloatDistribution(high=4.0")
    assert sweep.params["search_space.layers"].startswith("IntDistribution(high=3")
    states = {TrialState.COMPLETE: 0, TrialState.PRUNED: 0}
    for trial in study.trials:
        states[trial.state] += 1
        run = trials[trial.number]
        status, state = {
            TrialState.COMPLETE: ("finished", "complete"),
            TrialState.PRUNED: ("killed", "pruned"),
        }[trial.state]
        assert (run.status, run.tags["state"], run.name) == (status, state, f"trial-{trial.number}")
        assert run.params["x"] == trial.params["x"]
        assert run.params["layers"] == trial.params["layers"]
        assert run.params["distributions.x"] == str(trial.distributions["x"])
        assert series(reader, run.id, "intermediate_value") == trial.intermediate_values
        assert run.metrics["duration_s"].last == pytest.approx(trial.duration.total_seconds())
        # A pruned trial's value is its last report.
        assert run.metrics["value"].last == trial.value
        if trial.state == TrialState.COMPLETE:
            assert run.params["user_attrs.note"] == trial.user_attrs["note"]
    assert states[TrialState.PRUNED] > 0, "the pruner pruned nothing: the test proves less"
    summary = {k: s.last for k, s in sweep.metrics.items()}
    assert summary == {
        "best_value": study.best_value,
        "best_trial": study.best_trial.number,
        "trials_complete": states[TrialState.COMPLETE],
        "trials_pruned": states[TrialState.PRUNED],
        "trials_failed": 0,
    }

    best = reader.get_model_version("reg@best")
    assert best.metrics == {"value": study.best_value}
    assert best.run_id == trials[study.best_trial.number].id
    assert best.params == study.best_trial.params and best.flavor == "text"
    assert best.tags == {"optuna.study": "tpe", "optuna.trial": str(study.best_trial.number)}
    versions = sorted(reader.list_model_versions("reg"), key=lambda v: v.version)
    assert [v.version for v in versions] == list(range(1, len(versions) + 1))
    values = [v.metrics["value"] for v in versions]
    assert values == sorted(values, reverse=True) and len(set(values)) == len(values)


def test_threads_record_every_trial_once_in_one_sweep(target: Target) -> None:
    callback = RegistrumCallback(project="p", register_as="reg", store=target.store)
    study = optuna.create_study(
        sampler=optuna.samplers.RandomSampler(seed=3), pruner=optuna.pruners.NopPruner()
    )
    study.optimize(quadratic, n_trials=12, n_jobs=2, callbacks=[callback])
    callback.finish(study)

    sweep, trials = sweep_runs(target.reader, "p")
    assert sorted(trials) == list(range(12))
    assert all(r.status == "finished" for r in trials.values())
    assert {k: s.last for k, s in sweep.metrics.items()}["trials_complete"] == 12
    versions = target.reader.list_model_versions("reg")
    assert len({v.run_id for v in versions}) == len(versions)
    best = target.reader.get_model_version("reg@best")
    assert best.metrics["value"] == study.best_value
    assert best.run_id == trials[study.best_trial.number].id


def test_a_trial_without_trial_run_gets_its_run_and_is_skipped_with_a_warning(
    target: Target,
) -> None:
    callback = RegistrumCallback(project="p", register_as="reg", store=target.store)
    study = optuna.create_study(direction="maximize")

    def objective(trial: optuna.Trial) -> float:
        trial.report(1.0, 0)
        return trial.suggest_float("y", 0.0, 1.0)

    with pytest.warns(RuntimeWarning, match="trial 0 of study .* logged no model"):
        study.optimize(objective, n_trials=1, callbacks=[callback])
    callback.finish(study)

    _, trials = sweep_runs(target.reader, "p")
    assert trials[0].status == "finished" and trials[0].metrics["value"].last == study.best_value
    assert series(target.reader, trials[0].id, "intermediate_value") == {0: 1.0}
    assert target.reader.list_models() == []


def test_a_failed_trial_is_recorded_failed(target: Target) -> None:
    callback = RegistrumCallback(project="p", store=target.store)
    study = optuna.create_study()

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_float("x", 0.0, 1.0)
        with trial_run(trial) as run:
            run.log({"loss": 0.5})
            if trial.number == 1:
                raise ValueError("diverged")
            if trial.number == 3:
                raise KeyError("bug")
        return float("nan") if trial.number == 2 else 1.0

    with pytest.raises(KeyError, match="bug"):
        study.optimize(objective, n_trials=5, callbacks=[callback], catch=(ValueError,))
    callback.finish(study)

    sweep, trials = sweep_runs(target.reader, "p")
    assert [(trials[n].status, trials[n].tags["state"]) for n in range(4)] == [
        ("finished", "complete"),
        ("failed", "failed"),
        ("failed", "failed"),
        ("failed", "failed"),
    ]
    assert trials[3].metrics["loss"].last == 0.5
    assert {k: s.last for k, s in sweep.metrics.items()}["trials_failed"] == 3


def test_register_at_end_registers_the_best_trial_once(target: Target) -> None:
    callback = RegistrumCallback(
        project="p", register_as="reg", alias="champion", register="at_end", store=target.store
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(quadratic, n_trials=6, callbacks=[callback])
    with pytest.raises(registrum.ModelNotFound):
        target.reader.list_model_versions("reg")
    callback.finish(study)
    callback.finish(study)

    [version] = target.reader.list_model_versions("reg")
    _, trials = sweep_runs(target.reader, "p")
    assert version.aliases == ["champion"] and version.metrics == {"value": study.best_value}
    assert version.run_id == trials[study.best_trial.number].id
    assert trials[study.best_trial.number].status == "finished"


def multi_objective(trial: optuna.Trial) -> tuple[float, float]:
    x = trial.suggest_float("x", 0.0, 2.0)
    with trial_run(trial) as run:
        log_tiny_model(run, f"x={x}")
    return x**2, (x - 2.0) ** 2


@pytest.mark.parametrize("alias_objective", [None, 1])
def test_a_multi_objective_study_registers_its_pareto_front(
    target: Target, alias_objective: int | None
) -> None:
    callback = RegistrumCallback(
        project="p",
        register_as="reg",
        metric_names=["cost", "error"],
        alias_objective=alias_objective,
        store=target.store,
    )
    study = optuna.create_study(
        directions=["minimize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=2)
    )
    study.optimize(multi_objective, n_trials=6, callbacks=[callback])
    callback.finish(study)

    _, trials = sweep_runs(target.reader, "p")
    versions = target.reader.list_model_versions("reg")
    by_trial = {int(v.tags["optuna.trial"]): v for v in versions}
    assert len(by_trial) == len(versions) == len(study.trials)  # every trial was on the front then
    for number, version in by_trial.items():
        trial = study.trials[number]
        assert version.metrics == {"cost": trial.values[0], "error": trial.values[1]}
        assert version.tags["cost"] == repr(trial.values[0])
        assert version.tags["optuna.pareto_front"] == "true"
        assert version.run_id == trials[number].id
    aliased = [v for v in versions if v.aliases]
    if alias_objective is None:
        assert aliased == []
    else:
        best_error = min(study.trials, key=lambda t: t.values[1])
        assert [v.run_id for v in aliased] == [trials[best_error.number].id]


def test_copies_and_pickles_of_the_callback_record_into_one_sweep(target: Target) -> None:
    callback = RegistrumCallback(project="p", register_as="reg", store=target.store)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=4))
    study.optimize(quadratic, n_trials=2, callbacks=[callback])
    study.optimize(quadratic, n_trials=2, callbacks=[copy.deepcopy(callback)])
    clone = pickle.loads(pickle.dumps(callback))
    study.optimize(quadratic, n_trials=2, callbacks=[clone])
    clone.finish(study)

    sweep, trials = sweep_runs(target.reader, "p")
    assert sorted(trials) == list(range(6))
    assert {k: s.last for k, s in sweep.metrics.items()}["trials_complete"] == 6
    assert target.reader.get_model_version("reg@best").metrics["value"] == study.best_value


def test_the_alias_stays_on_a_better_version_than_the_sweep_finds(target: Target) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=5))
    with registrum.init("p", store=target.store) as run:
        log_tiny_model(run, "hand-made")
        run.register_model("reg", metrics={"value": -1.0}, aliases=["best"])
    callback = RegistrumCallback(project="p", register_as="reg", store=target.store)
    study.optimize(quadratic, n_trials=3, callbacks=[callback])
    callback.finish(study)

    assert target.reader.get_model_version("reg@best").version == 1
    assert len(target.reader.list_model_versions("reg")) > 1


def test_bad_arguments_raise_at_construction() -> None:
    with pytest.raises(ValueError, match="register must be one of"):
        RegistrumCallback(register="sometimes")
    with pytest.raises(TypeError, match=r"registrum\.init"):
        RegistrumCallback(colour="red")
    with pytest.raises(registrum.InvalidArgument):
        RegistrumCallback(alias="1st")
    with pytest.raises(ValueError, match="alias_objective"):
        RegistrumCallback(alias_objective=-1)


def test_a_store_that_is_down_never_fails_a_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRUM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("REGISTRUM_STRICT", "1")
    monkeypatch.setenv("REGISTRUM_INIT_TIMEOUT", "0.1")
    monkeypatch.setenv("REGISTRUM_FLUSH_TIMEOUT", "0.1")
    down = f"http://127.0.0.1:{free_port()}"
    callback = RegistrumCallback(project="p", register_as="reg", store=down)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=6))
    with pytest.warns(RuntimeWarning, match="unreachable|queued"):
        study.optimize(quadratic, n_trials=3, callbacks=[callback])
    callback.finish(study)

    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    spooled = {p.name for p in (tmp_path / "home" / "spool").iterdir()}
    assert len(spooled) == 4  # the sweep run and three trial runs, kept for `registrum sync`


@pytest.mark.postgres
def test_two_processes_on_a_postgres_storage_share_one_sweep(tmp_path: Path, postgres: Any) -> None:
    with postgres.database() as storage_url:
        storage = optuna.storages.RDBStorage(storage_url)
        try:
            study = optuna.create_study(
                study_name="shared", storage=storage, sampler=optuna.samplers.RandomSampler(seed=7)
            )
            run_two_workers(tmp_path, storage_url, study)
        finally:
            storage.engine.dispose()


def run_two_workers(tmp_path: Path, storage_url: str, study: optuna.Study) -> None:
    """Two worker processes of 10 trials each against one server, with one REGISTRUM_HOME
    (as on one machine), then the sweep they shared read back."""
    server = Settings(store_url=f"sqlite:///{tmp_path}/srv.db", blobs=tmp_path / "blobs")
    with running_server(server) as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRUM_")}
        env.update(REGISTRUM_URL=url, REGISTRUM_HOME=str(tmp_path / "home"))
        env["REGISTRUM_STRICT"] = "1"
        command = [sys.executable, "-W", "error", str(WORKER), storage_url, "shared", "10"]
        workers = [subprocess.Popen(command, env=env) for _ in range(2)]
        assert [w.wait(timeout=240) for w in workers] == [0, 0]
        reader = HttpStore(url)
        try:
            check_shared_sweep(reader, study)
        finally:
            reader.close()


def check_shared_sweep(reader: Any, study: optuna.Study) -> None:
    sweep, trials = sweep_runs(reader, "shared")
    assert sorted(trials) == list(range(20)) == sorted(t.number for t in study.trials)
    assert all(r.status == "finished" for r in trials.values()) and sweep.status == "finished"
    summary = {k: s.last for k, s in sweep.metrics.items()}
    assert summary["trials_complete"] == 20 and summary["best_value"] == study.best_value
    versions = sorted(reader.list_model_versions("shared-model"), key=lambda v: v.version)
    assert [v.version for v in versions] == list(range(1, len(versions) + 1))
    assert len({v.run_id for v in versions}) == len(versions)
    best = reader.get_model_version("shared-model@best")
    assert best.metrics == {"value": study.best_value}
    assert best.run_id == trials[study.best_trial.number].id
