"""What every framework integration shares: checking the options it takes, and turning a
failure inside a framework hook into one warning, or an exception under REGISTRUM_STRICT=1.

Integrations (`registrum_lightning`, `registrum_keras`, ...) import this; training code does
not need it.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from registrum.client.run import Run
from registrum.client.settings import ClientSettings
from registrum.client.start import init
from registrum.errors import RegistrumError
from registrum.store import validation


def check_options(
    owner: str,
    project: str | None,
    *,
    register_as: str | None = None,
    aliases: Sequence[str] = (),
    run_options: Mapping[str, Any] | None = None,
) -> list[str]:
    """Raises at construction for options `registrum.init` would refuse later (unknown run
    options, bad names); returns the aliases as a list."""
    try:
        inspect.signature(init).bind(project, **dict(run_options or {}))
    except TypeError as exc:
        raise TypeError(f"{owner}: {exc}; see registrum.init") from None
    if project is not None:
        validation.name(project, "project name")
    if register_as is not None:
        validation.name(register_as, "model name")
    if isinstance(aliases, str):
        raise TypeError(f"aliases must be a list of names, not the string {aliases!r}")
    for alias in aliases:
        validation.alias(alias)
    return list(aliases)


def strict(run: Run | None = None) -> bool:
    """Whether failures raise: the run's setting, else `REGISTRUM_STRICT`."""
    if run is not None:
        return run.settings.strict
    try:
        return ClientSettings.from_env().strict
    except RegistrumError:
        return False


def warn_once(warned: set[str], where: str, exc: BaseException) -> None:
    """One `RuntimeWarning` per place (`warned` remembers them): training goes on."""
    if where in warned:
        return
    warned.add(where)
    warnings.warn(
        f"registrum: {where} failed; training goes on without it: {type(exc).__name__}: {exc}",
        RuntimeWarning,
        stacklevel=4,
    )
