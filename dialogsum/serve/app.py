"""The ASGI application: ``POST /v1/summarize`` with micro-batching, the OpenAI-compatible
routes, adapters loaded at run time, health, model card, metrics and limits.
``create_app(summarizer, settings)`` builds it around a loaded :class:`~dialogsum.Summarizer`,
so it mounts in any FastAPI or Starlette application.

The pieces: :mod:`~dialogsum.serve.state` (what the endpoints share),
:mod:`~dialogsum.serve.routes`, :mod:`~dialogsum.serve.adapter_routes` and
:mod:`~dialogsum.serve.openai_routes` (the endpoints), :mod:`~dialogsum.serve.dependencies`
(the state and the keys, as dependencies), :mod:`~dialogsum.serve.envelope` (request id,
metrics and log line of every request) and :mod:`~dialogsum.serve.responses` (the error shapes).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException

from dialogsum.serve import adapter_routes, openai_routes
from dialogsum.serve.envelope import envelope
from dialogsum.serve.openai_schema import ChatCompletionRequest, CompletionRequest
from dialogsum.serve.responses import http_error
from dialogsum.serve.routes import router
from dialogsum.serve.schema import AdapterFolder, SummarizeRequest
from dialogsum.serve.settings import ServeSettings
from dialogsum.serve.state import ServiceState

if TYPE_CHECKING:
    from dialogsum.summarizer import Summarizer


def create_app(summarizer: Summarizer, settings: ServeSettings | None = None) -> FastAPI:
    """The service's FastAPI application around ``summarizer`` (see ``docs/serving.md``).

    Its :class:`~dialogsum.serve.state.ServiceState` is ``app.state.dialogsum``. Raises
    :class:`~dialogsum.errors.ConfigError` when ``settings.api_key_env`` names an unset
    variable.
    """
    state = ServiceState(summarizer, settings or ServeSettings())
    app = FastAPI(
        title="dialogsum",
        summary="Dialogue summarization with a fine-tuned FLAN-T5.",
        version=_version(),
        lifespan=_lifespan,
    )
    app.state.dialogsum = state
    app.include_router(router)
    app.include_router(adapter_routes.router)
    app.include_router(openai_routes.router)
    app.middleware("http")(envelope)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.openapi = functools.partial(_cached_openapi, app)  # type: ignore[method-assign]
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Only the top-level app gets lifespan events; a mounted one starts on its first request.
    state: ServiceState = app.state.dialogsum
    await state.startup()
    try:
        yield
    finally:
        await state.shutdown()  # every accepted request is answered first


def _cached_openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        app.openapi_schema = _openapi(app, app.state.dialogsum.api_key is not None)
    return app.openapi_schema


def _openapi(app: FastAPI, keyed: bool) -> dict[str, Any]:
    """FastAPI's schema plus the request bodies read by hand, and the API key where one is
    needed."""
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes
    )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in (SummarizeRequest, AdapterFolder, CompletionRequest, ChatCompletionRequest):
        body = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(body.pop("$defs", {}))
        schemas[model.__name__] = body
    if keyed:
        components["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
        schema["security"] = [{"bearer": []}, {"apiKey": []}]
    return schema


def _version() -> str:
    from dialogsum._version import __version__

    return __version__


__all__ = ["create_app"]
