"""The ASGI application: ``POST /v1/summarize`` with micro-batching, health, model card,
metrics and limits. ``create_app(summarizer, settings)`` builds it around a loaded
:class:`~dialogsum.Summarizer`, so it mounts in any FastAPI or Starlette application."""

from __future__ import annotations

import asyncio
import functools
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from dialogsum.errors import DialogsumError, logger
from dialogsum.serve.batching import MicroBatcher, QueueFull
from dialogsum.serve.inputs import InputMeter, Rejected, request_inputs
from dialogsum.serve.metrics import ServeMetrics
from dialogsum.serve.page import PAGE
from dialogsum.serve.settings import ServeSettings

if TYPE_CHECKING:
    from dialogsum.summarizer import Summarizer

request_log = logger.getChild("serve")

#: A dialogue the service summarizes once at start-up, before it says it is ready.
WARM_UP = "#Person1#: Is the service up?\n#Person2#: It is warming up."


def create_app(summarizer: Summarizer, settings: ServeSettings | None = None) -> FastAPI:
    """The service's FastAPI application around ``summarizer`` (see ``docs/serving.md``)."""
    settings = settings or ServeSettings()
    metrics = ServeMetrics()
    meter = InputMeter.of(summarizer)
    state: dict[str, Any] = {"ready": False}

    def on_batch(requests: int, dialogues: int) -> None:
        metrics.observe_batch(requests, dialogues)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher = MicroBatcher(
            # A gathered batch decodes as one batch (the model's own batch_size would split it).
            functools.partial(summarizer.summarize, batch_size=settings.max_batch_size),
            batching=settings.batching,
            max_batch_size=settings.max_batch_size,
            max_wait_ms=settings.max_wait_ms,
            max_queue=settings.max_queue,
            on_batch=on_batch,
        )
        batcher.start()
        state["batcher"] = batcher
        await batcher.submit([WARM_UP], {})
        state["ready"] = True
        try:
            yield
        finally:
            state["ready"] = False
            await batcher.stop()  # every accepted request is answered first

    app = FastAPI(
        title="dialogsum",
        summary="Dialogue summarization with a fine-tuned FLAN-T5.",
        version=_version(),
        lifespan=lifespan,
    )

    @app.middleware("http")
    async def envelope(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        request.state.request_id = request_id
        started = time.perf_counter()
        try:
            _check_key(request, settings)
            response = await call_next(request)
        except Rejected as rejected:
            response = _error(rejected.status, rejected.message, request_id, rejected.headers)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        seconds = time.perf_counter() - started
        metrics.requests.labels(path, str(response.status_code)).inc()
        metrics.latency.labels(path).observe(seconds)
        response.headers["X-Request-Id"] = request_id
        if settings.log_requests:
            request_log.info(
                json.dumps(
                    {
                        "request_id": request_id,
                        "method": request.method,
                        "path": request.url.path,
                        "status": response.status_code,
                        "ms": round(seconds * 1000, 1),
                    }
                )
            )
        return response

    @app.post("/v1/summarize", summary="Summarize one or more dialogues.")
    async def summarize(request: Request) -> Response:
        request_id = request.state.request_id
        try:
            body = await _read_body(request, settings.max_body_bytes)
            texts, overrides = request_inputs(body, settings, summarizer)
            counts = meter.measure(texts)
            if counts is not None:
                metrics.input_tokens.inc(counts.tokens)
                metrics.truncated.inc(len(counts.truncated))
                if counts.truncated and settings.over_length == "reject":
                    raise Rejected(
                        422,
                        f"inputs {counts.truncated} are longer than the model's "
                        f"{counts.limit} input tokens; shorten them (this server rejects "
                        f"over-long inputs instead of truncating them).",
                    )
            batcher: MicroBatcher = state["batcher"]
            metrics.queue_depth.set(batcher.depth + 1)
            summaries = await asyncio.wait_for(
                batcher.submit(texts, overrides), timeout=settings.request_timeout_s
            )
        except Rejected as rejected:
            return _error(rejected.status, rejected.message, request_id, rejected.headers)
        except QueueFull:
            return _error(
                503, "The server is at capacity; retry shortly.", request_id, {"Retry-After": "1"}
            )
        except asyncio.TimeoutError:
            return _error(
                504,
                f"No summary within the request timeout ({settings.request_timeout_s:g} s).",
                request_id,
            )
        except DialogsumError as exc:  # a generation option this backend cannot honour
            return _error(422, str(exc), request_id)
        except Exception as exc:  # the model failed: this request hears it, the server goes on
            request_log.exception("request %s failed", request_id)
            return _error(500, f"The model failed: {type(exc).__name__}: {exc}", request_id)
        finally:
            metrics.queue_depth.set(state["batcher"].depth if "batcher" in state else 0)
        if meter.available:
            metrics.output_tokens.inc(meter.count(summaries))
        headers = {}
        if counts is not None and counts.truncated:
            headers["X-Dialogsum-Truncated"] = ",".join(map(str, counts.truncated))
        return _json([{"summary_text": text} for text in summaries], 200, headers)

    @app.get("/healthz", summary="Alive.")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Model loaded and warmed up.")
    async def readyz() -> Response:
        if state["ready"]:
            return _json({"status": "ready"}, 200)
        return _json({"status": "starting"}, 503, {"Retry-After": "1"})

    @app.get("/v1/model", summary="What is served: the manifest, backend and limits.")
    async def model() -> dict[str, Any]:
        manifest = summarizer.manifest.model_dump(mode="json")
        return {
            "source": summarizer.source,
            "backend": summarizer.backend,
            "method": summarizer.method,
            "base_model": manifest.get("base_model"),
            "quantize": (manifest.get("export") or {}).get("quantize"),
            "parity": (manifest.get("export") or {}).get("parity"),
            "generation_defaults": manifest.get("generation"),
            "data": manifest.get("data"),
            "limits": {
                "max_body_bytes": settings.max_body_bytes,
                "max_inputs": settings.max_inputs,
                "max_batch_size": settings.max_batch_size,
                "batching": settings.batching,
                "over_length": settings.over_length,
                "request_timeout_s": settings.request_timeout_s,
            },
        }

    @app.get("/metrics", summary="Prometheus metrics.")
    async def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/v1/samples", summary="A few DialogSum sample dialogues, for the web page.")
    async def samples() -> list[dict[str, str]]:
        from dialogsum.data import sample_rows

        return [
            {"id": str(row.get("fname", index)), "dialogue": row["dialogue"]}
            for index, row in enumerate(sample_rows("test")[:8])
        ]

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        return HTMLResponse(PAGE)

    return app


def _version() -> str:
    from dialogsum._version import __version__

    return __version__


def _check_key(request: Request, settings: ServeSettings) -> None:
    key = settings.api_key()
    if key is None or request.url.path in ("/healthz", "/readyz"):
        return
    given = request.headers.get("x-api-key") or ""
    authorization = request.headers.get("authorization") or ""
    if authorization.lower().startswith("bearer "):
        given = authorization[7:]
    if given != key:
        raise Rejected(
            401,
            "Missing or wrong API key: send it as 'Authorization: Bearer <key>' or "
            "'X-API-Key: <key>'.",
            {"WWW-Authenticate": "Bearer"},
        )


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Rejected(413, f"The request body is {declared} bytes; the limit is {limit}.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Rejected(413, f"The request body is over the limit of {limit} bytes.")
    return body


def _json(payload: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(payload, status_code=status, headers=headers)


def _error(
    status: int, message: str, request_id: str, headers: dict[str, str] | None = None
) -> Response:
    return _json({"error": message, "request_id": request_id}, status, headers)


__all__ = ["create_app"]
