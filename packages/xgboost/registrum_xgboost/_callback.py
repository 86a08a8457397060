"""`RegistrumCallback`: one XGBoost training callback that records a training in a run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import xgboost

from registrum import integration
from registrum.entities import encode_nonfinite
from registrum_xgboost._describe import (
    FLAVOR,
    Training,
    best,
    estimator_params,
    find_training,
    is_tree_booster,
    signature,
    write_importance,
    xgboost_class,
)

EvalsLog = xgboost.callback.TrainingCallback.EvalsLog

MODEL_FILE = "model.ubj"
IMPORTANCE_FILE = "feature_importance.csv"


class RegistrumCallback(integration.Tracked, xgboost.callback.TrainingCallback):
    """Records an XGBoost training in a Registrum run: params, metrics, feature importance
    and the model, registered when asked.

    Works with `xgb.train(callbacks=[...])`, `xgb.cv(callbacks=[...])` and the scikit-learn
    API (`XGBClassifier(callbacks=[...])`). Joins the active run (`registrum.active_run()`),
    or starts one before training and finishes it after. Only rank 0 records anything.

    Args:
        project: the project of a run it starts (`REGISTRUM_PROJECT`, else "default").
        register_as: a model name: the trained model is registered under it. Without it
            the model is still logged as the run's candidate.
        aliases: aliases the registered version gets.
        log_feature_importance: log the gain, weight and cover of each feature as a table.
        **run_options: the options of `registrum.init` (name, config, tags, job_type,
            parent, store, id, mode, ...) for a run it starts.
    """

    def __init__(
        self,
        project: str | None = None,
        *,
        register_as: str | None = None,
        aliases: Sequence[str] = (),
        log_feature_importance: bool = True,
        **run_options: Any,
    ) -> None:
        super().__init__()
        if not isinstance(log_feature_importance, bool):
            raise TypeError(
                f"log_feature_importance must be True or False, got {log_feature_importance!r}"
            )
        self.tracking = integration.Tracking.checked(
            "RegistrumCallback", project, run_options, register_as=register_as, aliases=aliases
        )
        self.log_feature_importance = log_feature_importance
        self._reset()

    def _reset(self) -> None:
        """Forgets everything a training made; a callback keeps only its options between
        trainings."""
        self._training: Training | None = None
        self._first_step = 0
        self._history: EvalsLog = {}
        self._final_model_seen_last = False

    # scikit-learn's `clone` deep-copies callbacks and process pools pickle them: only the
    # options travel (the tracking keeps its own), so each copy starts its own clean run.
    def __getstate__(self) -> dict[str, Any]:
        return {"tracking": self.tracking, "log_feature_importance": self.log_feature_importance}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__init__()
        self.__dict__.update(state)
        self._reset()

    def __repr__(self) -> str:
        t = self.tracking
        options = {"register_as": t.register_as, "aliases": t.aliases}
        shown = ", ".join(f"{k}={x!r}" for k, x in options.items() if x)
        return f"RegistrumCallback({t.project!r}{', ' if shown else ''}{shown})"

    # -- XGBoost hooks -------------------------------------------------------------------

    def before_training(self, model: Any) -> Any:
        with self.tracking.guard("before_training"):
            self._start(model)
        return model

    def after_iteration(self, model: Any, epoch: int, evals_log: EvalsLog) -> bool:
        with self.tracking.guard("after_iteration"):
            if self.tracking.run is not None:
                self._log_iteration(epoch, evals_log)
        return False

    def after_training(self, model: Any) -> Any:
        if not self._final_model_seen_last:
            self._complete(model)
        return model

    # -- what the hooks do ---------------------------------------------------------------

    def _start(self, model: Any) -> None:
        self.tracking.end("failed")  # a previous training that raised before its end
        self._reset()
        if xgboost.collective.get_rank() != 0:
            return
        training = find_training()
        run = self.tracking.begin(job_type="train")
        self._training = training
        self._first_step = model.num_boosted_rounds()  # continued training goes on counting
        run.config.update(training.params)
        for name, (role, data) in training.datasets.items():
            run.use_dataset(data, name=name, role=role)
        if training.container is not None and self in training.container.callbacks:
            # XGBoost calls after_training in list order and returns what the last callback
            # returned: a callback placed last sees the model the user gets, also when a
            # later EarlyStopping(save_best=True) cuts it back to its best iteration.
            training.container.callbacks.append(_FinalModel(self))
            self._final_model_seen_last = True

    def _log_iteration(self, epoch: int, evals_log: EvalsLog) -> None:
        """Logs the newest value of every eval set and metric, under XGBoost's names;
        `xgb.cv` gives (mean, std) pairs, logged as `<name>-mean` and `<name>-std`."""
        assert self.tracking.run is not None
        values: dict[str, float] = {}
        for data, metrics in evals_log.items():
            for metric, scores in metrics.items():
                latest = scores[-1]
                if isinstance(latest, tuple):
                    values[f"{data}-{metric}-mean"], values[f"{data}-{metric}-std"] = latest
                else:
                    values[f"{data}-{metric}"] = latest
        self._history = evals_log
        if values:
            self.tracking.run.log(values, step=self._first_step + epoch)

    def _complete(self, model: Any) -> None:
        """Logs what training ended with (best iteration and score, importance, model)
        and finishes the run this callback started."""
        run = self.tracking.run
        if run is None:
            return
        with self.tracking.guard("after_training"):
            best_found = best(model)
            if best_found is not None:
                iteration, score = best_found
                run.log({"best_iteration": iteration, "best_score": score}, step=iteration)
            if isinstance(model, xgboost.Booster) and not run.disabled:
                folder = self.tracking.scratch()
                if self.log_feature_importance and is_tree_booster(model):
                    table = write_importance(model, folder / IMPORTANCE_FILE)
                    run.log_artifact(table, name="feature-importance", type="table")
                self._log_model(model, folder / MODEL_FILE, best_found)
        self._training = None
        self.tracking.end("finished")

    def _log_model(
        self, booster: xgboost.Booster, path: Path, best_found: tuple[int, float] | None
    ) -> None:
        """Logs the model as UBJSON (flavor "xgboost") with what rebuilds it, and registers it
        when asked, with each eval metric at the model's last iteration."""
        assert self._training is not None
        booster.save_model(path)
        metadata: dict[str, Any] = {
            "file": path.name,
            "xgboost_version": xgboost.__version__,
            "num_boosted_rounds": booster.num_boosted_rounds(),
            "xgboost_class": "Booster",
        }
        estimator = self._training.estimator
        if estimator is not None:
            metadata["xgboost_class"] = xgboost_class(estimator)
            metadata["estimator_class"] = f"{type(estimator).__module__}.{type(estimator).__name__}"
            metadata["estimator_params"] = estimator_params(estimator)
        metrics = self._metrics_at(booster.num_boosted_rounds() - 1)
        if best_found is not None:
            metadata["best_iteration"], metadata["best_score"] = best_found
            metrics["best_iteration"], metrics["best_score"] = best_found
        self.tracking.log_model(
            path,
            flavor=FLAVOR,
            metadata=encode_nonfinite(metadata),
            metrics=metrics,
            signature=signature(booster),
        )

    def _metrics_at(self, iteration: int) -> dict[str, float]:
        """Each eval metric at a boosting iteration of this training (none before it)."""
        index = iteration - self._first_step
        return {
            f"{data}-{metric}": float(scores[index])  # type: ignore[arg-type]
            for data, metrics in self._history.items()
            for metric, scores in metrics.items()
            if 0 <= index < len(scores)
        }


class _FinalModel(xgboost.callback.TrainingCallback):
    """Placed last in the callback container by `RegistrumCallback`, so that it completes the
    run with the model the training function returns."""

    def __init__(self, owner: RegistrumCallback) -> None:
        super().__init__()
        self._owner = owner

    def after_training(self, model: Any) -> Any:
        self._owner._complete(model)
        return model
