"""One worker of a sweep shared by processes: `python optuna_worker.py STORAGE STUDY TRIALS`.

Loads the study from the Optuna storage and runs TRIALS trials of a cheap objective that
reports intermediate values and logs a tiny model inside `trial_run`.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import optuna
from registrum_optuna import RegistrumCallback, trial_run


def objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -4.0, 4.0)
    with trial_run(trial) as run:
        for step in range(3):
            trial.report((x - 1.0) ** 2 + 1.0 / (step + 1), step)
        with tempfile.TemporaryDirectory() as folder:
            model = Path(folder) / "model.txt"
            model.write_text(f"x={x}\n")
            run.log_model(model, flavor="text")
    return (x - 1.0) ** 2


def main() -> None:
    storage, name, trials = sys.argv[1], sys.argv[2], int(sys.argv[3])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=storage)
    callback = RegistrumCallback(project="shared", register_as="shared-model")
    study.optimize(objective, n_trials=trials, callbacks=[callback])
    callback.finish(study)


if __name__ == "__main__":
    main()
