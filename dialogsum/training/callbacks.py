"""Trainer callbacks: logs to the ``dialogsum`` logger, progress bars that print nothing else.

Imported only when training starts (it imports transformers).
"""

from __future__ import annotations

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
