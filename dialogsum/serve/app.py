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
from starlette.exceptions import HTTPException as StarletteHTTPException

from dialogsum.errors import ConfigError, DataError, DialogsumError, logger
from dialogsum.serve.micro_batcher import MicroBatcher, QueueFull
from dialogsum.serve.inputs import InputMeter, Rejected, request_inputs
from dialogsum.serve.metrics import ServeMetrics
from dialogsum.serve.page import PAGE
from dialogsum.serve.schema import SummarizeRequest, Summary
from dialogsum.serve.settings import ServeSettings

if TYPE_CHECKING:
    from dialogsum.summarizer import Summarizer

request_log = logger.getChild("serve")

#: A dialogue the service summarizes once at start-up, before it says it is ready.
WARM_UP = "#Person1#: Is the service up?\n#Person2#: It is warming up."


def create_app(summarizer: Summarizer, settings: ServeSettings | None = None) -> FastAPI:
    """The service's FastAPI application around ``summarizer`` (see ``docs/serving.md``)."""
    settings = settings or ServeSettings()
    key = settings.api_key()  # ConfigError when api_key_env names an unset variable
    metrics = ServeMetrics()
    meter = InputMeter.of(summarizer)
    state: dict[str, Any] = {"ready": False}

    def on_batch(requests: int, dialogues: int) -> None:
        metrics.observe_batch(requests, dialogues)

    def start() -> MicroBatcher:
        """The batcher, started (and its warm-up queued) on first use.

        ``dialogsum serve`` starts it in the app's lifespan; an app mounted inside another one
        gets no lifespan events of its own, so there the first request starts it.
        """
        loop = asyncio.get_running_loop()
        batcher: MicroBatcher | None = state.get("batcher")
        if batcher is None or state.get("loop") is not loop:
            # (A host that runs each request on a loop of its own gets a batcher per loop.)
            batcher = MicroBatcher(
                # A gathered batch decodes as one batch (the model's batch_size would split it).
                functools.partial(summarizer.summarize, batch_size=settings.max_batch_size),
                batching=settings.batching,
                max_batch_size=settings.max_batch_size,
                max_wait_ms=settings.max_wait_ms,
                max_queue=settings.max_queue,
                on_batch=on_batch,
            )
            batcher.start()
            state.update(batcher=batcher, loop=loop, ready=False)
            state["warm_up"] = loop.create_task(warm_up(batcher))
        elif not state["ready"] and state["warm_up"].done():
            state["warm_up"] = loop.create_task(warm_up(batcher))  # the last one failed: again
        return batcher

    async def warm_up(batcher: MicroBatcher) -> None:
        try:
            await batcher.submit([WARM_UP], {})
        except Exception:
            # Without a lifespan (a mounted app) nothing else would read this error, and
            # /readyz would say 'starting' for ever; the next request tries again.
            request_log.exception("the warm-up summary failed; the service is not ready")
            return
        state["ready"] = True

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher = start()
        await state["warm_up"]
        if not state["ready"]:
            await batcher.stop()
            raise RuntimeError("the model failed its warm-up summary (logged above)")
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
            _check_key(request, key)
            response = await call_next(request)
        except Rejected as rejected:
            response = _error(rejected.status, rejected.message, request_id, rejected.headers)
        path = _route_path(app, request)
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

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # FastAPI's own 404 and 405 in the JSON error shape of every other answer.
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"No route {request.url.path}; the API is POST /v1/summarize (see /docs)."
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path} (see /docs)."
        return _error(exc.status_code, message, request.state.request_id, dict(exc.headers or {}))

    @app.post(
        "/v1/summarize",
        summary="Summarize one or more dialogues.",
        response_model=list[Summary],
        # The body is read and checked by hand (size limit first, then the schema), so the
        # schema is declared here for /docs and /openapi.json.
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/SummarizeRequest"}
                    }
                },
            }
        },
    )
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
            batcher = start()
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
                f"No summary within the request timeout ({settings.request_timeout_s:g} s). "
                f"Retry, send fewer dialogues per request or ask for fewer new tokens (the "
                f"server's request_timeout_s sets the limit).",
                request_id,
            )
        except (ConfigError, DataError) as exc:  # an option this backend cannot honour
            return _error(422, str(exc), request_id)
        except Exception as exc:  # the model failed: this request hears it, the server goes on
            request_log.exception("request %s failed", request_id)
            detail = str(exc) if isinstance(exc, DialogsumError) else f"{type(exc).__name__}: {exc}"
            return _error(500, f"The model failed: {detail}", request_id)
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
        start()
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

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _openapi(app, key is not None)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI, keyed: bool) -> dict[str, Any]:
    """FastAPI's schema plus the summarize request's, and the API key where one is needed."""
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes
    )
    request = SummarizeRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {}).update(request.pop("$defs", {}))
    components["schemas"]["SummarizeRequest"] = request
    if keyed:
        components["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
        schema["security"] = [{"bearer": []}, {"apiKey": []}]
    return schema


def _route_path(app: FastAPI, request: Request) -> str:
    """The route a request matched, for metrics labels (a fixed set, never a raw URL)."""
    route = request.scope.get("route")
    if route is not None:
        return str(getattr(route, "path", "unmatched"))
    paths = {getattr(r, "path", None) for r in app.routes}  # /docs and /openapi.json
    path = _app_path(request)
    return path if path in paths else "unmatched"


def _app_path(request: Request) -> str:
    """The request's path inside this app: without the prefix it is mounted under."""
    path = str(request.scope.get("path", ""))
    root = str(request.scope.get("root_path", ""))
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


def _version() -> str:
    from dialogsum._version import __version__

    return __version__


#: Paths open without the API key: the probes, and the page and API docs, which hold no data
#: (a browser cannot send a key header to load them; the page asks for the key).
OPEN_PATHS = frozenset(
    {"/healthz", "/readyz", "/", "/docs", "/docs/oauth2-redirect", "/openapi.json"}
)


def _check_key(request: Request, key: str | None) -> None:
    if key is None or _app_path(request) in OPEN_PATHS:
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
        raise Rejected(
            413, f"The request body is {declared} bytes; the limit is {limit}. {_SMALLER}"
        )
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Rejected(413, f"The request body is over the limit of {limit} bytes. {_SMALLER}")
    return body


_SMALLER = (
    "Send fewer or shorter dialogues per request (the server's max_body_bytes sets the limit)."
)


def _json(payload: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(payload, status_code=status, headers=headers)


def _error(
    status: int, message: str, request_id: str, headers: dict[str, str] | None = None
) -> Response:
    return _json({"error": message, "request_id": request_id}, status, headers)


__all__ = ["create_app"]
