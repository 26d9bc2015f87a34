"""A real HTTP server for tests: ``create_app`` under uvicorn, in a thread, on a free loopback
port. Used by dialogsum's own service tests, and by a backend plugin's to serve through it."""

from __future__ import annotations

import threading
import time
from typing import Any


class Server:
    """``with Server(summarizer, settings) as url:`` serves until the block ends.

    ``Server(app=app)`` serves an application of the caller's instead (one that mounts
    dialogsum's, say)."""

    def __init__(
        self,
        summarizer: Any = None,
        settings: Any = None,
        *,
        app: Any = None,
        start_timeout: float = 60,
    ) -> None:
        import uvicorn

        from dialogsum.serve import create_app

        if app is None:
            app = create_app(summarizer, settings)
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.start_timeout = start_timeout

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self.server.started and time.monotonic() < deadline:
            if not self.thread.is_alive():
                raise RuntimeError("the server stopped while starting; see its log")
            time.sleep(0.02)
        if not self.server.started:
            raise RuntimeError(f"the server did not start within {self.start_timeout:g} s")
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)
