"""The service's JSON answers: every error is ``{"error": ..., "request_id": ...}``."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


def json_response(payload: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    """``payload`` as JSON with ``status``."""
    return JSONResponse(payload, status_code=status, headers=headers)


def error_response(
    status: int, message: str, request_id: str, headers: dict[str, str] | None = None
) -> Response:
    """An error in the shape of every error the service answers."""
    return json_response({"error": message, "request_id": request_id}, status, headers)


async def http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's own errors (404, 405, and the API key's 401) in the service's error shape."""
    assert isinstance(exc, StarletteHTTPException)  # registered for that class only
    message = str(exc.detail)
    if exc.status_code == 404:
        message = f"No route {request.url.path}; the API is POST /v1/summarize (see /docs)."
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path} (see /docs)."
    headers = dict(exc.headers or {})
    return error_response(exc.status_code, message, request.state.request_id, headers)
