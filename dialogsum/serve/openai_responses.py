"""The answers of the OpenAI-compatible routes, in OpenAI's shapes: a completion or chat
completion whole, or as the chunks of a stream; token usage and why each summary ended.

This module imports no FastAPI.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dialogsum.adapter_serving import UnknownAdapterError

if TYPE_CHECKING:
    from dialogsum.generation import GenerationOptions
    from dialogsum.serve.inputs import Counts
    from dialogsum.serve.state import ServiceState


@dataclass
class Outcome:
    """Why each summary ended, and the request's token usage."""

    finish_reasons: list[str]
    usage: dict[str, int]


def outcome(
    state: ServiceState, counts: Counts | None, summaries: list[str], options: GenerationOptions
) -> Outcome:
    """``finish_reason`` per summary ("length" when it has ``max_new_tokens`` tokens, the
    summary re-encoded with the model's tokenizer; "stop" otherwise, or when this model cannot
    count tokens) and ``usage`` (prompt tokens as the model reads them, truncation included)."""
    lengths = state.meter.lengths(summaries)
    limit = options.max_new_tokens or _manifest_limit(state, options.adapter)
    counted = lengths if lengths is not None else [0] * len(summaries)
    reasons = ["length" if lengths is not None and n >= limit else "stop" for n in counted]
    prompt = counts.tokens if counts is not None else 0
    completion = sum(lengths or [])
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    return Outcome(reasons, usage)


def _manifest_limit(state: ServiceState, adapter: str | None) -> int:
    """The longest summary the model (or the adapter) writes when no max_new_tokens is given."""
    manifest = state.summarizer.manifest
    if adapter is not None:
        # Unloaded since? Its summaries are done: the base's limit is as good a guess.
        with contextlib.suppress(UnknownAdapterError):
            manifest = state.summarizer.adapter(adapter).manifest
    return manifest.data.max_target_length


@dataclass
class Shape:
    """One route's answers: a completion's (``text``) or a chat completion's (``message``)."""

    chat: bool
    model: str
    id: str = field(init=False)
    created: int = field(default_factory=lambda: int(time.time()))

    def __post_init__(self) -> None:
        self.id = f"{'chatcmpl' if self.chat else 'cmpl'}-{uuid.uuid4().hex}"

    def whole(self, summaries: list[str], result: Outcome) -> dict[str, Any]:
        """The answer of a request that does not stream."""
        choices = [
            {
                "index": index,
                **self._content(summary),
                "logprobs": None,
                "finish_reason": reason,
            }
            for index, (summary, reason) in enumerate(
                zip(summaries, result.finish_reasons, strict=True)
            )
        ]
        kind = "chat.completion" if self.chat else "text_completion"
        return self._envelope(kind, choices) | {"usage": result.usage}

    def opening(self, count: int) -> list[dict[str, Any]]:
        """The chunks a stream starts with: a chat stream says who speaks."""
        if not self.chat:
            return []
        return [self.chunk(index, "", None, role=True) for index in range(count)]

    def chunk(
        self, index: int, text: str, finish_reason: str | None, *, role: bool = False
    ) -> dict[str, Any]:
        """One chunk of a stream: ``text`` added to choice ``index``, or its end."""
        if self.chat:
            delta: dict[str, Any] = {"role": "assistant"} if role else {}
            if text or role:
                delta["content"] = text
            content: dict[str, Any] = {"delta": delta}
        else:
            content = {"text": text}
        choice = {"index": index, **content, "logprobs": None, "finish_reason": finish_reason}
        return self._envelope(self._chunk_kind, [choice])

    def usage_chunk(self, usage: dict[str, int]) -> dict[str, Any]:
        """The last chunk of a stream that asked for usage (``stream_options``)."""
        return self._envelope(self._chunk_kind, []) | {"usage": usage}

    @property
    def _chunk_kind(self) -> str:
        return "chat.completion.chunk" if self.chat else "text_completion"

    def _content(self, text: str) -> dict[str, Any]:
        if self.chat:
            return {"message": {"role": "assistant", "content": text}}
        return {"text": text}

    def _envelope(self, kind: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }


def model_entry(model_id: str, created: int) -> dict[str, Any]:
    """One model of ``GET /v1/models``."""
    return {"id": model_id, "object": "model", "created": created, "owned_by": "dialogsum"}
