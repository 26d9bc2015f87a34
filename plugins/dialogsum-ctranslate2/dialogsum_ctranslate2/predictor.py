"""Serve a CTranslate2 export folder with ctranslate2 and tokenizers alone: no torch, no conversion.

dialogsum's prompting, truncation and length-sorted batching; CTranslate2's greedy and beam
search. The folder is read as the export wrote it: the weights are never converted here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dialogsum.plugin_api import (
    ConfigError,
    GenerationOptions,
    ModelError,
    ModelManifest,
    OnSummary,
    Predictor,
    clause,
    encode_with_tokenizers,
    read_manifest,
    summarize_batches,
)
from dialogsum_ctranslate2.export_files import REQUIRED_FILES

#: How a user makes a folder this backend serves.
EXPORT_COMMAND = "dialogsum export --model MODEL --backend ctranslate2 --output DIR"

#: CTranslate2's beam search stops once ``patience x beams`` hypotheses have finished. With a
#: patience of 1 it is transformers' ``early_stopping=True`` exactly (40 of 40 dialogues of
#: dialogsum-tiny identical, 4 beams). transformers' default, ``early_stopping=False``, searches
#: on by a heuristic CTranslate2 lacks; a patience of 2 matched it on 95% (32 new tokens) and
#: 90% (64) of those dialogues, against 85% and 78% for a patience of 1. A larger patience
#: matched one dialogue more at 64 tokens and took up to 1.6x the time (from 4 on it picks
#: what ``early_stopping="never"`` picks). See the README.
BEAM_PATIENCE = 2.0

#: Called with a row's position in its batch and its token ids once they are final.
Finished = Callable[[int, list[int]], None]


def export_manifest(model_dir: Path | str) -> tuple[Path, ModelManifest]:
    """The export folder ``model_dir`` and its manifest; a clear error for anything else."""
    folder = Path(model_dir).expanduser()
    if not folder.is_dir():
        raise ModelError(
            f"No CTranslate2 export folder at {model_dir}. The ctranslate2 backend serves the "
            f"folder its export wrote: {EXPORT_COMMAND} (or Summarizer.export(DIR, "
            f"backend='ctranslate2')), then load DIR."
        )
    manifest = read_manifest(folder)
    export = manifest.export
    if export is None:
        raise ModelError(
            f"{folder} is not a CTranslate2 export (its dialogsum.json has no export record): "
            f"the ctranslate2 backend serves exported folders only and converts nothing when "
            f"it loads. Export it first: dialogsum export --model {folder} --backend "
            f"ctranslate2 --output DIR, then load DIR."
        )
    if export.backend != "ctranslate2":
        source = export.source_model or "MODEL (the model it was exported from)"
        raise ModelError(
            f"{folder} is an export for the {export.backend} backend, not a CTranslate2 "
            f"export: load it without backend= (its manifest names {export.backend}), or "
            f"export for this backend: dialogsum export --model {source} --backend "
            f"ctranslate2 --output DIR."
        )
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise ModelError(
            f"The CTranslate2 export in {folder} is incomplete: {', '.join(missing)} missing. "
            f"Export it again ({EXPORT_COMMAND} --overwrite)."
        )
    return folder, manifest


class CTranslate2Predictor(Predictor):
    """Summarization (greedy or beam search) with a CTranslate2 ``Translator`` on the CPU."""

    samples = False

    def __init__(
        self,
        model_dir: Path | str,
        *,
        compute_type: str = "default",
        threads: int = 0,
        progress: bool = True,
    ) -> None:
        import ctranslate2
        from tokenizers import Tokenizer

        folder, self.manifest = export_manifest(model_dir)
        supported = ctranslate2.get_supported_compute_types("cpu")
        if compute_type != "default" and not any(t.startswith(compute_type) for t in supported):
            raise ConfigError(
                f"CTranslate2 cannot run compute_type={compute_type} on this CPU (it supports "
                f"{', '.join(sorted(supported))}); serve with compute_type='default'."
            )
        try:
            generation = json.loads((folder / "generation_config.json").read_text("utf-8"))
            vocabulary = json.loads((folder / "shared_vocabulary.json").read_text("utf-8"))
            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as exc:  # tokenizers raises a bare Exception on a corrupt file
            raise ModelError(
                f"The CTranslate2 export in {folder} has a corrupt generation_config.json, "
                f"shared_vocabulary.json or tokenizer.json ({exc}); export the model again."
            ) from exc
        try:
            self.translator = ctranslate2.Translator(
                str(folder), device="cpu", compute_type=compute_type, intra_threads=threads
            )
        except Exception as exc:
            export = self.manifest.export
            written = export.versions.get("ctranslate2") if export is not None else None
            raise ModelError(
                f"ctranslate2 {ctranslate2.__version__} could not load the export in {folder} "
                f"(written with ctranslate2 {written or 'unknown'}): {clause(exc)}. The files are "
                f"corrupt or need another ctranslate2; export the model again."
            ) from exc
        # Token strings are how CTranslate2's Python API takes and returns tokens; the export
        # made every vocabulary entry unique, so ids and strings map one to one.
        self.vocabulary: list[str] = vocabulary
        self.token_ids = {token: index for index, token in enumerate(vocabulary)}
        if len(self.token_ids) != len(vocabulary):
            raise ModelError(
                f"The vocabulary of the CTranslate2 export in {folder} repeats tokens, so token "
                f"ids cannot be read back; export the model again with this version."
            )
        self.eos_token_id = _single_id(generation.get("eos_token_id"), 1)
        self.pad_token_id = _single_id(generation.get("pad_token_id"), 0)
        self.tokenizer = tokenizer
        self.progress = progress
        self.model_dir = folder
        #: The compute type CTranslate2 runs the weights in.
        self.compute_type: str = self.translator.compute_type

    def summarize(self, dialogues: list[str], options: GenerationOptions) -> list[str]:
        """One summary per dialogue, in input order (greedy or beam search)."""
        return self._run(dialogues, options, None)

    def summarize_each(
        self, dialogues: list[str], options: GenerationOptions, on_summary: OnSummary
    ) -> list[str]:
        """Like :meth:`summarize`, calling ``on_summary(index, summary)`` as each summary is
        final: in greedy decoding a dialogue that ends early is reported before its batch is
        done; beam search reports a batch's summaries when it ends."""
        return self._run(dialogues, options, on_summary)

    def _run(
        self, texts: list[str], options: GenerationOptions, on_summary: OnSummary | None
    ) -> list[str]:
        if options.do_sample:
            raise ConfigError(
                "The ctranslate2 backend decodes deterministically (greedy or beam search); "
                "do_sample is not supported. Use backend='torch' for sampling."
            )
        if not texts:
            return []
        sources = self.encode(texts)
        decode = self.tokenizer.decode

        def run_batch(
            ids: list[list[int]],
            mask: list[list[int]],
            report: Callable[[int, str], None] | None = None,
        ) -> list[str]:
            rows = [
                [token for token, keep in zip(row, keep_row, strict=True) if keep]
                for row, keep_row in zip(ids, mask, strict=True)
            ]
            finished = None if report is None else (lambda row, tokens: report(row, decode(tokens)))
            return list(self.tokenizer.decode_batch(self.generate_ids(rows, options, finished)))

        return summarize_batches(
            sources,
            options.batch_size,
            self.pad_token_id,
            run_batch,
            progress=self.progress,
            on_summary=on_summary,
        )

    def encode(self, texts: list[str], *, warn: bool = True) -> list[list[int]]:
        """Prompted, truncated token ids of ``texts`` (truncation is logged when ``warn``)."""
        return encode_with_tokenizers(
            texts, self.tokenizer, self.eos_token_id, self.manifest.data, warn=warn
        )

    def generate_ids(
        self,
        sources: list[list[int]],
        options: GenerationOptions,
        on_finished: Finished | None = None,
    ) -> list[list[int]]:
        """Token ids for ``sources``, decoded as one batch, each ending with eos where found.

        ``on_finished(row, ids)`` is called for a row as soon as its ids are final (greedy
        decoding only; CTranslate2 streams no beam search).
        """
        callback = None
        if on_finished is not None and options.num_beams == 1:
            partial: list[list[int]] = [[] for _ in sources]

            def callback(step: Any) -> bool:
                partial[step.batch_id].append(step.token_id)
                if step.is_last:
                    on_finished(step.batch_id, partial[step.batch_id])
                return False  # never stop the batch

        results = self.translator.translate_batch(
            [[self.vocabulary[token] for token in row] for row in sources],
            beam_size=options.num_beams,
            patience=1.0 if options.early_stopping else BEAM_PATIENCE,
            length_penalty=options.length_penalty,
            repetition_penalty=options.repetition_penalty,
            no_repeat_ngram_size=options.no_repeat_ngram_size,
            max_decoding_length=options.max_new_tokens or self.manifest.data.max_target_length,
            # Both ban the end token until min_new_tokens tokens are out; 0 lets a summary end
            # at once, as in transformers, where CTranslate2's own default (1) would not.
            min_decoding_length=options.min_new_tokens,
            max_input_length=0,  # inputs are already cut to the model's max_source_length
            return_end_token=True,
            callback=callback,
        )
        return [[self.token_ids[token] for token in result.hypotheses[0]] for result in results]


def _single_id(value: Any, default: int) -> int:
    # generation_config.json may hold a list of ids (several eos tokens); T5 uses one.
    if isinstance(value, list):
        value = value[0] if value else None
    return default if value is None else int(value)
