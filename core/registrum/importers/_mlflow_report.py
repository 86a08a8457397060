"""What an MLflow import copied, left and failed on: the importers' common report, with what
only MLflow has (logged models, aliases, the experiment id mapping), counted from several
threads at once."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from registrum.importers._progress import ImportReport


@dataclass
class MlflowImport(ImportReport):
    """The outcome of one `registrum import mlflow` (see `ImportReport` for the common counts:
    `projects` are the experiments visited, `models` the registered models made).

    Attributes:
        target: the Registrum store written to.
        seconds: how long the import took.
        logged_models: logged models (MLflow 3) newly copied.
        aliases: registered-model aliases newly set or moved to their MLflow version.
        experiment_ids: MLflow experiment id → Registrum experiment id (experiments are
            matched by name; Registrum assigns its own ids).
        renumbered: versions whose Registrum number differs from MLflow's (MLflow leaves
            gaps where versions were deleted; Registrum numbers consecutively).
    """

    target: str = ""
    seconds: float = 0.0
    logged_models: int = 0
    aliases: int = 0
    experiment_ids: dict[str, str] = field(default_factory=dict)
    renumbered: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, counter: str, n: int = 1) -> None:
        """Adds `n` to the count named `counter` (safe from any thread)."""
        with self._lock:
            setattr(self, counter, getattr(self, counter) + n)

    def skip(self, what: str, why: str) -> None:
        with self._lock:
            super().skip(what, why)

    def fail(self, what: str, error: str) -> None:
        with self._lock:
            super().fail(what, error)

    def render(self) -> str:
        first, *rest = super().render().splitlines()
        extra = [
            f"  and {self.logged_models} logged model(s), {self.aliases} alias(es) set; "
            f"into {self.target} in {self.seconds:.1f} s"
        ]
        if self.experiment_ids:
            pairs = ", ".join(f"{s} → {t}" for s, t in self.experiment_ids.items())
            extra.append(f"  experiment ids (MLflow → Registrum): {pairs}")
        extra += [f"  version renumbered: {r}" for r in self.renumbered]
        if self.ok and not self.copied_anything():
            extra.append("  0 new: everything was already in the target")
        return "\n".join([first, *extra, *rest])

    def copied_anything(self) -> bool:
        """Whether this import created anything (a repeated import creates nothing)."""
        counts = (self.runs, self.points, self.artifacts, self.models, self.versions)
        return any(counts) or bool(self.logged_models or self.aliases)
