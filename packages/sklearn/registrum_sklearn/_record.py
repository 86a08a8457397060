"""One fit's run: which run it goes to, what is recorded in it, and how the run ends."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import registrum
from registrum import integration
from registrum_sklearn import _describe as describe
from registrum_sklearn import _search as search
from registrum_sklearn._persist import FLAVOR, save_model

FOLD_JOB = "cv-fold"
TRAIN_JOB = "train"
SWEEP_JOB = "sweep"
# The sklearn.model_selection functions that fit one clone per fold: cross_val_score,
# cross_validate, cross_val_predict, validation_curve, learning_curve,
# permutation_test_score and every search CV go through them.
_FOLD_FITTERS = frozenset({"_fit_and_score", "_fit_and_predict", "_permutation_test_score"})

Result = TypeVar("Result")


def in_cross_validation() -> bool:
    """Whether the running fit is one fold of a cross-validation (in this process or a
    joblib worker): scikit-learn's fold fitters are then on the call stack."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if frame.f_code.co_name in _FOLD_FITTERS and module.startswith("sklearn.model_selection"):
            return True
        frame = frame.f_back
    return False


@dataclass
class FitOptions:
    """What a TrackedEstimator asks of its fits' runs."""

    project: str | None
    run_options: dict[str, Any]
    register_as: str | None
    aliases: Sequence[str]
    eval_sets: dict[str, tuple[Any, Any]]


