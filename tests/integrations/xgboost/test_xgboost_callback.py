"""RegistrumCallback on real XGBoost trainings (train, cv, the scikit-learn API) and
load_model, against the embedded store and a real server."""

from __future__ import annotations

import copy
import csv
import io
import pickle
from typing import Any

import numpy as np
import pytest

import registrum
from lineage import check_evaluation_lineage
from registrum.client.names import run_name
from registrum.errors import InvalidArgument, ModelNotFound
from targets import Target

xgb = pytest.importorskip("xgboost")
pytest.importorskip("sklearn")

from registrum_xgboost import RegistrumCallback, load_model  # noqa: E402
from sklearn.base import clone  # noqa: E402

Data = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

# The environment and code captures are tested with the client; here they would only cost time.
QUICK: dict[str, Any] = {"capture_environment": False, "capture_code": False}

embedded_only = pytest.mark.parametrize("target", ["embedded"], indirect=True)


def series(target: Target, run_id: str, key: str) -> tuple[list[int], list[float]]:
    history = target.reader.metric_history(run_id, key)
    return [int(s) for s in history.steps], [float(x) for x in history.values]


def assert_logged_as(target: Target, run_id: str, evals_result: dict[str, Any]) -> None:
    """Every eval set and metric of XGBoost's own record is a series of the run, step for
    step, under XGBoost's name, and the run has no other eval series."""
    keys = set()
    for data_name, metrics in evals_result.items():
        for metric, values in metrics.items():
            key = f"{data_name}-{metric}"
            keys.add(key)
            assert series(target, run_id, key) == (list(range(len(values))), values), key
    logged = target.reader.get_run(run_id).metrics
    assert {k for k in logged if not k.startswith("best_")} == keys


def test_train_records_params_every_metric_and_importance_and_registers_the_booster(
    target: Target, data: Data, params: dict[str, Any]
) -> None:
    x, y, x_val, y_val = data
    dtrain, dval = xgb.DMatrix(x, y), xgb.DMatrix(x_val, y_val)
    evals_result: dict[str, Any] = {}
    callback = RegistrumCallback(
        "p", register_as="clf", aliases=["candidate"], store=target.store, **QUICK
    )
    booster = xgb.train(
        params,
        dtrain,
        6,
        evals=[(dtrain, "train"), (dval, "eval")],
        evals_result=evals_result,
        verbose_eval=False,
        callbacks=[callback],
    )

    run = target.reader.get_run(callback.run_id)
    assert run.status == "finished" and run.project == "p"
    assert run.params == {**params, "num_boost_round": 6, "data.rows": 180, "data.columns": 6}
    assert_logged_as(target, run.id, evals_result)
    assert target.reader.run_inputs(run.id) == []  # a DMatrix's data is out of reach

    version = target.reader.get_model_version("clf@candidate")
    assert version.run_id == run.id and version.flavor == "xgboost"
    assert version.artifact.metadata["xgboost_class"] == "Booster"
    assert version.metrics == {
        f"{d}-{m}": values[-1]
        for d, metrics in evals_result.items()
        for m, values in metrics.items()
    }
    assert [i["name"] for i in version.signature["inputs"]] == [f"f{i}" for i in range(6)]
    loaded = load_model("clf@candidate", store=target.store)
    assert type(loaded) is xgb.Booster
    np.testing.assert_array_equal(loaded.predict(dval), booster.predict(dval))

    (listed,) = target.reader.list_artifacts("p", name="feature-importance", run_id=run.id)
    table = target.reader.get_artifact_by_id(listed.id)
    text = b"".join(target.reader.read_blob(table.files[0].sha256)).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["feature"] for r in rows] == [f"f{i}" for i in range(6)]
    for kind in ("gain", "weight", "cover"):
        scores = booster.get_score(importance_type=kind)
        assert {r["feature"]: float(r[kind]) for r in rows} == {
            f"f{i}": scores.get(f"f{i}", 0.0) for i in range(6)
        }


