"""`RegistrumCallback` for `study.optimize`, and `trial_run` for use inside the objective."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

import registrum
from registrum import integration
from registrum.integration import validation
from registrum_optuna._options import REGISTER, Options, guarded
from registrum_optuna._sweep import Sweep, known_sweep, sweep_of

_latest_lock = threading.Lock()
_latest: list[RegistrumCallback] = []  # the callback made (or unpickled) last in this process


class RegistrumCallback:
    """Records an Optuna study in Registrum: the study as a sweep run, each trial as its
    child run, and the best trial's model registered under `register_as`.

    Pass it to `study.optimize(objective, callbacks=[callback])`; inside the objective,
    `with trial_run(trial) as run:` opens the trial's run, which every Registrum
    integration inside joins. Threads (`n_jobs`) and processes sharing an RDB storage
    record into one sweep run.

    Args:
        project: the project of the runs (`REGISTRUM_PROJECT`, else "default").
        register_as: a model name: the model a trial logged is registered under it when
            the trial becomes the study's best (or, with several objectives, enters the
            Pareto front). None registers nothing.
        alias: the alias moved to the best registered version, by compare-and-set against
            the value on the version it points to now; None moves none.
        register: "on_improvement" registers as trials end; "at_end" registers each
            process's best trial(s) when it calls `finish(study)` or exits.
        metric_names: the names of the objective values (default the study's metric
            names, else `value`, or `value_0`, `value_1`, ...).
        alias_objective: with several objectives, the index of the one whose best value
            the alias follows; None (the default) moves no alias.
        **run_options: the options of `registrum.init` (name, config, tags, parent,
            store, id, mode, ...) for the sweep run; `id` pins its run id. Trial runs
            take the project, store and mode.
    """

    def __init__(
        self,
        project: str | None = None,
        *,
        register_as: str | None = None,
        alias: str | None = "best",
        register: str = "on_improvement",
        metric_names: Sequence[str] | None = None,
        alias_objective: int | None = None,
        **run_options: Any,
    ) -> None:
        integration.check_options(
            "RegistrumCallback", project, register_as=register_as, run_options=run_options
        )
        if alias is not None:
            validation.alias(alias)
        if register not in REGISTER:
            raise ValueError(f"register must be one of {REGISTER}, got {register!r}")
        if isinstance(metric_names, str):
            raise TypeError(f"metric_names must be a list of names, not {metric_names!r}")
        for name in metric_names or ():
            validation.key(name, "metric name")
        if alias_objective is not None and (
            type(alias_objective) is not int or alias_objective < 0
        ):
            raise ValueError(f"alias_objective must be an objective index, got {alias_objective!r}")
        validation.string_map(run_options.get("tags"), "tags")
        self.options = Options(
            project=project,
            register_as=register_as,
            alias=alias,
            register=register,
            metric_names=None if metric_names is None else tuple(metric_names),
            alias_objective=alias_objective,
            run_options=dict(run_options),
        )
        _made(self)

    # Only the options travel with a copy or a pickle; what a sweep holds lives in the
    # process, shared by every copy.
    def __getstate__(self) -> dict[str, Any]:
        return {"options": self.options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.options = state["options"]
        _made(self)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Records the ended trial in its run, registers its model if it is the new best,
        and updates the sweep's summary."""
        with guarded(self.options, "record_trial"):
            sweep_of(study, self.options).close_trial(trial, trial.state)
        with guarded(self.options, "record_sweep"):
            sweep = sweep_of(study, self.options)
            sweep.add_search_space(trial)
            sweep.log_summary()

    @contextmanager
    def trial_run(self, trial: optuna.Trial) -> Iterator[registrum.Run]:
        """The trial's run, started in this thread (it is `registrum.active_run()` here),
        or the one already open for the trial."""
        with _trial_run(trial, self.options) as run:
            yield run

    def finish(self, study: optuna.Study) -> None:
        """Registers this process's best trial(s) when `register="at_end"`, records the
        last summary and finishes the sweep run (as happens at exit otherwise)."""
        with guarded(self.options, "end_sweep"):
            sweep_of(study, self.options).end()


def _made(callback: RegistrumCallback) -> None:
    with _latest_lock:
        _latest[:] = [callback]


@contextmanager
def trial_run(trial: optuna.Trial) -> Iterator[registrum.Run]:
    """The trial's run, for use inside the objective: `with trial_run(trial) as run:`.

    Started in the calling thread, so that `registrum.active_run()` there is this run and
    every Registrum integration inside (Lightning, Keras, XGBoost, scikit-learn) logs into
    it; inside another `trial_run` of the same trial it returns that run. The study's
    `RegistrumCallback` finishes it when the trial ends; an exception other than
    `optuna.TrialPruned` finishes it at once, failed. The options are those of the
    callback the study's trials report to, else of the callback made last.
    """
    sweep = known_sweep(trial.study)
    if sweep is not None:
        options = sweep.options
    else:
        with _latest_lock:
            if not _latest:
                raise RuntimeError(
                    "trial_run needs a RegistrumCallback: "
                    "study.optimize(objective, callbacks=[RegistrumCallback(...)])"
                )
            options = _latest[0].options
    with _trial_run(trial, options) as run:
        yield run


@contextmanager
def _trial_run(trial: optuna.Trial, options: Options) -> Iterator[registrum.Run]:
    sweep: Sweep | None = None
    run: registrum.Run | None = None
    owner = False
    with guarded(options, "start_trial_run"):
        sweep = sweep_of(trial.study, options)
        run = sweep.open_run(trial.number)
        if run is None:
            run, owner = sweep.open_trial(trial), True
    if run is None:
        # The store could not take the run: the trial goes on, recorded nowhere.
        run, owner = registrum.init(options.project, mode="disabled"), False
        try:
            yield run
        finally:
            run.finish()
        return
    try:
        yield run
    except optuna.TrialPruned:
        raise
    except BaseException as exc:
        if owner and sweep is not None:
            status = "killed" if isinstance(exc, KeyboardInterrupt) else "failed"
            with guarded(options, "record_trial_failure"):
                sweep.close_trial(_frozen(trial), TrialState.FAIL, status=status)
        raise


def _frozen(trial: optuna.Trial) -> FrozenTrial:
    """The trial as its storage holds it now (its params, reports and user attrs)."""
    return next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
