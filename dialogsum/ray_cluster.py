"""Ray for the commands that run on it (``dialogsum batch --engine ray``, ``dialogsum serve
--engine ray``): join the cluster that ``--ray-address`` or ``RAY_ADDRESS`` names, else start a
local Ray for the command, and keep the caller's SIGTERM handler either way.

Ray is imported only when a command connects; nothing here is imported by ``import dialogsum``.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

from dialogsum.errors import ConfigError, clause

#: Ray's settings for a local Ray started by a command. Its GCS lives and dies with the command
#: (a stop signal sent to the whole process group, as timeout(1) or systemd send it, ends it
#: first); Ray would wait 60 s for it to come back before giving up, and nothing brings it back.
_LOCAL_SYSTEM = {"gcs_rpc_server_reconnect_timeout_s": 5}


def connect(address: str | None, *, num_cpus: float) -> bool:
    """Join the cluster at ``address`` (the ``--ray-address`` setting), else at ``RAY_ADDRESS``,
    else start a local Ray with ``num_cpus`` logical CPUs. Returns whether a Ray was started
    or joined here (and so must be shut down by the caller): False when this process was
    already connected.

    Raises :class:`~dialogsum.errors.ConfigError` when the cluster named cannot be reached.
    """
    import ray

    if ray.is_initialized():
        return False
    # ray.init sets a SIGTERM handler that exits at once (status 15); keep the caller's, which
    # stops the command cleanly (its ray.shutdown still runs).
    kept = _sigterm_handler()
    try:
        _start(ray, address, num_cpus)
    finally:
        if kept is not None:
            signal.signal(signal.SIGTERM, kept)
    return True


def cluster_address(address: str | None) -> str | None:
    """The cluster a command joins: ``address`` (``--ray-address``), else ``RAY_ADDRESS``, else
    None (a local Ray is started)."""
    return address or os.environ.get("RAY_ADDRESS") or None


def _sigterm_handler() -> Any:
    """The SIGTERM handler to put back after ``ray.init``: None outside the main thread (where
    it cannot be set) or when it was set outside Python."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.getsignal(signal.SIGTERM)


def _start(ray: Any, address: str | None, num_cpus: float) -> None:
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
    joined = cluster_address(address)
    if joined:
        try:
            # Ray retries an address where nothing listens for minutes, logging as it goes.
            silent = _unanswered(joined)
            if silent is not None:
                raise ConnectionError(f"nothing answers there ({silent})")
            ray.init(address=joined, **options)
        except ConnectionError as exc:
            raise ConfigError(
                f"Cannot join the Ray cluster at {joined!r} (from "
                f"{'--ray-address' if address else 'RAY_ADDRESS'}): {clause(exc)}. Give the "
                f"address 'ray start --head' printed (or 'auto' on a cluster node), or leave both "
                f"unset to start a local Ray for the command."
            ) from None
    else:
        # "local": a Ray of this command's own, even where 'ray start' runs on this machine
        # (ray.init would join that one, and refuse num_cpus there).
        ray.init(address="local", num_cpus=num_cpus, _system_config=_LOCAL_SYSTEM, **options)


def _unanswered(address: str, timeout: float = 5.0) -> str | None:
    """Why nothing takes a connection at ``address`` (``host:port`` or ``ray://host:port``)
    within ``timeout`` seconds; None when something does, or the address is another form
    (``auto``), which Ray resolves itself."""
    import socket

    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not port.isdigit() or not host:
        return None
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return None
    except OSError as exc:
        return clause(exc.strerror or exc) or type(exc).__name__
