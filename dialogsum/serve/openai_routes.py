"""The OpenAI-compatible endpoints: ``POST /v1/completions``, ``POST /v1/chat/completions`` and
``GET /v1/models``, with the API key as the other data routes (OpenAI's clients send it as
``Authorization: Bearer``). ``model`` names the base model (its id in ``GET /v1/models``) or an
adapter; requests go through the same micro-batcher as ``POST /v1/summarize``, so they share
batches with it. Errors are in OpenAI's shape."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse

from dialogsum.serve.body import read_body
from dialogsum.serve.dependencies import ServiceStateDep, require_api_key
from dialogsum.serve.openai_requests import (
    OpenAIError,
    Prepared,
    chat_inputs,
    completion_inputs,
    read_request,
)
from dialogsum.serve.openai_responses import Shape, model_entry, outcome
from dialogsum.serve.openai_schema import ChatCompletionRequest, CompletionRequest
from dialogsum.serve.openai_stream import Progress, events
from dialogsum.serve.responses import failure, json_response, openai_error_response
from dialogsum.serve.state import ServiceState

router = APIRouter()

_KEYED = [Depends(require_api_key)]

RequestT = TypeVar("RequestT", CompletionRequest, ChatCompletionRequest)


def _body(schema: str) -> dict[str, Any]:
    """A route's request body for /docs and /openapi.json (the body is read by hand)."""
    reference = {"$ref": f"#/components/schemas/{schema}"}
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": reference}}}
    }


@router.post(
    "/v1/completions",
    summary="OpenAI-compatible: summarize the prompt (or each prompt of a list).",
    dependencies=_KEYED,
    openapi_extra=_body("CompletionRequest"),
)
async def completions(request: Request, state: ServiceStateDep) -> Response:
    """A completion whose text is the prompt's summary; server-sent events with stream."""
    return await _answer(request, state, CompletionRequest, completion_inputs, chat=False)


@router.post(
    "/v1/chat/completions",
    summary="OpenAI-compatible: summarize the last user message.",
    dependencies=_KEYED,
    openapi_extra=_body("ChatCompletionRequest"),
)
async def chat_completions(request: Request, state: ServiceStateDep) -> Response:
    """A chat completion whose message is the summary; server-sent events with stream."""
    return await _answer(request, state, ChatCompletionRequest, chat_inputs, chat=True)


@router.get(
    "/v1/models",
    summary="OpenAI-compatible: the base model and every adapter.",
    dependencies=_KEYED,
)
async def models(state: ServiceStateDep) -> dict[str, Any]:
    """The base model (its id is the served folder's name) and the adapters, by name."""
    admin = state.adapters
    entries = [model_entry(state.model_id, admin.created(None))]
    entries += [
        model_entry(name, admin.created(name)) for name in sorted(state.summarizer.adapters())
    ]
    return {"object": "list", "data": entries}


async def _answer(
    request: Request,
    state: ServiceState,
    kind: type[RequestT],
    prepare: Callable[[RequestT, ServiceState], Prepared],
    *,
    chat: bool,
) -> Response:
    request_id = request.state.request_id
    try:
        body = await read_body(request, state.settings.max_body_bytes)
        asked = read_request(body, kind)
        prepared = prepare(asked, state)
        counts = state.measure(prepared.texts)
        shape = Shape(chat, prepared.model)
        finish = functools.partial(outcome, state, counts, options=prepared.options)
        if asked.stream:
            include_usage = asked.stream_options is not None and asked.stream_options.include_usage
            return await _stream(state, prepared, shape, finish, include_usage, request_id)
        summaries = await state.summarize(prepared.texts, prepared.options)
    except Exception as exc:
        return openai_error_response(_openai_error(exc, state, request_id))
    return json_response(shape.whole(summaries, finish(summaries)), 200)


async def _stream(
    state: ServiceState,
    prepared: Prepared,
    shape: Shape,
    finish: Callable[[list[str]], Any],
    include_usage: bool,
    request_id: str,
) -> Response:
    """Server-sent events, opened once the first text (or the whole answer) is ready."""
    progress = Progress(state, prepared)
    try:
        first = await progress.next()
    except BaseException:
        progress.cancel()
        raise
    failed = progress.failure()
    if failed is not None:
        raise failed

    def explain(exc: BaseException) -> dict[str, Any]:
        return _openai_error(exc, state, request_id).body()

    stream = events(progress, first, shape, finish, explain, include_usage)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)


def _openai_error(exc: BaseException, state: ServiceState, request_id: str) -> OpenAIError:
    """``exc`` as OpenAI's error: the service's own answer to it, in OpenAI's terms."""
    if isinstance(exc, OpenAIError):
        return exc
    if not isinstance(exc, Exception):
        raise exc
    answer = failure(exc, state.settings, request_id)
    if answer.status == 404:  # an adapter unloaded since the request was checked
        return OpenAIError(404, answer.message, "model", "model_not_found", answer.headers)
    status = 400 if answer.status == 422 else answer.status
    return OpenAIError(status, answer.message, None, None, answer.headers)
