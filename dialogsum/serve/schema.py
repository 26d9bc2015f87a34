"""The request and response of ``POST /v1/summarize``: Hugging Face's summarization task schema,
and the JSON body of ``PUT /v1/adapters/{name}``.

``{"inputs": str | [str], "parameters": {"generate_parameters": {...}, "adapter": ...,
"truncation": ..., "clean_up_tokenization_spaces": ...}}`` -> ``[{"summary_text": ...}, ...]``
in input order, so ``huggingface_hub.InferenceClient(url).summarization(text)`` works
unchanged. ``adapter`` is dialogsum's own parameter: which loaded adapter summarizes.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Parameters(BaseModel):
    """The task's parameters; ``generate_parameters`` are dialogsum's generation options."""

    model_config = ConfigDict(extra="forbid")

    generate_parameters: dict[str, Any] | None = Field(
        None, description="Generation options: max_new_tokens, num_beams, ..."
    )
    adapter: str | None = Field(
        None,
        description="A loaded adapter to summarize with (GET /v1/adapters lists them); "
        "none: the base model.",
    )
    truncation: Literal["do_not_truncate", "longest_first", "only_first", "only_second"] | None = (
        Field(
            None,
            description="do_not_truncate: a dialogue over the model's input length is refused "
            "(422) instead of cut; the others (as transformers names them) cut it to that "
            "length, as the server does by default (a server set to reject refuses it anyway).",
        )
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


class AdapterFolder(BaseModel):
    """``PUT /v1/adapters/{name}`` with a JSON body: load the adapter in a server-side folder."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        min_length=1, description="The adapter's folder, on the server's own filesystem."
    )
