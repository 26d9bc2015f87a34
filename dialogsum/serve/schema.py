"""The request and response of ``POST /v1/summarize``: Hugging Face's summarization task schema.

``{"inputs": str | [str], "parameters": {"generate_parameters": {...}, "truncation": ...,
"clean_up_tokenization_spaces": ...}}`` -> ``[{"summary_text": ...}, ...]`` in input order, so
``huggingface_hub.InferenceClient(url).summarization(text)`` works unchanged.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Parameters(BaseModel):
    """The task's parameters; ``generate_parameters`` are dialogsum's generation options."""

    model_config = ConfigDict(extra="forbid")

    generate_parameters: dict[str, Any] | None = Field(
        None, description="Generation options: max_new_tokens, num_beams, ..."
    )
    truncation: str | None = Field(
        None, description="Accepted for compatibility; inputs are cut to the model's length."
    )
    clean_up_tokenization_spaces: bool | None = Field(
        None, description="Accepted for compatibility; summaries are already clean."
    )


class SummarizeRequest(BaseModel):
    """One or more dialogues to summarize."""

    model_config = ConfigDict(extra="forbid")

    inputs: str | list[str] = Field(description="A dialogue, or a list of dialogues.")
    parameters: Parameters | None = None


class Summary(BaseModel):
    """One summary."""

    summary_text: str
