"""Registrum for Optuna: `RegistrumCallback` records a study and registers its best model,
`trial_run` gives the objective its trial's run."""

try:
    import optuna  # noqa: F401
except ImportError as exc:
    raise ImportError('registrum_optuna needs Optuna: pip install "registrum[optuna]"') from exc

from registrum_optuna._callback import RegistrumCallback, trial_run

__all__ = ["RegistrumCallback", "trial_run"]
