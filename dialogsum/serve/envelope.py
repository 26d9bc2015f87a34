"""What every request gets, whatever its route: a request id (``X-Request-Id``), its count and
latency in the metrics, and one JSON log line."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable

from fastapi import Request, Response

from dialogsum.serve.dependencies import service_state
from dialogsum.serve.state import request_log


async def envelope(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """The HTTP middleware around every request of the app."""
    state = service_state(request)
    request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    request.state.request_id = request_id
    started = time.perf_counter()
    response = await call_next(request)
    path = route_path(request)
    seconds = time.perf_counter() - started
    state.metrics.requests.labels(path, str(response.status_code)).inc()
    state.metrics.latency.labels(path).observe(seconds)
    if state.request_id_header:
        response.headers["X-Request-Id"] = request_id
    if state.settings.log_requests:
        line = {
            "request_id": request_id,
            "method": request.method,
            "path": request.url.path,
            "status": response.status_code,
            "ms": round(seconds * 1000, 1),
        }
        request_log.info(json.dumps(line))
    return response


def route_path(request: Request) -> str:
    """The route a request matched, for metrics labels (a fixed set, never a raw URL)."""
    route = request.scope.get("route")
    if route is not None:
        return str(getattr(route, "path", "unmatched"))
    paths = {getattr(r, "path", None) for r in request.app.routes}  # /docs and /openapi.json
    path = app_path(request)
    return path if path in paths else "unmatched"


def app_path(request: Request) -> str:
    """The request's path inside this app: without the prefix it is mounted under."""
    path = str(request.scope.get("path", ""))
    root = str(request.scope.get("root_path", ""))
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"
