"""How long a batch job and its worker processes live.

SIGTERM (``kill``, a scheduler's stop, a container's shutdown) stops a job the way Ctrl-C does:
:func:`stop_on_signals` turns either into :class:`Stopped`, the engine abandons the chunks in
flight (the output keeps every chunk already written, so the same command resumes), and the
command says so and exits 128 + the signal's number. A worker process never outlives its job,
however the job ends (kill -9 included, which no handler sees): :func:`die_with_parent` has the
kernel kill the worker when its parent dies (Linux), and a watchdog thread does the same where
that is not available.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

#: The signals that stop a job cleanly.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: How often a worker's watchdog looks for its parent, in seconds.
WATCH_INTERVAL = 0.5
#: ``prctl`` option: the signal this process gets when its parent thread exits (linux/prctl.h).
_PR_SET_PDEATHSIG = 1


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


def die_with_parent(parent_pid: int) -> None:
    """Make this worker process end as soon as its parent, ``parent_pid``, has ended.

    Called first thing in a worker. Its work is only ever written by its parent, so a worker
    whose parent is gone holds memory (a model copy) for nothing.
    """
    if sys.platform == "linux":
        _kill_me_on_parent_death()
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(1)
    watchdog = threading.Thread(
        target=_watch_parent, args=(parent_pid,), name="dialogsum-parent-watch", daemon=True
    )
    watchdog.start()


def _kill_me_on_parent_death() -> None:
    """Ask Linux to SIGKILL this process when its parent exits (``PR_SET_PDEATHSIG``): it works
    even when this process is busy in native code, where no Python thread would run."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # no prctl to call: the watchdog does the work
        pass


def _watch_parent(parent_pid: int) -> None:
    """Exit once this process has another parent (its own died and it was adopted)."""
    while True:
        if os.getppid() != parent_pid:
            os._exit(1)  # from a thread: sys.exit would end only this thread
        time.sleep(WATCH_INTERVAL)
