"""Reading a summarize request: schema, limits and generation options checked before the model
sees anything, and input tokens counted so over-long dialogues are reported (or refused)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic import BaseModel, ValidationError

from dialogsum.adapter_serving import UnknownAdapterError
from dialogsum.errors import ConfigError, DataError
from dialogsum.generation import GenerationOptions, check_dialogues, parse_generation
from dialogsum.serve.schema import SummarizeRequest

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
) -> tuple[list[str], GenerationOptions, bool]:
    """The dialogues and generation options of a request, and whether it lets over-long
    dialogues be cut (``truncation`` not ``do_not_truncate``), or :class:`Rejected` saying
    why not.

    The options are validated once, here, over the model's decoding defaults, with the
    server's batch size: the model receives this object as it is.
    """
    try:
        request = SummarizeRequest.model_validate_json(body or b"null")
    except ValidationError as exc:
        raise Rejected(422, _explain(exc)) from None
    texts = checked_texts(request.inputs, settings, "inputs")
    parameters = request.parameters
    generate = dict((parameters and parameters.generate_parameters) or {})
    adapter = parameters.adapter if parameters is not None else None
    where = "parameters.generate_parameters"
    options = request_options(generate, adapter, settings, summarizer, where, "parameters.adapter")
    cut = parameters is None or parameters.truncation != "do_not_truncate"
    return texts, options, cut


def checked_texts(inputs: str | list[str], settings: ServeSettings, where: str) -> list[str]:
    """A request's dialogue (or list of them, at ``where`` in it) as a list, or
    :class:`Rejected`: none, more than ``max_inputs`` (413), or an empty one."""
    texts = [inputs] if isinstance(inputs, str) else list(inputs)
    if not texts:
        raise Rejected(422, f"{where}: give a dialogue or a non-empty list of dialogues.")
    if len(texts) > settings.max_inputs:
        most = settings.max_inputs
        raise Rejected(413, f"{where}: {len(texts)} dialogues; this server takes at most {most}.")
    try:
        check_dialogues(texts)
    except DataError as exc:
        raise Rejected(422, f"{where}: {exc}") from None
    return texts


#: Generation options a request does not set among the others: the server sets the batch size,
#: and the adapter has a field of its own.
NOT_REQUESTED = ("batch_size", "adapter")


def request_options(
    generate: dict[str, Any],
    adapter: str | None,
    settings: ServeSettings,
    summarizer: Summarizer,
    where: str,
    adapter_field: str,
) -> GenerationOptions:
    """A request's generation options (``generate``, found at ``where`` in it) validated over
    the decoding defaults of the model, or of ``adapter`` (found at ``adapter_field``), with the
    server's batch size; :class:`Rejected` saying what is wrong: 404 for an adapter that is not
    loaded (naming those that are), 422 for a bad option.

    The options are validated here, once: the model receives this object as it is.
    """
    for name in NOT_REQUESTED:
        if name in generate:
            instead = (
                "the server sets the batch size."
                if name == "batch_size"
                else f"choose the adapter with {adapter_field}."
            )
            raise Rejected(422, f"{where}.{name}: {instead}")
    try:
        # The request's own fields alone first, so that an error lists what a request may set;
        # then the Summarizer puts them over the defaults of the model or of the adapter.
        parse_generation(
            generate, unlisted=NOT_REQUESTED, no_sampling=summarizer.sampling_refused_by
        )
        options = summarizer.generation_options(**generate, adapter=adapter)
    except UnknownAdapterError as exc:
        raise Rejected(404, f"{adapter_field}: {exc}") from None
    except ConfigError as exc:
        raise Rejected(422, f"{where}: {exc}") from None
    # A gathered batch decodes as one batch (the model's own batch_size would split it).
    return options.model_copy(update={"batch_size": settings.max_batch_size})


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
    clauses, example = request_problems(
        error, SummarizeRequest, "parameters.generate_parameters", HF_PLACES
    )
    message = f"Invalid request: {clauses}."
    if any(item["type"] == "extra_forbidden" for item in problems):
        message += (
            " A request takes inputs and parameters; parameters take generate_parameters, "
            "adapter, truncation and clean_up_tokenization_spaces."
        )
    return message + example


#: Where text-generation APIs' users put generation options in a summarize request: at the
#: top, or in ``parameters``.
HF_PLACES: tuple[tuple[str, ...], ...] = ((), ("parameters",))


def request_problems(
    error: ValidationError,
    model: type[BaseModel],
    inside: str,
    places: tuple[tuple[str, ...], ...] = ((),),
) -> tuple[str, str]:
    """The problems of a request body of ``model``: one clause per problem, joined by
    semicolons (an unknown field told the likely one, a generation option sent at one of
    ``places``, as text-generation APIs take them, that it goes inside ``inside``), and a
    sentence showing where those generation options go (empty where there are none)."""
    from dialogsum.validation import error_message

    misplaced = _misplaced(error, model, places)
    clauses = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"])
        if field in misplaced:
            option = misplaced[field]
            exact = option == field.split(".")[-1]
            named = "a generation option" if exact else f"the generation option {option!r}"
            clauses.append(f"{field}: {named}, which goes inside {inside}")
        else:
            clauses.append(f"{field}: {error_message(item, model, listing=False)}")
    example = ""
    if misplaced:
        wanted = ", ".join(f'"{name}": ...' for name in dict.fromkeys(misplaced.values()))
        example = (
            f' Generation options go inside {inside}: {{"{inside.split(".")[-1]}": {{{wanted}}}}}.'
        )
    return "; ".join(clauses), example


def _misplaced(
    error: ValidationError, model: type[BaseModel], places: tuple[tuple[str, ...], ...]
) -> dict[str, str]:
    """``{field: generation option}`` for the unknown fields of a request at ``places`` that
    are generation options: by name (transformers' names too), or misspelt where no field of
    that place is closer."""
    from dialogsum.validation import every_name, fields_at, likely_key, other_names

    names = every_name(GenerationOptions)
    known = list(GenerationOptions.model_fields)
    others = other_names(GenerationOptions)
    found = {}
    for item in error.errors():
        key = str(item["loc"][-1]) if item["loc"] else ""
        place = tuple(map(str, item["loc"][:-1]))
        if item["type"] != "extra_forbidden" or place not in places:
            continue
        if key in names:
            found[".".join(map(str, item["loc"]))] = names[key]
        elif likely_key(key, fields_at(model, place), {}) is None:  # not its place's misspelt
            meant = likely_key(key, known, others)
            if meant is not None:
                found[".".join(map(str, item["loc"]))] = meant
    return found


class Counts(NamedTuple):
    """Input tokens of a request and which inputs are over the model's length."""

    tokens: int
    truncated: list[int]
    limit: int
    #: The tokens of each input in ``truncated`` (the prompt included), in that order.
    lengths: tuple[int, ...] = ()


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
        lengths = tuple(len(ids[index]) for index in over)
        return Counts(sum(min(len(row), limit) for row in ids), over, limit, lengths)

    def lengths(self, texts: list[str]) -> list[int] | None:
        """Each text's tokens, less those the tokenizer adds (a summary's own tokens); None
        when this model cannot count."""
        if self.encode is None:
            return None
        added = len(self.encode([""])[0])  # the end-of-sequence token, for T5
        return [max(len(row) - added, 0) for row in self.encode(texts)]

    def count(self, texts: list[str]) -> int:
        """Tokens in ``texts`` (summaries)."""
        return sum(len(row) for row in self.encode(texts)) if self.encode is not None else 0


def _ids_of(predictor: Predictor) -> Callable[[list[str]], list[list[int]]]:
    def encode(texts: list[str]) -> list[list[int]]:
        return predictor.token_ids(texts) or []

    return encode
