"""What every backend shares when it summarizes: generation options, input checks, prompting and
truncation of the inputs, and the length-sorted batching loop with its progress bar."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from dialogsum.data import DataOptions
from dialogsum.errors import DataError, logger
from dialogsum.validation import OTHER_NAMES, options_error, validate_options

#: Called with a dialogue's index and its summary as soon as that summary is final.
OnSummary = Callable[[int, str], None]

#: Options that shape sampling only: greedy and beam search never read them.
SAMPLING_OPTIONS = ("temperature", "top_p", "top_k")
#: Validation context key: sampling options are checked once the backend is known (the
#: command line, for an export: its backend may not sample at all, which is the error to give).
SAMPLING_CHECKED_WITH_BACKEND = "sampling_checked_with_backend"
#: The longest summary a request may ask for, in tokens.
MAX_NEW_TOKENS = 4096


class GenerationOptions(BaseModel):
    """Decoding settings accepted by ``summarize(dialogues, **generation)``.

    ``max_new_tokens`` defaults to the model's own setting (the target length it was tuned
    with), never to the transformers default of 20 tokens that cuts summaries short.
    """

    model_config = ConfigDict(extra="forbid")

    # The upper bounds keep a typo from allocating gigabytes: a summary is not 4,096 tokens
    # long, and 64 beams are far past where beam search stops paying.
    # transformers' max_length/min_length count the decoder's start token; here only the
    # summary's own tokens count.
    max_new_tokens: int | None = Field(
        None,
        gt=0,
        le=MAX_NEW_TOKENS,
        description="Longest summary, in tokens.",
        json_schema_extra={OTHER_NAMES: ["max_length"]},
    )
    min_new_tokens: int = Field(
        0,
        ge=0,
        le=MAX_NEW_TOKENS,
        description="Shortest summary, in tokens.",
        json_schema_extra={OTHER_NAMES: ["min_length", "min_tokens"]},
    )
    num_beams: int = Field(1, ge=1, le=64, description="1 is greedy decoding.")
    do_sample: bool = Field(False, description="Sample instead of searching (torch only).")
    # No NaN or infinity in the float options: a NaN or infinite length_penalty decoded an
    # empty summary, without an error.
    temperature: float = Field(1.0, gt=0, allow_inf_nan=False, description="Sampling temperature.")
    top_p: float = Field(
        1.0, gt=0, le=1, allow_inf_nan=False, description="Sampling: nucleus probability mass."
    )
    top_k: int = Field(50, ge=0, description="Sampling: only the k likeliest tokens.")
    no_repeat_ngram_size: int = Field(
        0, ge=0, description="Never repeat an n-gram of this size (0: off)."
    )
    repetition_penalty: float = Field(
        1.0, gt=0, allow_inf_nan=False, description="Above 1 discourages tokens already generated."
    )
    length_penalty: float = Field(
        1.0,
        allow_inf_nan=False,
        description="Beam search: above 0 favours longer summaries, below 0 shorter.",
    )
    early_stopping: bool = Field(
        False, description="Beam search: stop when num_beams finished candidates exist."
    )
    batch_size: int = Field(8, gt=0, description="Dialogues per generation batch.")
    adapter: str | None = Field(
        None,
        description="A loaded adapter to summarize with (a multi-adapter export); None: the base.",
    )

    @field_validator("min_new_tokens")
    @classmethod
    def _at_most_max(cls, value: int, info: ValidationInfo) -> int:
        longest = info.data.get("max_new_tokens")
        if longest is not None and value > longest:
            raise ValueError(
                f"{value} is above max_new_tokens={longest}; no summary can be both (lower "
                f"min_new_tokens or raise max_new_tokens)"
            )
        return value

    @model_validator(mode="after")
    def _sampling_options_need_sampling(self, info: ValidationInfo) -> GenerationOptions:
        # Without do_sample, generate() ignores them: a temperature the caller set would
        # silently change nothing.
        if self.do_sample or (info.context or {}).get(SAMPLING_CHECKED_WITH_BACKEND):
            return self
        fields = type(self).model_fields
        ignored = [
            f"{name}={getattr(self, name)!r}"
            for name in SAMPLING_OPTIONS
            if name in self.model_fields_set and getattr(self, name) != fields[name].default
        ]
        if ignored:
            one = len(ignored) == 1
            raise ValueError(
                f"{', '.join(ignored)} {'applies' if one else 'apply'} only when sampling, and "
                f"do_sample is False (greedy and beam search ignore {'it' if one else 'them'}): "
                f"add do_sample=True (CLI: --do-sample), or leave {'it' if one else 'them'} out"
            )
        return self

    def generate_kwargs(self, default_max_new_tokens: int) -> dict[str, Any]:
        """Keyword arguments for ``model.generate`` (sampling knobs only when sampling)."""
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens or default_max_new_tokens,
            "min_new_tokens": self.min_new_tokens,
            "num_beams": self.num_beams,
            "do_sample": self.do_sample,
            "no_repeat_ngram_size": self.no_repeat_ngram_size,
            "repetition_penalty": self.repetition_penalty,
        }
        if self.num_beams > 1:
            kwargs.update(length_penalty=self.length_penalty, early_stopping=self.early_stopping)
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k)
        return kwargs


def parse_generation(
    generation: Mapping[str, Any],
    defaults: Mapping[str, Any] | None = None,
    *,
    unlisted: tuple[str, ...] = (),
    no_sampling: str | None = None,
) -> GenerationOptions:
    """Validate ``**generation`` keyword arguments, naming the bad option and the valid ones.

    ``defaults`` are the model's own decoding settings (saved with it); what the caller passes
    overrides them. ``unlisted`` options are left out of the error's list of valid ones (the
    server sets ``batch_size`` itself). Sampling options among the model's defaults apply only
    when the result samples: a model saved with a temperature is still decoded greedily when
    the caller turns sampling off, but a temperature the caller gives without sampling fails.
    ``no_sampling`` names the backend when it cannot sample: the caller's sampling options are
    then refused, naming it, and left out of the valid ones.
    """
    if no_sampling is not None:
        unlisted = (*unlisted, "do_sample", *SAMPLING_OPTIONS)
        _refuse_sampling(generation, no_sampling, unlisted)
    if defaults and not _samples(generation.get("do_sample", defaults.get("do_sample"))):
        defaults = {k: v for k, v in defaults.items() if k not in SAMPLING_OPTIONS}
    return validate_options(
        "generation", GenerationOptions, generation, defaults=defaults, unlisted=unlisted
    )


def _refuse_sampling(
    generation: Mapping[str, Any], backend: str, unlisted: tuple[str, ...]
) -> None:
    """Fail naming the sampling options in ``generation`` (``do_sample=False`` is no request to
    sample): ``backend`` decodes by greedy or beam search only."""
    asked = [
        f"{name}={generation[name]!r}"
        for name in ("do_sample", *SAMPLING_OPTIONS)
        if name in generation and (name != "do_sample" or _samples(generation[name]))
    ]
    if not asked:
        return
    one = len(asked) == 1
    problems = (
        f"{', '.join(asked)}: the {backend} backend decodes by greedy or beam search and cannot "
        f"sample; leave {'it' if one else 'them'} out, or sample with backend='torch' (for an "
        f"export, on the model it was exported from)"
    )
    raise options_error("generation", GenerationOptions, problems, unlisted)


def _samples(do_sample: Any) -> bool:
    """Whether a ``do_sample`` value, as given (``"true"`` from a form, ``1``), turns sampling on;
    a value that is no boolean fails validation later, naming the option."""
    from pydantic import TypeAdapter, ValidationError

    if do_sample is None:  # set by neither: the default, greedy or beam search
        return False
    try:
        return TypeAdapter(bool).validate_python(do_sample)
    except ValidationError:
        return True  # keep the defaults: validation reports the bad value itself


def check_dialogues(dialogues: Any) -> list[str]:
    """Check ``dialogues`` is a list of non-empty strings; fail naming the first bad item."""
    if isinstance(dialogues, str):
        raise DataError(
            "summarize() takes a list of dialogues, got a single string; "
            "wrap it: summarize([text])."
        )
    try:
        items = list(dialogues)
    except TypeError:
        raise DataError(
            f"summarize() takes a list of dialogue strings, got {type(dialogues).__name__}."
        ) from None
    for index, item in enumerate(items):
        if not isinstance(item, str):
            row = (
                " For rows such as {'dialogue': ...}, pass each row's text: "
                "[row['dialogue'] for row in rows]."
                if isinstance(item, Mapping) and "dialogue" in item
                else ""
            )
            raise DataError(
                f"dialogues[{index}] is a {type(item).__name__}; every dialogue must be a "
                f"string.{row}"
            )
        if not item.strip():
            raise DataError(f"dialogues[{index}] is empty; every dialogue needs text to summarize.")
    return items


def cut_to_length(ids: list[int], limit: int, eos_id: int | None) -> tuple[list[int], bool]:
    """``ids`` cut to ``limit`` tokens (keeping a closing eos), and whether anything was cut."""
    if len(ids) <= limit:
        return ids, False
    # Keep the end-of-sequence token: T5 was trained to see it closing every input and target.
    if eos_id is not None and ids and ids[-1] == eos_id:
        return [*ids[: limit - 1], eos_id], True
    return ids[:limit], True


def encode_sources(
    dialogues: Sequence[str], tokenizer: Any, options: DataOptions
) -> tuple[list[list[int]], int]:
    """Token ids of the prompted dialogues, cut to ``max_source_length``; and how many were cut."""
    encoded = tokenizer(
        [options.render(d) for d in dialogues], add_special_tokens=True, verbose=False
    )["input_ids"]
    cut = [cut_to_length(ids, options.max_source_length, tokenizer.eos_token_id) for ids in encoded]
    return [ids for ids, _ in cut], sum(flag for _, flag in cut)


class _TokenizersCall:
    """A ``tokenizers.Tokenizer`` in the call shape of a transformers tokenizer."""

    def __init__(self, tokenizer: Any, eos_token_id: int) -> None:
        self.tokenizer = tokenizer
        self.eos_token_id = eos_token_id

    def __call__(self, texts: list[str], **_: Any) -> dict[str, list[list[int]]]:
        return {"input_ids": [e.ids for e in self.tokenizer.encode_batch(texts)]}


def encode_with_tokenizers(
    dialogues: Sequence[str],
    tokenizer: Any,
    eos_token_id: int,
    options: DataOptions,
    *,
    warn: bool = True,
) -> list[list[int]]:
    """:func:`encode_sources` with a ``tokenizers.Tokenizer`` (what a torch-free backend
    serves with); truncation is logged when ``warn``."""
    sources, truncated = encode_sources(
        dialogues, _TokenizersCall(tokenizer, eos_token_id), options
    )
    if warn:
        warn_truncated_inputs(truncated, len(dialogues), options)
    return sources


def warn_truncated_inputs(truncated: int, total: int, options: DataOptions) -> None:
    """Log how many dialogues were cut before summarizing (never silent)."""
    if truncated:
        logger.warning(
            "%d of %d dialogues were longer than max_source_length=%d tokens and were "
            "truncated before summarizing: the model reads the first %d, the length it was "
            "tuned with (its manifest's data.max_source_length; tune with a larger one to read "
            "more).",
            truncated,
            total,
            options.max_source_length,
            options.max_source_length,
            # For callers that add the counts up over many calls (dialogsum batch).
            extra={"truncated": truncated, "dialogues": total},
        )


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first, to waste little padding."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def summarize_batches(
    sources: Sequence[list[int]],
    batch_size: int,
    pad_id: int,
    run_batch: Callable[..., list[str]],
    *,
    progress: bool = True,
    on_summary: OnSummary | None = None,
    with_rows: bool = False,
) -> list[str]:
    """Summaries of ``sources`` in input order, generated in length-sorted, padded batches.

    ``run_batch(ids, mask)`` generates and decodes one padded batch; every backend's
    ``summarize`` shares this loop and its progress bar. With ``on_summary``, each summary is
    reported as soon as it is final: ``run_batch`` is then called with ``report=`` as well, a
    function of a row's position in the batch and its text, for decoders that know a row is
    done before the batch is; rows it did not report are reported when the batch returns.
    With ``with_rows``, ``run_batch`` also gets ``rows=``, the indices into ``sources`` of
    the batch's rows (for decoders whose rows differ by more than their ids, e.g. adapters).
    """
    from tqdm.auto import tqdm

    summaries: list[str | None] = [None] * len(sources)
    batches = length_sorted_batches([len(s) for s in sources], batch_size)
    disable = not progress or len(batches) < 2
    with tqdm(total=len(sources), desc="summarizing", unit="dialogue", disable=disable) as bar:
        for batch in batches:

            def report(position: int, text: str, batch: list[int] = batch) -> None:
                index = batch[position]
                if summaries[index] is None:
                    summaries[index] = text.strip()
                    if on_summary is not None:
                        on_summary(index, summaries[index] or "")

            ids, mask = pad_batch([sources[i] for i in batch], pad_id)
            extra: dict[str, Any] = {"rows": batch} if with_rows else {}
            if on_summary:
                extra["report"] = report
            texts = run_batch(ids, mask, **extra)
            for position, text in zip(range(len(batch)), texts, strict=True):
                report(position, text)
            bar.update(len(batch))
    return [text or "" for text in summaries]


def cut_at_eos(tokens: list[int], eos: int) -> list[int]:
    """``tokens`` up to and including the first end-of-sequence token."""
    return tokens[: tokens.index(eos) + 1] if eos in tokens else tokens


def pad_batch(
    sequences: Sequence[list[int]], pad_id: int
) -> tuple[list[list[int]], list[list[int]]]:
    """Right-pad ``sequences`` to the longest in the batch; returns ids and attention mask."""
    width = max(len(s) for s in sequences)
    ids = [list(s) + [pad_id] * (width - len(s)) for s in sequences]
    mask = [[1] * len(s) + [0] * (width - len(s)) for s in sequences]
    return ids, mask