def test_the_sklearn_api_records_the_frame_and_reloads_as_the_estimator(
    target: Target, data: Data
) -> None:
    pd = pytest.importorskip("pandas")
    x, y, x_val, y_val = data
    columns = ["age", "income", "tenure", "visits", "spend", "score"]
    frame, val_frame = pd.DataFrame(x, columns=columns), pd.DataFrame(x_val, columns=columns)
    callback = RegistrumCallback("p", register_as="skl", store=target.store, **QUICK)
    model = xgb.XGBClassifier(
        n_estimators=5, max_depth=3, missing=-999.0, nthread=1, callbacks=[callback]
    )
    model.fit(frame, y, eval_set=[(frame, y), (val_frame, y_val)], verbose=False)

    run = target.reader.get_run(callback.run_id)
    booster_params = {k: x for k, x in model.get_xgb_params().items() if x is not None}
    assert run.params == {
        **booster_params,
        "num_boost_round": 5,
        "estimator": "XGBClassifier",
        "data.rows": 180,
        "data.columns": 6,
    }
    assert_logged_as(target, run.id, model.evals_result())
    assert sorted(model.evals_result()) == ["validation_0", "validation_1"]
    datasets = {d.name: d for d in target.reader.list_datasets("p")}
    assert sorted(datasets) == [
        "X_train",
        "X_validation_0",
        "X_validation_1",
        "y_train",
        "y_validation_0",
        "y_validation_1",
    ]
    assert sorted(datasets["X_validation_1"].schema["columns"]) == sorted(columns)
    assert datasets["X_train"].rows == datasets["y_train"].rows == 180
    assert datasets["X_validation_1"].rows == 60
    assert datasets["X_validation_0"].fingerprint == datasets["X_train"].fingerprint
    roles = [i["role"] for i in target.reader.run_inputs(run.id)]
    assert sorted(roles) == ["eval"] * 4 + ["train"] * 2

    version = target.reader.get_model_version("skl")
    assert version.artifact.metadata["xgboost_class"] == "XGBClassifier"
    assert [i["name"] for i in version.signature["inputs"]] == columns
    loaded = load_model("skl", store=target.store)
    assert type(loaded) is xgb.XGBClassifier
    assert loaded.missing == -999.0 and loaded.max_depth == 3 and loaded.n_estimators == 5
    np.testing.assert_array_equal(loaded.predict_proba(val_frame), model.predict_proba(val_frame))
    np.testing.assert_array_equal(loaded.predict(val_frame), model.predict(val_frame))


def test_cv_logs_the_mean_and_std_of_every_metric_and_saves_no_model(
    target: Target, data: Data, params: dict[str, Any]
) -> None:
    x, y, _, _ = data
    callback = RegistrumCallback("p", register_as="never", store=target.store, **QUICK)
    results = xgb.cv(
        params, xgb.DMatrix(x, y), 4, nfold=3, seed=0, as_pandas=False, callbacks=[callback]
    )

    run = target.reader.get_run(callback.run_id)
    assert run.status == "finished"
    assert run.params["num_boost_round"] == 4
    assert (run.params["cv.nfold"], run.params["cv.seed"]) == (3, 0)
    assert sorted(run.metrics) == sorted(results)
    assert "test-auc-std" in results
    for key, values in results.items():
        assert series(target, run.id, key) == (list(range(4)), [float(v) for v in values]), key
    assert target.reader.list_artifacts("p") == []
    with pytest.raises(ModelNotFound):
        target.reader.get_model("never")


def test_a_cloned_classifier_fitted_twice_gives_two_clean_runs(target: Target, data: Data) -> None:
    x, y, x_val, y_val = data
    callback = RegistrumCallback("p", store=target.store, **QUICK)
    fitted = xgb.XGBClassifier(n_estimators=2, nthread=1, callbacks=[callback])
    fitted.fit(x, y, eval_set=[(x_val, y_val)], verbose=False)
    model = clone(fitted)
    (copied,) = model.callbacks
    assert copied is not callback and copied.run_id is None and callback.run_id is not None

    model.set_params(n_estimators=3)
    model.fit(x, y, eval_set=[(x_val, y_val)], verbose=False)
    first_run, first_record = copied.run_id, model.evals_result()
    model.set_params(n_estimators=4)
    model.fit(x_val, y_val, eval_set=[(x, y)], verbose=False)
    second_run = copied.run_id

    assert len({callback.run_id, first_run, second_run}) == 3
    for run_id, rounds, record in (
        (first_run, 3, first_record),
        (second_run, 4, model.evals_result()),
    ):
        run = target.reader.get_run(run_id)
        assert run.status == "finished" and run.params["num_boost_round"] == rounds
        assert_logged_as(target, run_id, record)
    for fresh in (pickle.loads(pickle.dumps(copied)), copy.deepcopy(copied)):
        assert fresh.run_id is None
        assert fresh.tracking.run_options == copied.tracking.run_options


def test_early_stopping_records_the_best_iteration_and_score(target: Target, data: Data) -> None:
    x, y, x_val, y_val = data
    callback = RegistrumCallback("p", register_as="stopped", store=target.store, **QUICK)
    model = xgb.XGBClassifier(
        n_estimators=200,
        learning_rate=0.5,
        max_depth=6,
        early_stopping_rounds=3,
        nthread=1,
        callbacks=[callback],
    )
    model.fit(x, y, eval_set=[(x_val, y_val)], verbose=False)
    rounds = len(model.evals_result()["validation_0"]["logloss"])
    assert rounds < 200  # it did stop early

    run = target.reader.get_run(callback.run_id)
    assert run.params["early_stopping.rounds"] == 3
    assert run.params["early_stopping.save_best"] is False
    assert_logged_as(target, run.id, model.evals_result())
    assert series(target, run.id, "best_iteration") == (
        [model.best_iteration],
        [model.best_iteration],
    )
    assert series(target, run.id, "best_score") == ([model.best_iteration], [model.best_score])
    version = target.reader.get_model_version("stopped")
    assert version.metrics["best_iteration"] == model.best_iteration
    assert version.metrics["best_score"] == model.best_score
    loaded = load_model("stopped", store=target.store)
    assert loaded.best_iteration == model.best_iteration
    np.testing.assert_array_equal(loaded.predict_proba(x_val), model.predict_proba(x_val))