class FitRecord:
    """The run of one fit: joined (the active run), or started and finished here.

    Each step that records something is guarded by the integration kit: its failure becomes
    a RuntimeWarning and the fit goes on; under REGISTRUM_STRICT=1 it ends the run as failed
    and raises.
    """

    def __init__(self, options: FitOptions, *, fold: bool) -> None:
        self.options = options
        self.fold = fold
        self.tracking = integration.Tracking(
            "TrackedEstimator",
            options.project,
            options.run_options,
            register_as=options.register_as,
            aliases=options.aliases,
        )

    @property
    def run(self) -> registrum.Run | None:
        return self.tracking.run

    def begin(self, estimator: Any) -> None:
        """Joins the active run, or starts one; a fold of a cross-validation starts a child
        run of the active run (job_type "cv-fold", in its store unless told otherwise)
        rather than writing into it."""
        self._step("start_run", lambda: self._begin(estimator))

    def _begin(self, estimator: Any) -> None:
        active = registrum.active_run()
        given = self.options.run_options
        options: dict[str, Any] = {"name": given.get("name") or type(estimator).__name__}
        if self.fold and active is not None:  # a child goes where its parent went
            options["parent"] = given.get("parent") or active.id
            options["store"] = given.get("store") or active.settings.store
            options["mode"] = given.get("mode") or active.settings.mode
        if active is not None and not self.fold:
            self.tracking.begin()
            return
        if self.options.project is None and active is not None:
            self.tracking.project = active.project
        default = SWEEP_JOB if _is_search_type(estimator) else TRAIN_JOB
        self.tracking.begin(job_type=FOLD_JOB if self.fold else default, join=False, **options)

    def record(self, unfitted: Any, fitted: Any, X: Any, y: Any, fit_time: float) -> int | None:
        """Records the fit; returns the registered version number, when one was made now."""
        if self.run is None:
            return None
        run = self.run
        self._step("log_params", lambda: self._log_params(unfitted))
        is_search = search.is_search(fitted)
        # A search fitted with refit=False holds no model to score, save or register.
        has_model = not is_search or hasattr(fitted, "best_estimator_")
        metrics: dict[str, float] = {"fit_time": fit_time}
        if is_search:
            best = self._step("read_best_scores", lambda: search.best_metrics(fitted))
            metrics.update(best or {})
        if has_model:
            scores = self._step("score", lambda: self._scores(fitted, X, y))
            metrics.update(scores or {})
        self._step("log_metrics", lambda: run.log(metrics))
        if self.fold or run.disabled:
            return None
        self._step("use_datasets", lambda: self._log_datasets(X, y))
        if has_model:
            self._step("log_tables", lambda: self._log_tables(fitted))
        version = None
        folder = self.tracking.scratch()
        if has_model:
            version = self._step("log_model", lambda: self._log_model(fitted, X, metrics, folder))
        if is_search:
            self._step("log_candidates", lambda: self._log_search(fitted, folder))
        return version

    def end(self, status: str) -> None:
        """Finishes the run if this fit started it."""
        self._step("finish_run", lambda: self.tracking.end(status))

    # -- the steps ---------------------------------------------------------------------

    def _step(self, where: str, action: Callable[[], Result]) -> Result | None:
        with self.tracking.guard(where):
            return action()
        return None

    def _log_params(self, unfitted: Any) -> None:
        assert self.run is not None
        self.run.config.update(describe.flat_params(unfitted.get_params(deep=True)))
        self.run.set_tags({"estimator_class": describe.class_path(unfitted)})

    def _scores(self, fitted: Any, X: Any, y: Any) -> dict[str, float]:
        """The training score and the metrics of every eval set."""
        scores: dict[str, float] = {}
        training = describe.score(fitted, X, y)
        if training is not None:
            scores["training_score"] = training
        for name, (X_eval, y_eval) in self.options.eval_sets.items():
            metrics = describe.evaluation_metrics(fitted, X_eval, y_eval)
            scores.update({f"{name}_{k}": x for k, x in metrics.items()})
        return scores

    def _log_tables(self, fitted: Any) -> None:
        """A classifier's confusion matrix (and a binary one's ROC curve) on each eval set,
        as tables `<eval set>/confusion_matrix` and `<eval set>/roc_curve`."""
        assert self.run is not None
        for name, (X_eval, y_eval) in self.options.eval_sets.items():
            for key, table in describe.classification_tables(fitted, X_eval, y_eval).items():
                self.run.log_table(f"{name}/{key}", table, step=0)

    def _log_datasets(self, X: Any, y: Any) -> None:
        assert self.run is not None
        named = [("X_train", "train", X), ("y_train", "train", y)]
        for name, (X_eval, y_eval) in self.options.eval_sets.items():
            named += [(f"X_{name}", "eval", X_eval), (f"y_{name}", "eval", y_eval)]
        for name, role, data in named:
            if data is not None:
                content, metadata = describe.dataset_content(data)
                self.run.use_dataset(content, name=name, role=role, metadata=metadata)

    def _log_model(
        self, fitted: Any, X: Any, metrics: Mapping[str, float], folder: Path
    ) -> int | None:
        """Logs the fitted estimator (a search's best estimator) and registers it when asked.
        Returns the version number, when the store made it now."""
        model = getattr(fitted, "best_estimator_", fitted)
        path, metadata = save_model(model, folder)
        metadata["signature"] = describe.signature(model, X)
        version = self.tracking.log_model(
            path,
            flavor=FLAVOR,
            metadata=metadata,
            metrics=metrics,
            params=describe.flat_params(model.get_params(deep=True)),
            signature=metadata["signature"],
        )
        return None if version is None else version.version

    def _log_search(self, fitted: Any, folder: Path) -> None:
        """The best params, `cv_results_` as a table and a child run per candidate. While the
        store is unreachable (the table could not be sent), the children go to the spool only."""
        assert self.run is not None
        best = describe.flat_params(getattr(fitted, "best_params_", {}))
        self.run.config.update({f"best_params.{k}": x for k, x in best.items()})
        table = search.write_results(fitted.cv_results_, folder / "cv_results.csv")
        sent = self.run.log_artifact(table, name="cv_results", type="table")
        unreachable = sent is None and self.run.settings.mode == "online"
        search.log_candidates(self.run, fitted.cv_results_, offline=unreachable)


def _is_search_type(estimator: Any) -> bool:
    return hasattr(estimator, "param_grid") or hasattr(estimator, "param_distributions")
