"""Reading a summarize request: schema, limits and generation options checked before the model
sees anything, and input tokens counted so over-long dialogues are reported (or refused)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic import ValidationError

from dialogsum.errors import ConfigError, DataError
from dialogsum.generation import GenerationOptions, check_dialogues, parse_generation
from dialogsum.serve.schema import SummarizeRequest
from dialogsum.validation import format_validation_error

if TYPE_CHECKING:
    from dialogsum.interfaces import Predictor
    from dialogsum.serve.settings import ServeSettings
    from dialogsum.summarizer import Summarizer


class Rejected(Exception):
    """A request answered with an error status before it reaches the model."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def request_inputs(
    body: bytes, settings: ServeSettings, summarizer: Summarizer
) -> tuple[list[str], GenerationOptions]:
    """The dialogues and generation options of a request, or :class:`Rejected` saying why not.

    The options are validated once, here, over the model's decoding defaults, with the
    server's batch size: the model receives this object as it is.
    """
    try:
        request = SummarizeRequest.model_validate_json(body or b"null")
    except ValidationError as exc:
        raise Rejected(422, _explain(exc)) from None
    texts = [request.inputs] if isinstance(request.inputs, str) else list(request.inputs)
    if not texts:
        raise Rejected(422, "inputs: give a dialogue or a non-empty list of dialogues.")
    if len(texts) > settings.max_inputs:
        raise Rejected(
            413, f"inputs: {len(texts)} dialogues; this server takes at most {settings.max_inputs}."
        )
    try:
        check_dialogues(texts)
    except DataError as exc:
        raise Rejected(422, f"inputs: {exc}") from None
    generate = dict((request.parameters and request.parameters.generate_parameters) or {})
    if "batch_size" in generate:
        raise Rejected(
            422, "parameters.generate_parameters.batch_size: the server sets the batch size."
        )
    try:
        options = parse_generation(
            generate, summarizer.manifest.generation, unlisted=("batch_size",)
        )
    except ConfigError as exc:
        raise Rejected(422, f"parameters.generate_parameters: {exc}") from None
    # A gathered batch decodes as one batch (the model's own batch_size would split it).
    return texts, options.model_copy(update={"batch_size": settings.max_batch_size})


#: What a request looks like, for the errors that say the body is not one.
SHAPE = (
    '{"inputs": "<dialogue>" or ["<dialogue>", ...], '
    '"parameters": {"generate_parameters": {"num_beams": 4, ...}}}'
)


def _explain(error: ValidationError) -> str:
    """A 422 message for a body that is not a summarize request."""
    problems = error.errors()
    if any(item["type"] == "json_invalid" for item in problems):
        return (
            f"The request body is not JSON ({problems[0]['msg']}). Send {SHAPE} as JSON "
            f"(Content-Type: application/json)."
        )
    if any(not item["loc"] for item in problems):  # null, a list, a number...
        return f"The request body must be a JSON object: {SHAPE}."
    message = f"Invalid request: {format_validation_error(error)}."
    if any(item["type"] == "extra_forbidden" for item in problems):
        message += (
            " A request takes inputs and parameters; parameters take generate_parameters, "
            "truncation and clean_up_tokenization_spaces."
        )
    return message


class Counts(NamedTuple):
    """Input tokens of a request and which inputs are over the model's length."""

    tokens: int
    truncated: list[int]
    limit: int


class InputMeter:
    """Counts tokens with the served model's own tokenizer, where its predictor can
    (:meth:`~dialogsum.interfaces.Predictor.token_ids`)."""

    def __init__(self, encode: Callable[[list[str]], list[list[int]]] | None, data: Any) -> None:
        self.encode = encode
        self.data = data

    @classmethod
    def of(cls, summarizer: Summarizer) -> InputMeter:
        """A meter for ``summarizer`` (one that counts nothing when its predictor cannot)."""
        predictor = summarizer.predictor
        probe = predictor.token_ids(["a"])
        encode = None if probe is None else _ids_of(predictor)
        return cls(encode, summarizer.manifest.data)

    @property
    def available(self) -> bool:
        """Whether tokens can be counted for this model."""
        return self.encode is not None

    def measure(self, texts: list[str]) -> Counts | None:
        """Prompted input tokens and the positions of inputs over ``max_source_length``."""
        if self.encode is None:
            return None
        ids = self.encode([self.data.render(text) for text in texts])
        limit = self.data.max_source_length
        over = [index for index, row in enumerate(ids) if len(row) > limit]
        return Counts(sum(min(len(row), limit) for row in ids), over, limit)

    def count(self, texts: list[str]) -> int:
        """Tokens in ``texts`` (summaries)."""
        return sum(len(row) for row in self.encode(texts)) if self.encode is not None else 0


def _ids_of(predictor: Predictor) -> Callable[[list[str]], list[list[int]]]:
    def encode(texts: list[str]) -> list[list[int]]:
        return predictor.token_ids(texts) or []

    return encode
