"""Summarizing with a PyTorch model: length-sorted batches, per-batch padding, progress bar.

This is the core's generic generation path: it serves a model held in memory (right after
fine-tuning) and backs the built-in ``torch`` backend.
"""

from __future__ import annotations

from typing import Any

from dialogsum.data import DataOptions
from dialogsum.generation import (
    OnSummary,
    check_dialogues,
    encode_sources,
    parse_generation,
    summarize_batches,
    warn_truncated_inputs,
)
from dialogsum.modeling import ModelManifest


class TorchPredictor:
    """Summarizes with a transformers (or peft) seq2seq model and its tokenizer."""

    def __init__(
        self, model: Any, tokenizer: Any, manifest: ModelManifest, *, progress: bool = True
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.manifest = manifest
        self.progress = progress

    @property
    def data_options(self) -> DataOptions:
        """The prompt and length limits the model was tuned with."""
        return self.manifest.data

    @property
    def device(self) -> Any:
        """The device the model's weights are on."""
        return next(self.model.parameters()).device

    def summarize(self, dialogues: list[str], **generation: Any) -> list[str]:
        """One summary per dialogue, in input order."""
        return self.summarize_each(dialogues, None, **generation)

    def summarize_each(
        self, dialogues: list[str], on_summary: OnSummary | None, **generation: Any
    ) -> list[str]:
        """Like :meth:`summarize`, calling ``on_summary(index, summary)`` as each batch ends
        (``generate`` finishes a batch's rows together)."""
        import torch

        texts = check_dialogues(dialogues)
        options = parse_generation(generation, self.manifest.generation)
        if not texts:
            return []
        sources, truncated = encode_sources(texts, self.tokenizer, self.data_options)
        warn_truncated_inputs(truncated, len(texts), self.data_options)
        kwargs = options.generate_kwargs(self.data_options.max_target_length)
        self.model.eval()
        device = self.device

        def run_batch(ids: list[list[int]], mask: list[list[int]], report: Any = None) -> list[str]:
            # generate() returns a batch's rows together: they are reported when it returns.
            with torch.inference_mode():
                output = self.model.generate(
                    input_ids=torch.tensor(ids, device=device),
                    attention_mask=torch.tensor(mask, device=device),
                    **kwargs,
                )
            return list(self.tokenizer.batch_decode(output, skip_special_tokens=True))

        return summarize_batches(
            sources,
            options.batch_size,
            self.tokenizer.pad_token_id,
            run_batch,
            progress=self.progress,
            on_summary=on_summary,
        )
