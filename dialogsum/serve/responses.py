"""The service's JSON answers: every error is ``{"error": ..., "request_id": ...}``, except on
the OpenAI-compatible routes, whose errors are in OpenAI's shape
(``{"error": {"message", "type", "param", "code"}}``) so OpenAI's clients read them."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, NamedTuple

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from dialogsum.adapter_serving import UnknownAdapterError
from dialogsum.errors import ConfigError, DataError, DialogsumError
from dialogsum.serve.inputs import Rejected
from dialogsum.serve.micro_batcher import QueueFull
from dialogsum.serve.openai_requests import OpenAIError
from dialogsum.serve.state import request_log

if TYPE_CHECKING:
    from dialogsum.serve.settings import ServeSettings

#: The routes that answer errors in OpenAI's shape.
OPENAI_ROUTES = frozenset({"/v1/completions", "/v1/chat/completions", "/v1/models"})


def json_response(payload: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    """``payload`` as JSON with ``status``."""
    return JSONResponse(payload, status_code=status, headers=headers)


def error_response(
    status: int, message: str, request_id: str, headers: dict[str, str] | None = None
) -> Response:
    """An error in the shape of every error the service answers."""
    return json_response({"error": message, "request_id": request_id}, status, headers)


def openai_error_response(error: OpenAIError) -> Response:
    """An error of an OpenAI-compatible route, in OpenAI's shape."""
    return json_response(error.body(), error.status, error.headers)


class Failure(NamedTuple):
    """What a request that failed is answered: status, message and headers."""

    status: int
    message: str
    headers: dict[str, str]


def failure(exc: Exception, settings: ServeSettings, request_id: str) -> Failure:
    """The answer to a request whose checks or summaries raised ``exc``; a failure of the
    model itself is logged (the server goes on serving)."""
    if isinstance(exc, Rejected):
        return Failure(exc.status, exc.message, exc.headers)
    if isinstance(exc, QueueFull):
        return Failure(503, "The server is at capacity; retry shortly.", {"Retry-After": "1"})
    if isinstance(exc, asyncio.TimeoutError):
        return Failure(
            504,
            f"No summary within the request timeout ({settings.request_timeout_s:g} s). "
            f"Retry, send fewer dialogues per request or ask for fewer new tokens (the "
            f"server's request_timeout_s sets the limit).",
            {},
        )
    if isinstance(exc, UnknownAdapterError):  # unloaded since the request was checked
        return Failure(404, str(exc), {})
    if isinstance(exc, (ConfigError, DataError)):  # an option this backend cannot honour
        return Failure(422, str(exc), {})
    request_log.exception("request %s failed", request_id, exc_info=exc)
    detail = str(exc) if isinstance(exc, DialogsumError) else f"{type(exc).__name__}: {exc}"
    return Failure(500, f"The model failed: {detail}", {})


async def http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's own errors (404, 405, and the keys' 401 and 403) in the service's error shape,
    or in OpenAI's on its routes."""
    assert isinstance(exc, StarletteHTTPException)  # registered for that class only
    message = str(exc.detail)
    if exc.status_code == 404:
        message = f"No route {request.url.path}; the API is POST /v1/summarize (see /docs)."
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path} (see /docs)."
    headers = dict(exc.headers or {})
    route = getattr(request.scope.get("route"), "path", None)
    if route in OPENAI_ROUTES:
        code = "invalid_api_key" if exc.status_code == 401 else None
        return openai_error_response(OpenAIError(exc.status_code, message, None, code, headers))
    return error_response(exc.status_code, message, request.state.request_id, headers)
