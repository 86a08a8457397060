"""Which checkpoint files a fit's `ModelCheckpoint` wrote are uploaded, and which one becomes
the model."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint

import registrum

CHECKPOINTS = ("best", "last", "all", None)


class Checkpoints:
    """The checkpoint files of one fit already seen, and those `keep` asks to upload."""

    def __init__(self, keep: str | None) -> None:
        self.keep = keep
        self._seen: dict[str, tuple[int, int, int]] = {}

    def skip_existing(self, trainer: pl.Trainer) -> None:
        """Marks the files already there (of a fit this one resumes) as seen: they are not new."""
        for checkpoint in trainer.checkpoint_callbacks:
            if isinstance(checkpoint, ModelCheckpoint):
                self._newly_written(checkpoint)

    def upload(self, run: registrum.Run, checkpoint: ModelCheckpoint, step: int) -> None:
        """Hands the checkpoints just written that `keep` asks for to the run, which uploads
        them in the background, each with its monitored score."""
        if self.keep is None:
            return
        for path in self._to_upload(checkpoint):
            score = checkpoint.best_k_models.get(path)
            if score is None and path == checkpoint.best_model_path:
                score = checkpoint.best_model_score
            if score is None:
                score = checkpoint.current_score
            metrics = {}
            if checkpoint.monitor and score is not None:
                metrics[checkpoint.monitor] = float(score)
            # "best" keeps the current best per run: each new best replaces the one before.
            best = path == checkpoint.best_model_path
            run.log_checkpoint(
                path, step=step, metrics=metrics, best=best, keep_earlier_best=self.keep != "best"
            )

    def _to_upload(self, checkpoint: ModelCheckpoint) -> list[str]:
        """The files `keep` asks for among those written since the last look."""
        written = self._newly_written(checkpoint)
        if self.keep == "best":
            return [p for p in written if p == checkpoint.best_model_path]
        if self.keep == "last" and checkpoint.save_last:
            return [p for p in written if p == checkpoint.last_model_path]
        return written

    def _newly_written(self, checkpoint: ModelCheckpoint) -> list[str]:
        """The checkpoint files written or rewritten since the last look."""
        known = {*checkpoint.best_k_models, checkpoint.best_model_path, checkpoint.last_model_path}
        written = []
        for path in sorted(p for p in known if p):
            try:
                stat = Path(path).stat()
            except OSError:
                continue  # pruned already, or on a remote filesystem
            # Lightning writes each checkpoint to a new file moved into place: a new inode,
            # even when the same name is rewritten within the clock's resolution.
            identity = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if self._seen.get(path) != identity:
                self._seen[path] = identity
                written.append(path)
        return written


def final_checkpoint(trainer: pl.Trainer, folder: Path) -> tuple[Path, str | None, float | None]:
    """The checkpoint that becomes the model: the best by ModelCheckpoint's monitor, else the
    last one written, else one saved now into `folder`; with the monitor and its score."""
    checkpoint = trainer.checkpoint_callback
    if isinstance(checkpoint, ModelCheckpoint):
        if checkpoint.monitor and checkpoint.best_model_path:
            score = checkpoint.best_model_score
            return (
                Path(checkpoint.best_model_path),
                checkpoint.monitor,
                None if score is None else float(score),
            )
        last = checkpoint.last_model_path or checkpoint.best_model_path
        if last:
            return Path(last), None, None
    path = folder / "model.ckpt"
    trainer.save_checkpoint(path)
    return path, None, None
