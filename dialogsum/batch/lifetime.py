"""How long a batch job and its worker processes live.

SIGTERM (``kill``, a scheduler's stop, a container's shutdown) stops a job the way Ctrl-C does:
:func:`stop_on_signals` turns either into :class:`Stopped`, the engine abandons the chunks in
flight (the output keeps every chunk already written, so the same command resumes), and the
command says so and exits 128 + the signal's number. A worker process never outlives its job,
however the job ends (kill -9 included, which no handler sees): see
:func:`dialogsum.processes.die_with_parent`.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

#: The signals that stop a job cleanly.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(KeyboardInterrupt):
    """The job was stopped by SIGINT or SIGTERM.

    A :class:`KeyboardInterrupt`, so that whatever cleans up after Ctrl-C (closing the output,
    ending the workers) cleans up after SIGTERM too.
    """

    def __init__(self, signal_number: int) -> None:
        self.signal_number = signal_number
        super().__init__(signal.Signals(signal_number).name)

    @property
    def signal_name(self) -> str:
        """``SIGINT`` or ``SIGTERM``."""
        return signal.Signals(self.signal_number).name

    @property
    def exit_status(self) -> int:
        """The shell's convention for a process ended by this signal: 128 + its number."""
        return 128 + self.signal_number


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGINT or SIGTERM raises :class:`Stopped` in the main thread.

    Only the first signal does: it puts back the handlers that were there before, so a second
    Ctrl-C or SIGTERM ends the process the usual way if cleaning up takes too long. Outside the
    main thread (where Python cannot set handlers) the block runs with the handlers as they are.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}

    def restore() -> None:
        for number, handler in previous.items():
            # None: a handler set outside Python, which Python cannot put back.
            signal.signal(number, signal.SIG_DFL if handler is None else handler)

    def stop(number: int, frame: FrameType | None) -> None:
        restore()
        raise Stopped(number)

    for number in STOP_SIGNALS:
        previous[number] = signal.signal(number, stop)
    try:
        yield
    finally:
        restore()
