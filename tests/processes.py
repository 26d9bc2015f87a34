"""Whether processes a test started (or saw started) have ended."""

from __future__ import annotations

import time

import psutil


def is_gone(process: psutil.Process) -> bool:
    """Ended (a zombie has ended: where no init reaps orphans, it stays listed)."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def left_after(processes: list[psutil.Process], seconds: float) -> list[psutil.Process]:
    """Those of ``processes`` still running after up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        alive = [p for p in processes if not is_gone(p)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)
