"""``dialogsum serve --engine ray``: the service's Ray Serve application (see
:mod:`~dialogsum.serve.ray_deployment`) run until SIGTERM or Ctrl-C.

It joins the cluster that ``ray_address`` or ``RAY_ADDRESS`` names, else starts a local Ray;
starts Ray Serve's HTTP proxy on ``host:port`` (where Serve is not running yet); deploys the
application as ``dialogsum`` at ``/`` and says where it listens once every replica has loaded
its model and summarized its warm-up dialogue. A stop deletes the application, so each replica
answers what it accepted first, then stops the Ray it started.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dialogsum.errors import BackendError, clause, logger
from dialogsum.serve.ray_deployment import DEPLOYMENT, Loader, build
from dialogsum.serve.settings import ServeSettings

#: The application's name on the cluster (``serve status``, ``serve delete dialogsum``).
APPLICATION = "dialogsum"

log = logger.getChild("serve")


def serve_on_ray(load: Loader, settings: ServeSettings) -> None:
    """Serve the model ``load`` builds on Ray Serve with ``settings`` until SIGTERM or SIGINT.

    Raises :class:`~dialogsum.errors.BackendError` when the replicas cannot start (a model
    that does not load, say), with the replica's own error.
    """
    import logging

    import ray
    from ray import serve

    from dialogsum.ray_cluster import connect

    # This console says when the service is ready and where; Ray Serve's own progress lines
    # (and its warning that a second start reuses the first) would only repeat it.
    logging.getLogger("ray.serve").setLevel(logging.WARNING)

    cores = os.cpu_count() or 1
    started_here = connect(
        settings.ray_address, num_cpus=max(cores, settings.most_replicas() * settings.replica_cpus)
    )
    try:
        port = settings.port or free_port(settings.host)  # (0 only on a local Ray)
        serve.start(
            http_options={"host": settings.host, "port": port},
            # dialogsum logs each request itself, and says when it is ready.
            logging_config={"log_level": "WARNING", "enable_access_log": False},
        )
        with stop_signals() as stopping:
            try:
                _deploy(serve, load, settings)  # a stop signal meanwhile waits for it
                if not stopping.is_set():
                    shown = f"[{settings.host}]" if ":" in settings.host else settings.host
                    log.info(
                        "listening on http://%s:%d (Ray Serve, %s)",
                        shown,
                        port,
                        _replicas(settings),
                    )
                while not stopping.wait(1.0):
                    pass
            finally:
                serve.delete(APPLICATION)  # each replica answers what it accepted first
    finally:
        if started_here:
            # A local Ray ends with its Serve; from a cluster, this process disconnects.
            ray.shutdown()


def free_port(host: str) -> int:
    """A port free on ``host`` now, for ``--port 0`` (Ray Serve's proxy needs a number)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _deploy(serve: Any, load: Loader, settings: ServeSettings) -> None:
    """Deploy the application and wait until every replica is ready."""
    try:
        serve.run(build(load, settings), name=APPLICATION, route_prefix="/", blocking=False)
    except RuntimeError as exc:
        raise BackendError(
            f"The replicas of dialogsum serve --engine ray could not start: "
            f"{clause(_replica_error(serve) or exc)}. The replica's log above has the whole "
            f"error."
        ) from None


def _replica_error(serve: Any) -> str | None:
    """The last line of the error a failed replica reported (its exception), if any."""
    try:
        status = serve.status().applications[APPLICATION].deployments[DEPLOYMENT]
    except Exception:  # the status itself is unavailable: the caller says what it knows
        return None
    lines = [line.strip() for line in (status.message or "").splitlines() if line.strip()]
    # The traceback's last line, without the exception's module: "ModelError: No model ...".
    return re.sub(r"^[\w.]+\.(\w+: )", r"\1", lines[-1]) if lines else None


def _replicas(settings: ServeSettings) -> str:
    if settings.max_replicas is None:
        return f"{settings.replicas} replica{'s' if settings.replicas != 1 else ''}"
    return f"{settings.min_replicas or 1} to {settings.max_replicas} replicas, autoscaling"


@contextmanager
def stop_signals() -> Iterator[threading.Event]:
    """An event set by the first SIGTERM or SIGINT within the block; that signal puts back the
    handlers in place before, so a second one ends the process at once if stopping hangs."""
    stopping = threading.Event()
    previous: dict[signal.Signals, Any] = {}

    def stop(number: int, frame: Any) -> None:
        stopping.set()
        for kind, handler in previous.items():
            signal.signal(kind, handler)

    for kind in (signal.SIGTERM, signal.SIGINT):
        previous[kind] = signal.signal(kind, stop)
    try:
        yield stopping
    finally:
        for kind, handler in previous.items():
            signal.signal(kind, handler)
