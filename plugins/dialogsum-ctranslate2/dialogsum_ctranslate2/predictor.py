"""Summarizing with a CTranslate2 ``Translator``: dialogsum's prompting, truncation and batching,
CTranslate2's decoding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dialogsum.plugin_api import (
    ConfigError,
    GenerationOptions,
    Predictor,
    encode_sources,
    read_manifest,
    summarize_batches,
    warn_truncated_inputs,
)


class _Tokenizer:
    """A ``tokenizers.Tokenizer`` in the call shape dialogsum's ``encode_sources`` expects."""

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.eos_token_id = self.tokenizer.token_to_id("</s>")
        self.pad_token_id = self.tokenizer.token_to_id("<pad>") or 0

    def __call__(self, texts: list[str], **_: Any) -> dict[str, list[list[int]]]:
        return {"input_ids": [e.ids for e in self.tokenizer.encode_batch(texts)]}


class CTranslate2Predictor(Predictor):
    """One summary per dialogue, in input order, decoded greedily or with beam search."""

    def __init__(
        self, folder: Path, *, compute_type: str, threads: int = 0, progress: bool = True
    ) -> None:
        import ctranslate2

        self.folder = folder
        self.manifest = read_manifest(folder)
        self.translator = ctranslate2.Translator(
            str(folder), device="cpu", compute_type=compute_type, intra_threads=threads
        )
        self.tokenizer = _Tokenizer(folder)
        self.progress = progress

    def summarize(self, dialogues: list[str], options: GenerationOptions) -> list[str]:
        """One summary per dialogue, in input order.

        dialogsum has checked ``dialogues`` (a list of non-empty strings) and validated
        ``options`` over the model's decoding defaults.
        """
        if options.do_sample:
            raise ConfigError(
                "The ctranslate2 backend decodes deterministically here (greedy or beam "
                "search); do_sample is not supported. Use backend='torch' for sampling."
            )
        if not dialogues:
            return []
        data = self.manifest.data
        sources, truncated = encode_sources(dialogues, self.tokenizer, data)
        warn_truncated_inputs(truncated, len(dialogues), data)
        tokenizer = self.tokenizer.tokenizer
        limit = options.max_new_tokens or data.max_target_length

        def run_batch(ids: list[list[int]], mask: list[list[int]]) -> list[str]:
            rows = [
                [tokenizer.id_to_token(i) for i, keep in zip(row, keep_row, strict=True) if keep]
                for row, keep_row in zip(ids, mask, strict=True)
            ]
            results = self.translator.translate_batch(
                rows,
                beam_size=options.num_beams,
                length_penalty=options.length_penalty,
                repetition_penalty=options.repetition_penalty,
                no_repeat_ngram_size=options.no_repeat_ngram_size,
                max_decoding_length=limit,
                min_decoding_length=options.min_new_tokens,
                max_input_length=0,
            )
            return [
                tokenizer.decode([tokenizer.token_to_id(t) for t in r.hypotheses[0]])
                for r in results
            ]

        return summarize_batches(
            sources,
            options.batch_size,
            self.tokenizer.pad_token_id,
            run_batch,
            progress=self.progress,
        )
