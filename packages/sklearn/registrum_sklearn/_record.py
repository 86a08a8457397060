"""One fit's run: which run it goes to, what is recorded in it, and how the run ends."""

from __future__ import annotations

import sys
import tempfile
import warnings
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
SEARCH_JOB = "search"
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

    Each step that records something is guarded: its failure becomes a RuntimeWarning and
    the fit goes on; under REGISTRUM_STRICT=1 it ends the run as failed and raises.
    """

    def __init__(self, options: FitOptions, *, fold: bool) -> None:
        self.options = options
        self.fold = fold
        self.run: registrum.Run | None = None
        self.owns_run = False
        self.strict = integration.strict()

    def begin(self, estimator: Any) -> None:
        """Joins the active run, or starts one; a fold of a cross-validation starts a child
        run of the active run (job_type "cv-fold", in its store unless told otherwise)
        rather than writing into it."""
        self._guarded("start a run", lambda: self._begin(estimator))

    def _begin(self, estimator: Any) -> None:
        active = registrum.active_run()
        if active is not None and not self.fold:
            self.run = active
            return
        run_options = dict(self.options.run_options)
        run_options["name"] = run_options.get("name") or type(estimator).__name__
        if self.fold:
            run_options["job_type"] = run_options.get("job_type") or FOLD_JOB
            if active is not None:  # a child goes where its parent went
                run_options["parent"] = run_options.get("parent") or active
                run_options["store"] = run_options.get("store") or active.settings.store
                run_options["mode"] = run_options.get("mode") or active.settings.mode
        else:
            default = SEARCH_JOB if _is_search_type(estimator) else TRAIN_JOB
            run_options["job_type"] = run_options.get("job_type") or default
        project = self.options.project or (active.project if active is not None else None)
        self.run = registrum.init(project, **run_options)
        self.owns_run = True

    def record(self, unfitted: Any, fitted: Any, X: Any, y: Any, fit_time: float) -> int | None:
        """Records the fit; returns the registered version number, when one was made now."""
        if self.run is None:
            return None
        run = self.run
        self._guarded("log the params", lambda: self._log_params(unfitted))
        is_search = search.is_search(fitted)
        # A search fitted with refit=False holds no model to score, save or register.
        has_model = not is_search or hasattr(fitted, "best_estimator_")
        metrics: dict[str, float] = {"fit_time": fit_time}
        if is_search:
            best = self._guarded("read the best scores", lambda: search.best_metrics(fitted))
            metrics.update(best or {})
        if has_model:
            scores = self._guarded("score the fit", lambda: self._scores(fitted, X, y))
            metrics.update(scores or {})
        self._guarded("log the metrics", lambda: run.log(metrics))
        if self.fold or run.disabled:
            return None
        self._guarded("record the datasets", lambda: self._log_datasets(X, y))
        version = None
        with tempfile.TemporaryDirectory(prefix="registrum-sklearn-") as folder:
            if has_model:
                version = self._guarded(
                    "log the model", lambda: self._log_model(fitted, X, metrics, Path(folder))
                )
            if is_search:
                self._guarded("log the candidates", lambda: self._log_search(fitted, Path(folder)))
        return version

    def end(self, status: str) -> None:
        """Finishes the run if this fit started it."""
        run, self.run = self.run, None
        if run is not None and self.owns_run:
            self.owns_run = False
            self._guarded("finish the run", lambda: run.finish(status))

    # -- the steps ---------------------------------------------------------------------

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
        assert self.run is not None
        model = getattr(fitted, "best_estimator_", fitted)
        path, metadata = save_model(model, folder)
        metadata["signature"] = describe.signature(model, X)
        artifact = self.run.log_model(path, flavor=FLAVOR, metadata=metadata)
        if self.options.register_as is None:
            return None
        version = self.run.register_model(
            self.options.register_as,
            model=artifact,
            flavor=FLAVOR,
            metrics=metrics,
            params=describe.flat_params(model.get_params(deep=True)),
            aliases=list(self.options.aliases),
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

    # -- failures ----------------------------------------------------------------------

    def _guarded(self, what: str, action: Callable[[], Result]) -> Result | None:
        try:
            return action()
        except Exception as exc:
            if self.strict:
                self.end("failed")
                raise
            warnings.warn(
                f"registrum: could not {what}; the fit goes on without it: "
                f"{type(exc).__name__}: {exc}",
                RuntimeWarning,
                stacklevel=4,
            )
            return None


def _is_search_type(estimator: Any) -> bool:
    return hasattr(estimator, "param_grid") or hasattr(estimator, "param_distributions")
