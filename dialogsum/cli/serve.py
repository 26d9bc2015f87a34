"""``dialogsum serve``: the HTTP service over any registered backend, in one process on this
machine (``--engine local``, ``pip install 'dialogsum[serve]'``) or as replicas on Ray Serve
(``--engine ray``, ``pip install 'dialogsum[ray-serve]'``).

:func:`ray_app` builds the same Ray Serve application from a Ray Serve config file of your own
(``import_path: dialogsum.cli.serve:ray_app``, its ``args`` the keys of a ``--config`` file)."""

from __future__ import annotations

import argparse
import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from dialogsum.cli.config import (
    _Serving,
    add_config_flag,
    add_model_flags,
    add_serving_flags,
    load_settings,
    load_summarizer,
)
from dialogsum.serve.settings import RAY_SETTINGS, ServeSettings

if TYPE_CHECKING:
    from ray.serve import Application

    from dialogsum.summarizer import Summarizer


class ServeConfig(_Serving):
    """``dialogsum serve``: what to serve, and the server's settings."""

    model: str = Field("dialogsum-tiny", description="Bundled name, model folder or export.")
    server: ServeSettings = Field(default_factory=ServeSettings)
    # A gathered batch larger than the model's batch size would draw a progress bar, with
    # carriage returns, among the one-JSON-line-per-request logs.
    progress: bool = Field(False, description="Progress bars of the model in the server log.")


def add_parser(commands: Any) -> None:
    """Add the ``serve`` command."""
    parser = commands.add_parser(
        "serve", help="Serve a model over HTTP (micro or continuous batching, metrics, a web page)."
    )
    parser.set_defaults(handler=run)
    add_config_flag(parser)
    add_serving_flags(parser, ServeConfig)
    add_model_flags(parser, ServeSettings, "server")


def run(args: argparse.Namespace) -> int:
    """Load the model, then serve until SIGTERM or Ctrl-C (exit status 0)."""
    import logging

    from dialogsum.errors import require

    config = _settings(args)
    if config.server.engine == "ray":
        return _run_on_ray(config)
    _local_only(config.server)
    require(("fastapi", "uvicorn", "prometheus_client"), extra="serve", purpose="dialogsum serve")
    import uvicorn

    from dialogsum.serve import create_app

    # A key variable that is unset stops here, before the model loads.
    config.server.api_key()
    config.server.admin_key()
    _check_host(config.server.host)
    check_port(config.server.host, config.server.port)  # before the model: loading takes long
    summarizer = load_summarizer(config, config.model)
    logging.getLogger("dialogsum.serve").setLevel(logging.INFO)
    app = create_app(summarizer, config.server)
    server = graceful_server(
        uvicorn.Config(
            app,
            host=config.server.host,
            port=config.server.port,
            log_level="warning",
            timeout_graceful_shutdown=int(config.server.request_timeout_s) + 5,
        )
    )
    server.run()
    return 0


def _settings(args: argparse.Namespace) -> ServeConfig:
    """The flags over the config file over the ``DIALOGSUM_SERVE_*`` environment."""
    from dialogsum.cli.config import merge

    config = load_settings(ServeConfig, args)
    environment = ServeSettings.environment()
    if environment:  # the environment is under the file and the flags
        server = merge(environment, config.server.model_dump(exclude_unset=True))
        config = config.model_copy(update={"server": _from_environment(server, environment)})
    return config


def _local_only(server: ServeSettings) -> None:
    """Refuse the settings of the ray engine on the local one: they would change nothing."""
    from dialogsum.errors import ConfigError

    given = [name for name in RAY_SETTINGS if name in server.model_fields_set]
    if given:
        one = len(given) == 1
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ConfigError(
            f"{flags} (server.{', server.'.join(given)}) {'applies' if one else 'apply'} to "
            f"the ray engine only; add --engine ray (server.engine: ray) to serve on Ray "
            f"Serve, or leave {'it' if one else 'them'} out."
        )


def _run_on_ray(config: ServeConfig) -> int:
    """``--engine ray``: replicas on Ray Serve until SIGTERM or Ctrl-C (exit status 0)."""
    from dialogsum.errors import ConfigError
    from dialogsum.modeling import local_manifest
    from dialogsum.ray_cluster import cluster_address
    from dialogsum.serve.ray_deployment import require_ray_serve
    from dialogsum.serve.ray_engine import serve_on_ray

    server = config.server
    # One line per request on this console, as the local engine logs them: Ray otherwise folds
    # lines that repeat across replicas. Read when Ray is first imported, so set before.
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    require_ray_serve("dialogsum serve --engine ray")
    server.api_key()  # checked here: the replicas of a local Ray inherit this environment
    server.admin_key()
    _check_host(server.host)
    address = cluster_address(server.ray_address)
    if address is None:
        # A local Ray's replicas read this machine's folders: a model folder that is missing,
        # or whose manifest is unreadable, is refused here in one line, not by every replica
        # after Ray has started (a cluster's nodes may hold folders this machine does not).
        local_manifest(config.model)
        check_port(server.host, server.port)  # before Ray starts: that takes long
    elif server.port == 0:
        raise ConfigError(
            f"server.port: --port 0 takes a free port of this machine, but the service runs on "
            f"the Ray cluster at {address!r}; give the port its proxy listens on (--port 8000)."
        )
    serve_on_ray(functools.partial(load_model, _absolute(config)), server)
    return 0


