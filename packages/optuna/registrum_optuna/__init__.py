"""Registrum for Optuna: `RegistrumCallback` records a study and registers its best model,
`trial_run` gives the objective its trial's run."""

from registrum.integration import require

require("optuna", extra="optuna", needs="Optuna")

from registrum_optuna._callback import RegistrumCallback, trial_run  # noqa: E402

__all__ = ["RegistrumCallback", "trial_run"]