def test_a_later_save_best_early_stopping_decides_the_registered_model(
    target: Target, data: Data, params: dict[str, Any]
) -> None:
    x, y, x_val, y_val = data
    dtrain, dval = xgb.DMatrix(x, y), xgb.DMatrix(x_val, y_val)
    evals_result: dict[str, Any] = {}
    callback = RegistrumCallback("p", register_as="best", store=target.store, **QUICK)
    stopper = xgb.callback.EarlyStopping(
        rounds=3, save_best=True, data_name="eval", metric_name="logloss"
    )
    booster = xgb.train(
        {**params, "eta": 0.5, "max_depth": 6},
        dtrain,
        200,
        evals=[(dtrain, "train"), (dval, "eval")],
        evals_result=evals_result,
        verbose_eval=False,
        callbacks=[callback, stopper],
    )
    best = booster.best_iteration
    assert booster.num_boosted_rounds() == best + 1 < len(evals_result["eval"]["logloss"])

    run = target.reader.get_run(callback.run_id)
    assert run.params["early_stopping.save_best"] is True
    assert run.params["early_stopping.metric_name"] == "logloss"
    assert_logged_as(target, run.id, evals_result)  # every iteration, the discarded ones too
    version = target.reader.get_model_version("best")
    assert version.artifact.metadata["num_boosted_rounds"] == best + 1
    assert version.metrics["eval-logloss"] == evals_result["eval"]["logloss"][best]
    loaded = load_model("best", store=target.store)
    assert loaded.num_boosted_rounds() == best + 1
    np.testing.assert_array_equal(loaded.predict(dval), booster.predict(dval))


@embedded_only
def test_joins_the_active_run_and_continued_training_goes_on_counting_steps(
    target: Target, data: Data, params: dict[str, Any]
) -> None:
    x, y, _, _ = data
    dtrain = xgb.DMatrix(x, y)
    callback = RegistrumCallback(store=target.store)
    with registrum.init(project="q", store=target.store, **QUICK) as run:
        first = xgb.train(
            params, dtrain, 3, evals=[(dtrain, "train")], verbose_eval=False, callbacks=[callback]
        )
        xgb.train(
            params,
            dtrain,
            2,
            evals=[(dtrain, "train")],
            verbose_eval=False,
            xgb_model=first,
            callbacks=[callback],
        )
        assert callback.run_id == run.id
        assert target.reader.get_run(run.id).status == "running"
    assert target.reader.get_run(run.id).status == "finished"
    assert series(target, run.id, "train-logloss")[0] == [0, 1, 2, 3, 4]
    models = target.reader.list_artifacts("q", name=f"{run.name}-model")
    assert sorted(m.metadata["num_boosted_rounds"] for m in models) == [3, 5]


@embedded_only
def test_a_grid_search_gives_a_run_per_fit(target: Target, data: Data) -> None:
    from sklearn.model_selection import GridSearchCV

    x, y, _, _ = data
    callback = RegistrumCallback("grid", store=target.store, **QUICK)
    search = GridSearchCV(
        xgb.XGBClassifier(n_estimators=2, nthread=1, callbacks=[callback]),
        {"max_depth": [2, 3]},
        cv=2,
    )
    search.fit(x, y)
    runs = target.reader.search_runs("grid", limit=100).items
    assert len(runs) == 2 * 2 + 1  # each candidate on each fold, and the refit
    depths = [2, 2, 3, 3, search.best_params_["max_depth"]]
    assert sorted(r.params["max_depth"] for r in runs) == sorted(depths)
    assert {r.status for r in runs} == {"finished"} and callback.run_id is None


