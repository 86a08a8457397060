"""One study's sweep in this process: its run, the runs of its trials, and its store client."""

from __future__ import annotations

import atexit
import contextvars
import re
import threading
import uuid
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

import registrum
from registrum_optuna import _describe as d
from registrum_optuna._options import NAMESPACE, Options, guarded, trial_run_id, warn
from registrum_optuna._promote import best_trials, is_best, register


def sweep_run_id(study: optuna.Study) -> str:
    """The study's sweep run id, which every process finds alike without talking to the
    others: derived from the database (for an RDB storage), the study, and the start time
    of its first trial, so a study made anew under the same name gets a sweep run of its
    own."""
    first = next((t for t in study.get_trials(deepcopy=False) if t.number == 0), None)
    started = first.datetime_start if first is not None else None
    where = _database(study._storage) or type(study._storage).__name__
    text = f"{where}|{study._study_id}|{study.study_name}|{started.isoformat() if started else ''}"
    return uuid.uuid5(NAMESPACE, text).hex


def _database(storage: Any) -> str | None:
    """An RDB storage's database, spelled the same by every process that opens it."""
    from sqlalchemy.engine import make_url

    backend = getattr(storage, "_backend", storage)  # Optuna caches RDB storages in a wrapper
    if not isinstance(backend, optuna.storages.RDBStorage):
        return None
    url = make_url(backend.url)
    kind = url.get_backend_name()
    if kind == "sqlite":
        if not url.database or url.database == ":memory:":
            return None
        return f"sqlite:{Path(url.database).resolve()}"
    return f"{kind}://{url.host}:{url.port or ''}/{url.database}"


def _run_name(text: str) -> str | None:
    name = re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()[:200]
    return name or None


