"""The requests of the OpenAI-compatible routes: ``POST /v1/completions`` and
``POST /v1/chat/completions``, as OpenAI's clients send them.

The fields are OpenAI's, less those a summarizer cannot honour (``logprobs``, ``echo``,
``tools``...): an unknown field is an error naming the supported ones, never silently ignored.
``generate_parameters`` is dialogsum's own (send it with ``extra_body=`` from OpenAI's Python
client): the generation options of ``POST /v1/summarize``, such as ``num_beams``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dialogsum.generation import MAX_NEW_TOKENS


class StreamOptions(BaseModel):
    """``stream_options``: what a streamed answer carries besides the text."""

    model_config = ConfigDict(extra="forbid")

    include_usage: bool = Field(
        False, description="End the stream with a chunk holding the request's token usage."
    )


class _Request(BaseModel):
    """The fields both routes take."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="The base model's id or an adapter's name (GET /v1/models).")
    # Bounded here, as max_new_tokens is, so that a bad value is told by the name it was sent as.
    max_tokens: int | None = Field(
        None,
        gt=0,
        le=MAX_NEW_TOKENS,
        description="Longest summary, in tokens (dialogsum's max_new_tokens).",
    )
    n: int | None = Field(None, description="Choices per prompt: 1 (decoding is deterministic).")
    temperature: float | None = Field(None, description="0 (greedy) or left out: no sampling.")
    top_p: float | None = Field(None, description="1 or left out: no sampling.")
    stop: str | list[str] | None = Field(
        None, description="Not supported: a summary ends at end of sequence or max_tokens."
    )
    stream: bool = Field(False, description="Server-sent events as the summary is decoded.")
    stream_options: StreamOptions | None = None
    seed: int | None = Field(None, description="Accepted; decoding is deterministic anyway.")
    user: str | None = Field(None, description="Accepted; not used.")
    presence_penalty: float | None = Field(None, description="0 or left out.")
    frequency_penalty: float | None = Field(None, description="0 or left out.")
    generate_parameters: dict[str, Any] | None = Field(
        None,
        description="dialogsum's generation options, as in POST /v1/summarize (num_beams, "
        "no_repeat_ngram_size, ...).",
    )


class CompletionRequest(_Request):
    """``POST /v1/completions``: the prompt is the dialogue (or a list of dialogues)."""

    prompt: str | list[str] = Field(description="A dialogue, or a list of dialogues.")


class ContentPart(BaseModel):
    """One part of a chat message's content; only ``text`` parts are read."""

    # Other part types (images, audio) carry fields of their own; they are refused by type.
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """One chat message; the dialogue is the content of the last ``user`` message."""

    # Only the last user message is read, so the other fields a message may carry (a tool
    # call, a refusal, a name) are let through rather than refused.
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None


class ChatCompletionRequest(_Request):
    """``POST /v1/chat/completions``: the last ``user`` message's content is the dialogue."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(
        None,
        gt=0,
        le=MAX_NEW_TOKENS,
        description="Longest summary, in tokens (OpenAI's newer name for max_tokens).",
    )
