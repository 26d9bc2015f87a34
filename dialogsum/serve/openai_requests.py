"""An OpenAI-compatible request read and checked before the model sees it: the dialogues, the
adapter its ``model`` names, and dialogsum's generation options; or an :class:`OpenAIError` in
OpenAI's shape, saying what to change.

This module imports no FastAPI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from pydantic import BaseModel, ValidationError

from dialogsum.adapter_serving import meant_adapter
from dialogsum.serve.inputs import (
    Rejected,
    checked_texts,
    request_options,
    request_problems,
)
from dialogsum.serve.openai_schema import ChatCompletionRequest, CompletionRequest

if TYPE_CHECKING:
    from dialogsum.generation import GenerationOptions
    from dialogsum.serve.state import ServiceState

RequestT = TypeVar("RequestT", bound=BaseModel)


class OpenAIError(Exception):
    """An answer in OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON answer."""
        kind = "server_error" if self.status >= 500 else "invalid_request_error"
        error = {"message": self.message, "type": kind, "param": self.param, "code": self.code}
        return {"error": error}


class Prepared(NamedTuple):
    """What a checked request asks of the model."""

    texts: list[str]
    options: GenerationOptions
    #: The ``model`` the request named, echoed in the answer.
    model: str


def read_request(body: bytes, kind: type[RequestT]) -> RequestT:
    """``body`` as a ``kind`` request, or a 400 naming the field at fault."""
    try:
        return kind.model_validate_json(body or b"null")
    except ValidationError as exc:
        problems = exc.errors()
        where = ".".join(str(part) for part in problems[0]["loc"]) or None
        clauses, example = request_problems(exc, kind, "generate_parameters")
        message = f"Invalid request: {clauses}."
        if any(item["type"] == "extra_forbidden" for item in problems):
            fields = ", ".join(name for name in kind.model_fields)
            message += f" This server takes: {fields}.{example}"
        if any(item["type"] == "json_invalid" for item in problems):
            message = f"The request body is not JSON ({problems[0]['msg']})."
        raise OpenAIError(400, message, where) from None


def completion_inputs(request: CompletionRequest, state: ServiceState) -> Prepared:
    """The dialogues of ``POST /v1/completions``: its prompt, or each of its prompts."""
    return _prepare(request, request.prompt, "prompt", request.max_tokens, state)


def chat_inputs(request: ChatCompletionRequest, state: ServiceState) -> Prepared:
    """The dialogue of ``POST /v1/chat/completions``: the last ``user`` message's text."""
    users = [index for index, m in enumerate(request.messages) if m.role == "user"]
    if not users:
        raise OpenAIError(400, "messages: give a 'user' message holding the dialogue.", "messages")
    where = f"messages.{users[-1]}.content"
    content = request.messages[users[-1]].content
    if isinstance(content, list):
        kinds = sorted({part.type for part in content if part.type != "text"})
        if kinds:
            raise OpenAIError(
                400,
                f"{where}: this server summarizes text; remove the {', '.join(kinds)} parts.",
                where,
            )
        content = "\n".join(part.text or "" for part in content)
    limits = [("max_tokens", request.max_tokens)]
    limits.append(("max_completion_tokens", request.max_completion_tokens))
    given = {value for _, value in limits if value is not None}
    if len(given) > 1:
        raise OpenAIError(
            400, "max_tokens and max_completion_tokens differ; give one.", "max_completion_tokens"
        )
    return _prepare(request, content or "", where, next(iter(given), None), state)


def _prepare(
    request: CompletionRequest | ChatCompletionRequest,
    inputs: str | list[str],
    where: str,
    max_tokens: int | None,
    state: ServiceState,
) -> Prepared:
    adapter = _adapter(request.model, state)
    _check_sampling(request)
    generate = dict(request.generate_parameters or {})
    if max_tokens is not None:
        if generate.get("max_new_tokens", max_tokens) != max_tokens:
            raise OpenAIError(
                400,
                "max_tokens and generate_parameters.max_new_tokens differ; give one.",
                "max_tokens",
            )
        generate["max_new_tokens"] = max_tokens
    try:
        texts = checked_texts(inputs, state.settings, where)
    except Rejected as rejected:
        raise _openai(rejected, where) from None
    try:
        options = request_options(
            generate, adapter, state.settings, state.summarizer, "generate_parameters", "model"
        )
    except Rejected as rejected:
        raise _openai(rejected, "generate_parameters") from None
    return Prepared(texts, options, request.model)


def _openai(rejected: Rejected, param: str) -> OpenAIError:
    """``rejected`` in OpenAI's terms: an invalid request is a 400, an unknown adapter is an
    unknown model."""
    if rejected.status == 404:
        return OpenAIError(404, rejected.message, "model", "model_not_found")
    status = 400 if rejected.status == 422 else rejected.status
    return OpenAIError(status, rejected.message, param, headers=rejected.headers)


def _adapter(model: str, state: ServiceState) -> str | None:
    """The adapter ``model`` names (None: the base), or a 404 naming the models served."""
    if model == state.model_id:
        return None
    loaded = state.summarizer.adapters()
    if model in loaded:
        return model
    served = ", ".join([f"{state.model_id} (the base model)", *sorted(loaded)])
    meant = meant_adapter(model, [state.model_id, *loaded])
    raise OpenAIError(
        404,
        f"The model {model!r} does not exist on this server; its models are: {served} "
        f"(GET /v1/models lists them).{meant}",
        "model",
        "model_not_found",
    )


def _check_sampling(request: CompletionRequest | ChatCompletionRequest) -> None:
    """Refuse, explained, what would ask for sampling, several choices or stop sequences."""
    deterministic = (
        "this server decodes deterministically (greedy, or beam search with "
        "generate_parameters.num_beams), the same summary every time"
    )
    neutral: list[tuple[str, Any, tuple[Any, ...], str]] = [
        ("n", request.n, (1,), f"one choice per prompt: {deterministic}"),
        ("temperature", request.temperature, (0,), f"0 or left out: {deterministic}"),
        ("top_p", request.top_p, (1,), f"1 or left out: {deterministic}"),
        ("presence_penalty", request.presence_penalty, (0,), "0 or left out"),
        (
            "frequency_penalty",
            request.frequency_penalty,
            (0,),
            "0 or left out; generate_parameters.repetition_penalty discourages repeats",
        ),
    ]
    for name, value, allowed, why in neutral:
        if value is not None and value not in allowed:
            raise OpenAIError(400, f"{name}={value!r} is not supported: {why}.", name)
    if request.stop:
        raise OpenAIError(
            400,
            "stop sequences are not supported: a summary ends at the model's end of sequence "
            "or at max_tokens. Leave stop out.",
            "stop",
        )
    if request.stream_options is not None and not request.stream:
        raise OpenAIError(400, "stream_options applies only with stream: true.", "stream_options")