def test_a_loaded_version_is_in_the_evaluation_runs_lineage_online_and_offline(
    target: Target, data: Data, params: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y, _, _ = data
    callback = RegistrumCallback("p", register_as="used", store=target.store, **QUICK)
    xgb.train(params, xgb.DMatrix(x, y), 2, verbose_eval=False, callbacks=[callback])
    run = target.reader.get_run(callback.run_id)
    assert run.job_type == "train" and run.name == run_name(run.id)
    check_evaluation_lineage(target, "used@1", load_model, monkeypatch)


@embedded_only
def test_a_training_that_raised_is_marked_failed_by_the_next_one(
    target: Target, data: Data, params: dict[str, Any]
) -> None:
    class Diverge(xgb.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            if epoch == 1:
                raise FloatingPointError("diverged")
            return False

    x, y, _, _ = data
    dtrain = xgb.DMatrix(x, y)
    callback = RegistrumCallback("p", store=target.store, **QUICK)
    with pytest.raises(FloatingPointError):
        xgb.train(params, dtrain, 4, verbose_eval=False, callbacks=[callback, Diverge()])
    interrupted = callback.run_id
    xgb.train(params, dtrain, 2, verbose_eval=False, callbacks=[callback])
    assert interrupted is not None and callback.run_id != interrupted
    assert target.reader.get_run(interrupted).status == "failed"
    assert target.reader.get_run(callback.run_id).status == "finished"


@embedded_only
def test_a_failure_inside_the_callback_is_a_warning_unless_strict(
    target: Target, data: Data, params: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: registrum.Run, *args: Any, **kwargs: Any) -> None:
        raise InvalidArgument("refused")

    x, y, _, _ = data
    dtrain = xgb.DMatrix(x, y)
    monkeypatch.setattr(registrum.Run, "log", refuse)
    monkeypatch.setenv("REGISTRUM_STRICT", "0")
    callback = RegistrumCallback("p", store=target.store, **QUICK)
    with pytest.warns(RuntimeWarning, match="after_iteration failed.*refused") as caught:
        booster = xgb.train(
            params, dtrain, 3, evals=[(dtrain, "train")], verbose_eval=False, callbacks=[callback]
        )
    assert len(caught) == 1 and booster.num_boosted_rounds() == 3
    assert target.reader.get_run(callback.run_id).status == "finished"

    monkeypatch.setenv("REGISTRUM_STRICT", "1")
    with pytest.raises(InvalidArgument, match="refused"):
        xgb.train(
            params, dtrain, 3, evals=[(dtrain, "train")], verbose_eval=False, callbacks=[callback]
        )
    assert target.reader.get_run(callback.run_id).status == "failed"


@embedded_only
def test_other_ranks_record_nothing(
    target: Target, data: Data, params: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(xgb.collective, "get_rank", lambda: 1)
    x, y, _, _ = data
    dtrain = xgb.DMatrix(x, y)
    callback = RegistrumCallback("p", register_as="rank", store=target.store, **QUICK)
    booster = xgb.train(
        params, dtrain, 3, evals=[(dtrain, "train")], verbose_eval=False, callbacks=[callback]
    )
    assert booster.num_boosted_rounds() == 3
    assert callback.run_id is None and registrum.active_run() is None
    assert target.reader.list_projects() == []


@embedded_only
@pytest.mark.parametrize(
    ("booster", "log_feature_importance"), [("gblinear", True), ("gbtree", False)]
)
def test_no_importance_table_for_linear_boosters_or_when_switched_off(
    target: Target, data: Data, params: dict[str, Any], booster: str, log_feature_importance: bool
) -> None:
    x, y, x_val, _ = data
    dtrain = xgb.DMatrix(x, y)
    callback = RegistrumCallback(
        "p",
        register_as=booster,
        log_feature_importance=log_feature_importance,
        store=target.store,
        **QUICK,
    )
    params = {k: x for k, x in params.items() if k != "max_depth"}  # not a linear one
    trained = xgb.train(
        {**params, "booster": booster}, dtrain, 3, verbose_eval=False, callbacks=[callback]
    )
    artifacts = target.reader.list_artifacts("p", run_id=callback.run_id)
    assert [a.type for a in artifacts] == ["model"]
    loaded = load_model(booster, store=target.store)
    dval = xgb.DMatrix(x_val)
    np.testing.assert_array_equal(loaded.predict(dval), trained.predict(dval))
    assert repr(callback) == f"RegistrumCallback('p', register_as={booster!r})"


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"project": "a/b"}, InvalidArgument, "project name"),
        ({"register_as": "m@1"}, InvalidArgument, "model name"),
        ({"aliases": "champion"}, TypeError, "list of names"),
        ({"aliases": ["9lives"]}, InvalidArgument, "alias"),
        ({"log_feature_importance": "yes"}, TypeError, "True or False"),
        ({"stor": "http://x"}, TypeError, "stor"),
    ],
)
def test_bad_arguments_raise_at_construction(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        RegistrumCallback(**options)


@embedded_only
def test_load_model_refuses_a_model_of_another_flavor(target: Target, tmp_path: Any) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"not xgboost")
    with registrum.init(project="p", store=target.store, **QUICK) as run:
        run.register_model("other", path=path, flavor="keras")
    with pytest.raises(ValueError, match="'keras' model"):
        load_model("other", store=target.store)
