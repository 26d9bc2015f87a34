"""Generation options shared by every backend, and input checks for ``summarize``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dialogsum.errors import ConfigError, DataError


class GenerationOptions(BaseModel):
    """Decoding settings accepted by ``summarize(dialogues, **generation)``.

    ``max_new_tokens`` defaults to the model's own setting (the target length it was tuned
    with), never to the transformers default of 20 tokens that cuts summaries short.
    """

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int | None = Field(None, gt=0, description="Longest summary, in tokens.")
    min_new_tokens: int = Field(0, ge=0)
    num_beams: int = Field(1, ge=1, description="1 is greedy decoding.")
    do_sample: bool = False
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(50, ge=0)
    no_repeat_ngram_size: int = Field(0, ge=0)
    repetition_penalty: float = Field(1.0, gt=0)
    length_penalty: float = 1.0
    early_stopping: bool = False
    batch_size: int = Field(8, gt=0, description="Dialogues per generation batch.")

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
    generation: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> GenerationOptions:
    """Validate ``**generation`` keyword arguments, naming the bad option and the valid ones.

    ``defaults`` are the model's own decoding settings (saved with it); what the caller passes
    overrides them.
    """
    try:
        return GenerationOptions.model_validate({**(defaults or {}), **generation})
    except ValidationError as exc:
        from dialogsum.registry import format_validation_error

        raise ConfigError(
            f"Invalid generation option: {format_validation_error(exc)}. "
            f"Valid options: {', '.join(GenerationOptions.model_fields)}."
        ) from None


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
            raise DataError(
                f"dialogues[{index}] is a {type(item).__name__}; every dialogue must be a string."
            )
        if not item.strip():
            raise DataError(f"dialogues[{index}] is empty; every dialogue needs text to summarize.")
    return items