def load_model(config: ServeConfig) -> Summarizer:
    """Load the model ``config`` names, as ``dialogsum serve`` does (a module-level function:
    each Ray Serve replica calls it)."""
    return load_summarizer(config, config.model)


def ray_app(args: dict[str, Any]) -> Application:
    """The Ray Serve application of ``dialogsum serve --engine ray``, for a Ray Serve config
    file (``import_path: dialogsum.cli.serve:ray_app``): ``args`` holds the keys of a
    ``dialogsum serve --config`` file (``model``, ``backend_options``, ``server: {replicas:
    2, ...}``, or the server's keys at the top).

    The config file's ``http_options`` say where Ray Serve listens, and ``serve deploy`` which
    cluster it runs on, so ``host``, ``port`` and ``ray_address`` are refused here.
    """
    from dialogsum.cli.config import build_config, nest_flat_keys
    from dialogsum.errors import ConfigError
    from dialogsum.serve.ray_deployment import build

    config = build_config(ServeConfig, None, nest_flat_keys(ServeConfig, args))
    given = config.server.model_fields_set
    placed = [name for name in ("host", "port", "ray_address") if name in given]
    if placed:
        raise ConfigError(
            f"args: {', '.join(placed)} cannot be set for a Ray Serve config file's application; "
            f"say where Ray Serve listens in the file's http_options (host, port) and which "
            f"cluster runs it with 'serve deploy --address'."
        )
    return build(functools.partial(load_model, _absolute(config)), config.server)


def _absolute(config: ServeConfig) -> ServeConfig:
    """``config`` with the model (and base model) folders given relative to here made
    absolute: the replicas do not run in this folder."""
    update = {}
    for name in ("model", "base_model"):
        value = getattr(config, name)
        folder = Path(value).expanduser() if value else None
        if folder is not None and folder.exists() and not folder.is_absolute():
            update[name] = str(folder.resolve())
    return config.model_copy(update=update)


def _from_environment(server: dict[str, Any], environment: dict[str, str]) -> ServeSettings:
    """The settings with the environment's values, or an error naming the bad variables."""
    from pydantic import ValidationError

    from dialogsum.errors import ConfigError
    from dialogsum.serve.settings import ENV_PREFIX

    try:
        return ServeSettings.model_validate(server)
    except ValidationError as exc:
        problems = []
        for item in exc.errors():
            field = str(item["loc"][0]) if item["loc"] else ""
            where = (
                f"{ENV_PREFIX}{field.upper()}={environment[field]!r}"
                if field in environment
                else f"server.{field}"
            )
            problems.append(f"{where}: {item['msg']}")
        raise ConfigError(
            f"Invalid settings from the environment: {'; '.join(problems)}. Fix or unset "
            f"the variable."
        ) from None


def _check_host(host: str) -> None:
    import socket

    from dialogsum.errors import ConfigError

    try:
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(
            f"server.host: {host!r} is not an address this machine can bind ({exc}); use "
            f"127.0.0.1 (this machine only), 0.0.0.0 (every interface) or one of its addresses."
        ) from None


def check_port(host: str, port: int) -> None:
    """Bind ``host:port`` once and let go, as the server will bind it (``SO_REUSEADDR``, every
    address ``host`` resolves to); :class:`~dialogsum.errors.ConfigError` when it cannot.

    Without this, a port in use shows as uvicorn's ``[Errno 98]`` only after the model has
    loaded. (Another process may still take the port in between; uvicorn then says so.)
    """
    import errno
    import socket

    from dialogsum.errors import ConfigError

    if port == 0:
        return
    reasons = {
        errno.EADDRINUSE: "another process is listening there; stop it or pick another "
        "--port (0 takes any free one)",
        errno.EACCES: "ports below 1024 need privileges; pick --port 1024 or above",
        errno.EADDRNOTAVAIL: "that is not an address of this machine; use 127.0.0.1 or 0.0.0.0",
    }
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    for family, kind, proto, _, address in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # as asyncio's server binds it
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                reason = reasons.get(exc.errno or 0, exc.strerror or str(exc))
                raise ConfigError(f"server.port: cannot listen on {shown}: {reason}.") from None


def graceful_server(config: Any) -> Any:
    """A uvicorn server that stops gracefully on SIGTERM or Ctrl-C and lets the process exit 0.

    uvicorn re-raises the signal after its graceful shutdown, which ends the process with the
    signal's status; a service manager should see a clean exit after a requested stop.
    """
    import contextlib
    import signal

    import uvicorn

    from dialogsum.errors import logger as root

    logger = root.getChild("serve")

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            # Say where it listens (with --port 0 nothing else tells); by now the model has
            # warmed up, so the service is ready.
            for server in getattr(self, "servers", []):
                for sock in server.sockets:
                    host, port = sock.getsockname()[:2]
                    shown = f"[{host}]" if ":" in host else host
                    logger.info("listening on http://%s:%d", shown, port)

        @contextlib.contextmanager
        def capture_signals(self) -> Any:
            def stop(number: int, frame: Any) -> None:
                self.should_exit = True

            previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server(config)
