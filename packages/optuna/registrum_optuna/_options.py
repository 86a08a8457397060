"""What a `RegistrumCallback` was made with, and how its failures are reported."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from registrum import integration
from registrum.client.settings import ClientSettings

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
    warned: set[str] = field(default_factory=set, compare=False)  # the places warned about

    @property
    def store(self) -> str | None:
        store: str | None = self.run_options.get("store")
        return store

    def settings(self) -> ClientSettings:
        return ClientSettings.from_env(store=self.store, mode=self.run_options.get("mode"))


def warn(message: str) -> None:
    warnings.warn(f"registrum: {message}", RuntimeWarning, stacklevel=3)


def guarded(options: Options, where: str) -> AbstractContextManager[None]:
    """The integration kit's guard: a failure is a warning once per place, so that tracking
    never fails a trial; under REGISTRUM_STRICT=1 it raises."""
    return integration.guard(f"RegistrumCallback.{where}", options.warned)


def trial_run_id(sweep_id: str, number: int) -> str:
    return uuid.uuid5(uuid.UUID(sweep_id), f"trial-{number}").hex
