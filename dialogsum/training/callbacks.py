"""Trainer callbacks: logs to the ``dialogsum`` logger, progress bars that print nothing else.

Imported only when training starts (it imports transformers).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transformers.trainer_callback import ProgressCallback, TrainerCallback

from dialogsum.errors import logger


class QuietProgress(ProgressCallback):
    """The Trainer's progress bars, without writing every log dict to stdout."""

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        """Leave logging to :class:`LogToLogger`."""


class LogToLogger(TrainerCallback):
    """Send the Trainer's log entries (loss, learning rate, eval loss) to our logger."""

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        """Log one entry, on the main process only."""
        if state.is_world_process_zero and logs:
            shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in logs.items()}
            logger.info("step %d: %s", state.global_step, shown)


class RunTotals(TrainerCallback):
    """Keeps the run's summed training loss across resumes.

    The Trainer divides the loss summed since it started by *all* steps, so after a resume its
    ``train_loss`` misses every step before the checkpoint. This callback makes the Trainer log at
    every save (so its running sum is complete there) and writes that sum into the checkpoint;
    a resumed run adds it back.
    """

    def __init__(self, trainer: Any, previous_sum: float = 0.0) -> None:
        self.trainer = trainer
        self.previous_sum = previous_sum

    def total(self) -> float:
        """The loss summed over every step so far, before and after any resume."""
        return self.previous_sum + float(self.trainer._total_loss_scalar)

    def _log_before_saving(self, control: Any) -> Any:
        if control.should_save:
            control.should_log = True
        return control

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        """Log whenever this step saves, so the sum written with the checkpoint is whole."""
        return self._log_before_saving(control)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        """Likewise for the save at the end of an epoch."""
        return self._log_before_saving(control)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Write the summed loss next to the checkpoint just saved."""
        from dialogsum.training.checkpoints import STATE_FILE

        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and folder.is_dir():
            payload = {"global_step": state.global_step, "loss_sum": self.total()}
            (folder / STATE_FILE).write_text(json.dumps(payload) + "\n", encoding="utf-8")


class RecordRun(TrainerCallback):
    """Write what a fresh run trains with beside its checkpoints when the first one is saved,
    for a resume to check (:func:`dialogsum.training.checkpoints.check_resumed_run`)."""

    def __init__(self, checkpoint_dir: Path, record: dict[str, Any]) -> None:
        from dialogsum.training.checkpoints import RUN_RECORD

        self.path = checkpoint_dir / RUN_RECORD
        self.text = json.dumps(record, indent=2, default=str) + "\n"

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Write the record once, from the main process."""
        if state.is_world_process_zero and not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(self.text, encoding="utf-8")
