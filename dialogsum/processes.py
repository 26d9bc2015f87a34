"""Worker processes that never outlive the process that started them.

A batch job's workers and a sweep's ``--workers`` run in processes of their own. Killed with
kill -9 (which no handler sees), the parent leaves them running: a batch worker holds a model
copy for nothing, and a sweep worker goes on asking the study for trials while a rerun of the
sweep reruns the one it was training. :func:`die_with_parent` has the kernel kill the worker
when its parent dies (Linux), and a watchdog thread does the same where that is not available.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

#: How often a worker's watchdog looks for its parent, in seconds.
WATCH_INTERVAL = 0.5
#: ``prctl`` option: the signal this process gets when its parent thread exits (linux/prctl.h).
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Make this worker process end as soon as its parent, ``parent_pid``, has ended.

    Called first thing in a worker, with the pid its parent passed it (``os.getppid()`` in
    the worker is already another process's where the parent died first).
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
