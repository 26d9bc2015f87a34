"""The service under test: :class:`Server`, a real HTTP server (``create_app`` under uvicorn, in a
thread, on a free loopback port), used by dialogsum's own service tests and by a backend
plugin's to serve through it; and :func:`asgi_client`, an in-process client for an application
that mounts dialogsum's, with no server and no socket."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx


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


@asynccontextmanager
async def asgi_client(
    app: Any, *, base_url: str = "http://testserver", **options: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """``async with asgi_client(app) as client:`` an ``httpx.AsyncClient`` that calls ``app``
    in this process and event loop.

    ``app`` is any ASGI application: ``create_app(...)``, or an application of yours that
    mounts it. The app's lifespan runs around the block as a server would run it: startup
    (dialogsum's warm-up) before the first request, shutdown (the drain of accepted requests)
    at the end; a dialogsum app mounted in yours gets no lifespan events of its own, under a
    server or here, and starts on its first request. ``options`` go to ``httpx.AsyncClient``
    (``headers={"X-API-Key": ...}``, ``timeout=...``). Needs httpx (``pip install httpx``)::

        async with asgi_client(outer) as client:
            response = await client.post("/summarizer/v1/summarize", json={"inputs": dialogue})
    """
    import httpx

    transport = httpx.ASGITransport(app=app)  # sends no lifespan events: lifespan() does
    async with (
        lifespan(app),
        httpx.AsyncClient(transport=transport, base_url=base_url, **options) as client,
    ):
        yield client


@asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """Run the ASGI lifespan of ``app`` around the block: ``lifespan.startup`` before it (a
    failed startup raises :class:`RuntimeError` with the app's message), ``lifespan.shutdown``
    after it. An app that does not speak the lifespan protocol runs without one, as the ASGI
    specification tells servers to."""
    # Written here because httpx's ASGITransport sends no lifespan events, and Starlette's
    # TestClient, which does, is synchronous and runs the app on an event loop of its own.
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    running = asyncio.ensure_future(app(scope, inbox.get, outbox.put))
    if not await _lifespan_step(running, inbox, outbox, "startup"):
        yield
        return
    try:
        yield
    finally:
        await _lifespan_step(running, inbox, outbox, "shutdown")
        await running  # raises what the app raised on its way out, if anything


async def _lifespan_step(
    running: asyncio.Future[Any],
    inbox: asyncio.Queue[dict[str, Any]],
    outbox: asyncio.Queue[dict[str, Any]],
    step: str,
) -> bool:
    """Send ``lifespan.<step>`` and wait for the app's answer; False when the app returned (or
    raised) instead of answering, i.e. has no lifespan."""
    await inbox.put({"type": f"lifespan.{step}"})
    answer = asyncio.ensure_future(outbox.get())
    await asyncio.wait({answer, running}, return_when=asyncio.FIRST_COMPLETED)
    if not answer.done():
        answer.cancel()
        if not running.cancelled():
            running.exception()  # retrieved: per the specification, no lifespan is no error
        return False
    message = answer.result()
    if message["type"] == f"lifespan.{step}.failed":
        await asyncio.gather(running, return_exceptions=True)  # its error is in the message
        raise RuntimeError(f"the app's lifespan {step} failed: {message.get('message') or '?'}")
    return True
