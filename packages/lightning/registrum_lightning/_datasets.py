"""The datasets behind a stage's dataloaders, recorded once per role: array-backed ones by
their content, hashed in a thread of their own, every one by its class and length."""

from __future__ import annotations

import threading
from typing import Any

import registrum
from registrum import integration
from registrum_lightning import _capture


class Datasets:
    """One stage's datasets; `wait` returns the first failure a strict run must raise."""

    def __init__(self, tracking: integration.Tracking) -> None:
        self.tracking = tracking
        self._described: set[str] = set()
        self._threads: list[threading.Thread] = []
        self._errors: list[Exception] = []

    def use(self, role: str, dataloaders: Any) -> None:
        run = self.tracking.run
        if run is None or dataloaders is None or role in self._described:
            return
        self._described.add(role)
        found = list(_capture.loaders(dataloaders))
        parts: list[tuple[Any, str]] = []
        for i, loader in enumerate(found):
            name = role if len(found) == 1 else f"{role}-{i}"
            run.config.update({"data": {name: _capture.description(loader.dataset)}})
            arrays = _capture.arrays(loader.dataset) or []
            parts += [
                (a, name if len(arrays) == 1 else f"{name}.{j}") for j, a in enumerate(arrays)
            ]
        if parts:
            # Hashing the data (which releases the GIL) overlaps the first steps of training.
            thread = threading.Thread(
                target=self._fingerprint,
                args=(run, parts, role),
                name=f"registrum-datasets-{role}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def _fingerprint(self, run: registrum.Run, parts: list[tuple[Any, str]], role: str) -> None:
        for array, name in parts:
            try:
                run.use_dataset(array, name=name, role=role)
            except Exception as exc:
                if integration.strict(run):
                    self._errors.append(exc)  # raised on the trainer's thread, by `wait`
                else:
                    integration.warn_once(
                        self.tracking.warned, "RegistrumCallback.use_dataset", exc
                    )

    def wait(self) -> Exception | None:
        """Waits until the datasets are recorded (before the run ends)."""
        for thread in self._threads:
            thread.join()
        self._threads = []
        return self._errors[0] if self._errors else None
