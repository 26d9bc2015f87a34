"""``dialogsum serve``: the HTTP service over any registered backend (``pip install
'dialogsum[serve]'``)."""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import Field

from dialogsum.cli.config import (
    _Serving,
    add_config_flag,
    add_model_flags,
    add_serving_flags,
    load_settings,
    load_summarizer,
)
from dialogsum.serve.settings import ServeSettings


class ServeConfig(_Serving):
    """``dialogsum serve``: what to serve, and the server's settings."""

    model: str = Field("dialogsum-tiny", description="Bundled name, model folder or export.")
    server: ServeSettings = Field(default_factory=ServeSettings)


def add_parser(commands: Any) -> None:
    """Add the ``serve`` command."""
    parser = commands.add_parser(
        "serve", help="Serve a model over HTTP (micro-batching, metrics, limits, a web page)."
    )
    parser.set_defaults(handler=run)
    add_config_flag(parser)
    add_serving_flags(parser)
    add_model_flags(parser, ServeSettings, "server")


def run(args: argparse.Namespace) -> int:
    """Load the model, then serve until SIGTERM or Ctrl-C (exit status 0)."""
    import logging

    from dialogsum.errors import require

    require(("fastapi", "uvicorn", "prometheus_client"), extra="serve", purpose="dialogsum serve")
    import uvicorn

    from dialogsum.cli.config import merge
    from dialogsum.serve import create_app

    config = load_settings(ServeConfig, args)
    environment = ServeSettings.environment()
    if environment:  # the environment is under the file and the flags
        server = merge(environment, config.server.model_dump(exclude_unset=True))
        config = config.model_copy(update={"server": ServeSettings.model_validate(server)})
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


def graceful_server(config: Any) -> Any:
    """A uvicorn server that stops gracefully on SIGTERM or Ctrl-C and lets the process exit 0.

    uvicorn re-raises the signal after its graceful shutdown, which ends the process with the
    signal's status; a service manager should see a clean exit after a requested stop.
    """
    import contextlib
    import signal

    import uvicorn

    class Server(uvicorn.Server):
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
