"""`TrackedEstimator`: a scikit-learn meta-estimator whose every fit is recorded in a run."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from copy import deepcopy
from typing import Any, TypeVar

from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone
from sklearn.utils import get_tags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

import registrum
from registrum import integration
from registrum_sklearn._eval_sets import eval_sets
from registrum_sklearn._record import FitOptions, FitRecord, in_cross_validation

Method = TypeVar("Method", bound=Callable[..., Any])


def _if_wrapped_has(attr: str) -> Callable[[Method], Method]:
    """`available_if`: the method exists when the fitted estimator (before fit, the unfitted
    one) has `attr`."""

    def check(self: TrackedEstimator) -> bool:
        getattr(self.estimator_ if hasattr(self, "estimator_") else self.estimator, attr)
        return True

    decorator: Callable[[Method], Method] = available_if(check)
    return decorator


class TrackedEstimator(MetaEstimatorMixin, BaseEstimator):  # type: ignore[misc]
    """Wraps a scikit-learn estimator (a pipeline, a search CV, ...) so that each fit is
    recorded in a Registrum run: params, datasets, fit time, scores, the model, and its
    registration.

    It is an estimator like the one it wraps: `get_params`/`set_params` reach the wrapped
    estimator's params as `estimator__<name>`, and it can be cloned, put in a Pipeline and
    given to `cross_val_score` or a search CV. `predict`, `predict_proba`,
    `predict_log_proba`, `decision_function`, `transform` (and `fit_transform`) and
    `score` exist where the wrapped estimator has them. A fit joins the active run
    (`registrum.active_run()`), or starts a run and finishes it; a fit that is one fold of
    a cross-validation starts a child run of the active run with job_type "cv-fold" and
    logs no model.

    Args:
        estimator: the scikit-learn estimator to fit; it is cloned, never fitted itself.
        project: the project of a run a fit starts (`REGISTRUM_PROJECT`, else "default").
        register_as: a model name: the fitted model (a search's best estimator) is
            registered under it. Without it the model is still logged as the run's candidate.
        eval_set: data to evaluate the fitted model on: (X, y), a list of (X, y) pairs or
            a dict of names to (X, y) pairs. Metrics are named `<name>_<metric>`, where
            the name is "eval" for one pair and "eval_0", "eval_1", ... for a list.
        aliases: aliases the registered version gets.
        name, config, tags, job_type, parent, store, id, mode, capture_environment,
            capture_code, system_metrics: the run options of `registrum.init`, for a run
            a fit starts.

    Bad options raise (TypeError, ValueError) when `fit` is called, before anything is
    fitted or recorded: scikit-learn estimators check their params at fit, not at
    construction, since `set_params` may change them in between.

    Attributes:
        estimator_: the fitted clone of `estimator`.
        run_id_: the id of the run the latest fit recorded into (None if none could start).
        model_version_: the version number registered by the latest fit, when the store
            made it during the fit (None when it was queued, or nothing was registered).
    """

    def __init__(
        self,
        estimator: Any,
        *,
        project: str | None = None,
        register_as: str | None = None,
        eval_set: Any = None,
        aliases: Sequence[str] = (),
        name: str | None = None,
        config: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        job_type: str | None = None,
        parent: registrum.Run | str | None = None,
        store: str | None = None,
        id: str | None = None,
        mode: str | None = None,
        capture_environment: bool = True,
        capture_code: bool = True,
        system_metrics: float | None = None,
    ) -> None:
        self.estimator = estimator
        self.project = project
        self.register_as = register_as
        self.eval_set = eval_set
        self.aliases = aliases
        self.name = name
        self.config = config
        self.tags = tags
        self.job_type = job_type
        self.parent = parent
        self.store = store
        self.id = id
        self.mode = mode
        self.capture_environment = capture_environment
        self.capture_code = capture_code
        self.system_metrics = system_metrics

    def _fit_options(self) -> FitOptions:
        """The options of a fit, checked: raises TypeError or ValueError on a bad one."""
        if not hasattr(self.estimator, "fit"):
            raise TypeError(
                f"TrackedEstimator wraps a scikit-learn estimator, got {self.estimator!r}"
            )
        run_options = {
            "name": self.name,
            "config": self.config,
            "tags": self.tags,
            "job_type": self.job_type,
            "parent": self.parent,
            "store": self.store,
            "id": self.id,
            "mode": self.mode,
            "capture_environment": self.capture_environment,
            "capture_code": self.capture_code,
            "system_metrics": self.system_metrics,
        }
        integration.check_options(
            "TrackedEstimator",
            self.project,
            register_as=self.register_as,
            aliases=self.aliases,
            run_options=run_options,
        )
        return FitOptions(
            project=self.project,
            run_options=run_options,
            register_as=self.register_as,
            aliases=self.aliases,
            eval_sets=eval_sets(self.eval_set),
        )

    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> TrackedEstimator:
        """Fits a clone of `estimator` on (X, y) and records the fit in a run.

        `fit_params` go to the wrapped estimator's `fit`. Tracking failures become
        RuntimeWarnings (errors under REGISTRUM_STRICT=1); the estimator's own errors raise.
        """
        record = FitRecord(self._fit_options(), fold=in_cross_validation())
        record.begin(self.estimator)
        fitted = clone(self.estimator)
        try:
            started = time.perf_counter()
            fitted.fit(X, y, **fit_params)
            fit_time = time.perf_counter() - started
        except BaseException:
            record.end("failed")
            raise
        self.estimator_ = fitted
        self.run_id_ = None if record.run is None else record.run.id
        self.model_version_ = record.record(self.estimator, fitted, X, y, fit_time)
        record.end("finished")
        return self

    # -- the wrapped estimator's methods and attributes ------------------------------------

    @_if_wrapped_has("predict")
    def predict(self, X: Any, **params: Any) -> Any:
        check_is_fitted(self)
        return self.estimator_.predict(X, **params)

    @_if_wrapped_has("predict_proba")
    def predict_proba(self, X: Any, **params: Any) -> Any:
        check_is_fitted(self)
        return self.estimator_.predict_proba(X, **params)

    @_if_wrapped_has("predict_log_proba")
    def predict_log_proba(self, X: Any, **params: Any) -> Any:
        check_is_fitted(self)
        return self.estimator_.predict_log_proba(X, **params)

    @_if_wrapped_has("decision_function")
    def decision_function(self, X: Any, **params: Any) -> Any:
        check_is_fitted(self)
        return self.estimator_.decision_function(X, **params)

    @_if_wrapped_has("transform")
    def transform(self, X: Any, **params: Any) -> Any:
        check_is_fitted(self)
        return self.estimator_.transform(X, **params)

    @_if_wrapped_has("transform")
    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        """Fits (recorded, as `fit`) and transforms X."""
        return self.fit(X, y, **fit_params).transform(X)

    @_if_wrapped_has("score")
    def score(self, X: Any, y: Any = None, **params: Any) -> float:
        check_is_fitted(self)
        return float(self.estimator_.score(X, y, **params))

    @property
    def classes_(self) -> Any:
        return self.estimator_.classes_

    @property
    def n_features_in_(self) -> int:
        return int(self.estimator_.n_features_in_)

    @property
    def feature_names_in_(self) -> Any:
        return self.estimator_.feature_names_in_

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "estimator_")

    def __sklearn_tags__(self) -> Any:
        return deepcopy(get_tags(self.estimator))
