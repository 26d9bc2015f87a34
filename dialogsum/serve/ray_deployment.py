"""The service as a Ray Serve application: replicas that each load the model once and serve the
same FastAPI app as ``dialogsum serve`` (``create_app``), micro-batching included.

:func:`build` returns the application for ``serve.run`` or for a Ray Serve config file of your
own (``import_path``; see ``docs/serving.md``); ``dialogsum serve --engine ray`` runs it. Ray
Serve's proxy routes each request to a replica, and its health check asks the replica's app
whether it is ready (what ``GET /readyz`` answers).

Ray is imported only when :func:`build` is called (``pip install 'dialogsum[ray-serve]'``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dialogsum.errors import logger, require
from dialogsum.serve.settings import ServeSettings

if TYPE_CHECKING:
    from fastapi import FastAPI
    from ray.serve import Application

    from dialogsum.summarizer import Summarizer

#: The deployment's name (Ray shows its replicas as ``ServeReplica:<app>:dialogsum``).
DEPLOYMENT = "dialogsum"

#: Builds the model in a replica: a picklable callable taking no arguments, such as
#: ``functools.partial(Summarizer.from_pretrained, "served-int8/")``.
Loader = Callable[[], "Summarizer"]


def require_ray_serve(purpose: str = "Serving on Ray") -> None:
    """Raise :class:`~dialogsum.errors.MissingDependencyError` naming ``dialogsum[ray-serve]``
    unless Ray Serve and the service's own dependencies are installed."""
    require(
        ("ray", "ray.serve", "fastapi", "prometheus_client"), extra="ray-serve", purpose=purpose
    )


def build(load: Loader, settings: ServeSettings | None = None) -> Application:
    """The Ray Serve application of the service: ``settings.replicas`` replicas (or autoscaling
    between ``min_replicas`` and ``max_replicas``), each reserving ``replica_cpus`` CPUs,
    loading the model with ``load()`` once and serving ``create_app(model, settings)``.

    ``load`` runs in every replica, so it must be picklable and the model must be reachable
    there (the same path on every node of a cluster)::

        import functools
        from ray import serve
        from dialogsum import Summarizer
        from dialogsum.serve import ServeSettings
        from dialogsum.serve.ray_deployment import build

        load = functools.partial(Summarizer.from_pretrained, "/models/served-int8")
        serve.run(build(load, ServeSettings(replicas=2)), name="dialogsum", route_prefix="/")

    ``host``, ``port`` and ``ray_address`` are not read here: they belong to Ray Serve's proxy
    and to the cluster (``serve.start(http_options=...)``, a config file's ``http_options``).
    """
    require_ray_serve()
    from ray import serve

    settings = settings or ServeSettings()
    replica = serve.ingress()(SummarizerReplica)
    deployment = serve.deployment(**deployment_options(settings))(replica)
    return deployment.bind(load, settings)


def deployment_options(settings: ServeSettings) -> dict[str, Any]:
    """The options of ``serve.deployment`` that ``settings`` give."""
    options: dict[str, Any] = {
        "name": DEPLOYMENT,
        "ray_actor_options": {"num_cpus": settings.replica_cpus},
        # A replica takes what its own queue holds plus a running batch, so that the app's
        # micro-batcher sees concurrent requests and its max_queue answers 503 as it does
        # alone; past that, Ray Serve's proxy holds up to max_queue more, then answers 503.
        "max_ongoing_requests": settings.max_queue + settings.max_batch_size,
        "max_queued_requests": settings.max_queue,
        # A stopping replica answers what it accepted, within the request timeout (as the
        # local engine's drain does).
        "graceful_shutdown_timeout_s": settings.request_timeout_s + 5,
        # The app logs each request (log_requests); Ray's access log would say it twice.
        "logging_config": {"enable_access_log": False},
    }
    if settings.max_replicas is None:
        options["num_replicas"] = settings.replicas
    else:
        options["autoscaling_config"] = {
            "min_replicas": settings.min_replicas or 1,
            "max_replicas": settings.max_replicas,
            "target_ongoing_requests": settings.target_ongoing_requests or settings.max_batch_size,
        }
    return options


class SummarizerReplica:
    """One replica: the model, loaded once in the constructor, and the service's app around it.

    Ray Serve wraps this class with ``serve.ingress`` (see :func:`build`): it calls
    ``__serve_build_asgi_app__`` after the constructor, runs the app's lifespan (the warm-up
    summary) before the replica takes requests, and calls :meth:`check_health` periodically.
    """

    def __init__(self, load: Loader, settings: ServeSettings) -> None:
        _log_to_stderr()
        self.settings = settings
        self.summarizer = load()
        # (Not `app`: Ray's wrapper holds the ASGI app under that name.)
        self.service: FastAPI | None = None

    def __serve_build_asgi_app__(self) -> FastAPI:
        """The service's FastAPI app around this replica's model."""
        from dialogsum.serve.app import create_app

        self.service = create_app(self.summarizer, self.settings)
        # Ray Serve's proxy adds X-Request-Id to every answer (the id it passed on in the
        # request's header, which the app uses); the app's own would make it twice.
        self.service.state.dialogsum.request_id_header = False
        return self.service

    def check_health(self) -> None:
        """Ray Serve's health check: raises unless the app is ready (``GET /readyz`` 200), so a
        replica whose model stopped serving is replaced."""
        state = self.service.state.dialogsum if self.service is not None else None
        if state is None or not state.ready:
            raise RuntimeError("the dialogsum replica is not ready (GET /readyz answers 503)")


def _log_to_stderr() -> None:
    """The service's log lines (one per request, at INFO) on the replica's stderr, which Ray
    keeps in its worker logs and shows on the console of the process that started the app."""
    if not logging.getLogger().handlers and not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        # This handler prints dialogsum's lines; passed on to the root logger as well, each
        # would print again, in another format, as soon as a library configures the root
        # (a module-level logging.warning() call does: logging.basicConfig runs implicitly).
        logger.propagate = False
    logger.setLevel(logging.INFO)


__all__ = ["DEPLOYMENT", "Loader", "SummarizerReplica", "build", "deployment_options"]