class Sweep:
    """A study's sweep in this process, shared by its threads and by copies of its callback.

    Every process optimizing the study holds the sweep run open (each writes it through a
    spool of its own) and names it as its trials' parent; whichever ends last writes the
    summary with the most trials.
    """

    def __init__(self, run_id: str, options: Options, study: optuna.Study) -> None:
        self.id = run_id
        self.options = options
        self.study = study
        self.names = d.value_names(study, options.metric_names)
        self.lock = threading.Lock()
        self.run: registrum.Run | None = None
        self._context = contextvars.Context()
        self.ended = False
        self.trials: dict[int, registrum.Run] = {}  # open trial runs, by trial number
        self.closed: set[int] = set()  # trials whose run this process finished
        self.registered: set[int] = set()
        self.search_space: dict[str, str] = {}
        self._client: registrum.Client | None = None

    # -- the sweep run -------------------------------------------------------------

    def attach(self) -> registrum.Run:
        """The sweep run, opened (or resumed) in this process on first use."""
        with self.lock:
            if self.run is None:
                context = contextvars.copy_context()
                self.run = context.run(self._open)
                self._context = context
                _exit_hook()
            return self.run

    def _open(self) -> registrum.Run:
        """Starts or resumes the sweep run, in a context of its own: it never becomes the
        active run of a thread that runs trials."""
        options = dict(self.options.run_options)
        config = {**d.study_config(self.study, self.names), **dict(options.pop("config", {}))}
        tags = {"optuna.study": self.study.study_name, **dict(options.pop("tags", None) or {})}
        options.setdefault("name", _run_name(self.study.study_name))
        options.setdefault("job_type", "sweep")
        return registrum.init(self.options.project, config=config, tags=tags, id=self.id, **options)

    def log_summary(self) -> int:
        """Logs the summary; returns the number of ended trials it counted (the step: the
        summary with the most trials is the last one)."""
        ended, metrics = d.summary(self.study, self.names)
        self.attach().log(metrics, step=ended)
        return ended

    def add_search_space(self, trial: FrozenTrial) -> None:
        """Adds the trial's distributions to the sweep run's search space."""
        new = {k: x for k, x in d.distributions(trial).items() if self.search_space.get(k) != x}
        if new:
            self.attach().config.update({"search_space": new})
            self.search_space.update(new)

    def end(self) -> None:
        """Registers this process's best trial(s) when registering at the end, writes the
        last summary and finishes the sweep run here."""
        if self.ended:
            return
        self.ended = True
        if self.options.register_as is not None and self.options.register == "at_end":
            for trial in best_trials(self.study):
                if trial.number in self.closed:
                    with guarded(self.options, "register"):
                        register(self, trial, None)
        # A trial that ends in another process later is summed up by that process, at its end.
        with guarded(self.options, "record_summary"):
            self.log_summary()
        with self.lock:
            run, self.run = self.run, None
        if run is not None:
            self._context.run(run.finish)
        with self.lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- trial runs ----------------------------------------------------------------

    def open_trial(self, trial: optuna.Trial) -> registrum.Run:
        """Starts the trial's run in the calling thread (or resumes it, in another process)."""
        self.attach()  # the parent, before a trial names it
        self.ended = False
        run = self._start_trial(trial.number, dict(trial.params))
        with self.lock:
            self.trials[trial.number] = run
        return run

    def _start_trial(self, number: int, params: Mapping[str, Any]) -> registrum.Run:
        options = self.options.run_options
        run = registrum.init(
            self.options.project,
            name=f"trial-{number}",
            config=params,
            tags={"trial": number, "optuna.study": self.study.study_name},
            job_type="trial",
            parent=self.id,
            store=self.options.store,
            id=trial_run_id(self.id, number),
            mode=options.get("mode"),
            capture_environment=False,
            capture_code=False,
        )
        _exit_hook()
        return run

    def open_run(self, number: int) -> registrum.Run | None:
        with self.lock:
            return self.trials.get(number)

    def close_trial(
        self, trial: FrozenTrial, state: TrialState, *, status: str | None = None
    ) -> None:
        """Records the ended trial in its run (started now if the objective did not), moves
        the registration along, and finishes the run."""
        with self.lock:
            if trial.number in self.closed:
                return
            self.closed.add(trial.number)
            run = self.trials.pop(trial.number, None)
        self.attach()  # the parent, before a trial names it
        self.ended = False
        if run is None:
            run = self._start_trial(trial.number, trial.params)
        status = status or d.STATUS.get(state, "failed")
        try:
            run.config.update(d.trial_config(trial))
            run.set_tags({"state": d.STATE.get(state, state.name.lower())})
            for step, value in sorted(trial.intermediate_values.items()):
                run.log({d.INTERMEDIATE: value}, step=step)
            run.log(d.trial_metrics(trial, self.names), step=0)
            if (
                state == TrialState.COMPLETE
                and self.options.register_as is not None
                and self.options.register == "on_improvement"
            ):
                with guarded(self.options, "register"):
                    if is_best(self.study, trial):
                        register(self, trial, run)
        finally:
            run.finish(status)

    # -- the store -----------------------------------------------------------------

    def client(self) -> registrum.Client:
        with self.lock:
            if self._client is None:
                self._client = registrum.Client(self.options.store)
            return self._client


_lock = threading.Lock()
_sweeps: dict[str, Sweep] = {}
_by_study: weakref.WeakKeyDictionary[optuna.Study, Sweep] = weakref.WeakKeyDictionary()
_hooked = False


def sweep_of(study: optuna.Study, options: Options) -> Sweep:
    """The study's sweep in this process, made on first use with `options`."""
    with _lock:
        sweep = _by_study.get(study)
        if sweep is None:
            pinned = options.run_options.get("id")
            run_id = pinned if isinstance(pinned, str) else sweep_run_id(study)
            sweep = _sweeps.get(run_id)
            if sweep is None:
                sweep = _sweeps[run_id] = Sweep(run_id, options, study)
            sweep.study = study
            _by_study[study] = sweep
        return sweep


def known_sweep(study: optuna.Study) -> Sweep | None:
    with _lock:
        return _by_study.get(study)


def _exit_hook() -> None:
    """Ends every sweep at interpreter exit, before `registrum` finishes the runs left open
    (atexit runs hooks in reverse order, and this one is added after a run started)."""
    global _hooked
    with _lock:
        if _hooked:
            return
        _hooked = True
    atexit.register(_end_all)


def _end_all() -> None:
    with _lock:
        sweeps = list(_sweeps.values())
    for sweep in sweeps:
        try:
            sweep.end()
        except Exception as exc:
            warn(f"could not end the sweep of study {sweep.study.study_name}: {exc}")
