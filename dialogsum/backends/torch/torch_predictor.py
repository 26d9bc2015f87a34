"""Summarizing with a PyTorch model: length-sorted batches, per-batch padding, progress bar.

It serves a model loaded from a folder or the hub, and one held in memory right after
fine-tuning or merging.
"""

from __future__ import annotations

from typing import Any

from dialogsum.plugin_api import (
    GenerationOptions,
    OnSummary,
    Predictor,
    TorchModel,
    encode_sources,
    summarize_batches,
    warn_truncated_inputs,
)


class TorchPredictor(Predictor):
    """Summarizes with a transformers (or peft) seq2seq model and its tokenizer."""

    def __init__(self, model: TorchModel, *, progress: bool = True) -> None:
        self._model = model
        self.manifest = model.manifest
        self.progress = progress

    @property
    def torch_model(self) -> TorchModel:
        """The model, its tokenizer and manifest: this predictor can be tuned and exported."""
        return self._model

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Each text's token ids with the model's tokenizer."""
        tokenizer = self._model.tokenizer
        return list(tokenizer(texts, add_special_tokens=True, verbose=False)["input_ids"])

    def summarize(self, dialogues: list[str], options: GenerationOptions) -> list[str]:
        """One summary per dialogue, in input order."""
        return self._run(dialogues, options, None)

    def summarize_each(
        self, dialogues: list[str], options: GenerationOptions, on_summary: OnSummary
    ) -> list[str]:
        """Like :meth:`summarize`, calling ``on_summary(index, summary)`` as each batch ends
        (``generate`` finishes a batch's rows together)."""
        return self._run(dialogues, options, on_summary)

    def _run(
        self, texts: list[str], options: GenerationOptions, on_summary: OnSummary | None
    ) -> list[str]:
        import torch

        if not texts:
            return []
        model, tokenizer, data = self._model.model, self._model.tokenizer, self.manifest.data
        sources, truncated = encode_sources(texts, tokenizer, data)
        warn_truncated_inputs(truncated, len(texts), data)
        kwargs = options.generate_kwargs(data.max_target_length)
        model.eval()
        device = next(model.parameters()).device

        def run_batch(ids: list[list[int]], mask: list[list[int]], report: Any = None) -> list[str]:
            # generate() returns a batch's rows together: they are reported when it returns.
            with torch.inference_mode():
                output = model.generate(
                    input_ids=torch.tensor(ids, device=device),
                    attention_mask=torch.tensor(mask, device=device),
                    **kwargs,
                )
            return list(tokenizer.batch_decode(output, skip_special_tokens=True))

        return summarize_batches(
            sources,
            options.batch_size,
            tokenizer.pad_token_id,
            run_batch,
            progress=self.progress,
            on_summary=on_summary,
        )
