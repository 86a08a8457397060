"""What a `RegistrumCallback` was made with, and how its failures are reported."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from registrum.client.settings import ClientSettings
from registrum.errors import StoreUnavailable

NAMESPACE = uuid.UUID("6f1b2a3c-5d4e-4f60-8a7b-9c0d1e2f3a4b")
REGISTER = ("on_improvement", "at_end")


@dataclass(frozen=True)
class Options:
    """What a `RegistrumCallback` was made with."""

    project: str | None
    register_as: str | None
    alias: str | None
    register: str
    metric_names: tuple[str, ...] | None
    alias_objective: int | None
    run_options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def store(self) -> str | None:
        store: str | None = self.run_options.get("store")
        return store

    def settings(self) -> ClientSettings:
        return ClientSettings.from_env(store=self.store, mode=self.run_options.get("mode"))


def warn(message: str) -> None:
    warnings.warn(f"registrum: {message}", RuntimeWarning, stacklevel=3)


@contextmanager
def guarded(options: Options, what: str) -> Iterator[None]:
    """Turns a failure into a warning, so that tracking never fails a trial; under
    REGISTRUM_STRICT=1 it raises instead, unless the store is only unreachable (what was
    logged then waits in the spool)."""
    try:
        yield
    except Exception as exc:
        if options.settings().strict and not isinstance(exc, StoreUnavailable):
            raise
        warn(f"could not {what}; the study goes on: {type(exc).__name__}: {exc}")


def trial_run_id(sweep_id: str, number: int) -> str:
    return uuid.uuid5(uuid.UUID(sweep_id), f"trial-{number}").hex
