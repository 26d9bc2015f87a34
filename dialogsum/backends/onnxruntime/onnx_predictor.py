"""Serve an ONNX export with onnxruntime, tokenizers and numpy alone.

Nothing here imports torch, transformers, peft or optimum, so a serving image needs only
``pip install 'dialogsum[cpu-serve]'``. Decoding (greedy or beam search, in
:mod:`.decoding`) runs over three sessions: the encoder (which, for a prompt-tuned
model, prepends the baked soft prompt and returns the widened attention mask), the first decoder
step, and the decoder with past key values for every later step.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from dialogsum.backends.onnxruntime.adapter_tables import (
    ADAPTERS_FOLDER,
    AdapterSet,
    BatchFeeds,
    Layout,
    lora_feeds,
)
from dialogsum.backends.onnxruntime.continuous import OnnxContinuous
from dialogsum.backends.onnxruntime.cpu_features import int8_pairs_saturate
from dialogsum.backends.onnxruntime.decoding import (
    Advance,
    BeamSearch,
    Finished,
    GreedySearch,
    Progress,
    Search,
    check_supported,
)
from dialogsum.backends.onnxruntime.export_files import ONNX_FILES, REQUIRED_FILES
from dialogsum.backends.onnxruntime.lanes import Item, Lane
from dialogsum.backends.onnxruntime.step_slots import (
    CROSS_ATTENTION_TAIL,
    PositionBias,
    add_top_log_probs,
    slot_self_attention,
)
from dialogsum.backends.onnxruntime.top_log_probs import TopLogProbsSession
from dialogsum.plugin_api import (
    AdapterInfo,
    ContinuousDecoder,
    ContinuousSettings,
    GenerationOptions,
    ModelError,
    ModelManifest,
    OnSummary,
    Predictor,
    UnknownAdapterError,
    clause,
    encode_with_tokenizers,
    read_manifest,
    rows_by_adapter,
    summarize_batches,
)

#: The decoder with past, which the predictor runs rewritten (see step_slots).
SLOTTED_FILE = ONNX_FILES[2]

#: Padding an encoder group may add, as a share of its real tokens (see ``length_groups``).
GROUP_PADDING = 0.1

logger = logging.getLogger(__name__)


def length_groups(lengths: list[int]) -> list[list[int]]:
    """Row indices grouped by similar length, longest first, so that padding each group to
    its longest row adds at most ``GROUP_PADDING`` of its real tokens."""
    order = sorted(range(len(lengths)), key=lambda row: lengths[row], reverse=True)
    groups: list[list[int]] = []
    real = 0
    for row in order:
        if groups and (len(groups[-1]) + 1) * lengths[groups[-1][0]] <= (1 + GROUP_PADDING) * (
            real + lengths[row]
        ):
            groups[-1].append(row)
            real += lengths[row]
        else:
            groups.append([row])
            real = lengths[row]
    return groups


class OnnxPredictor(Predictor):
    """Summarization (greedy or beam search) with onnxruntime over an export folder."""

    samples = False

    def __init__(
        self,
        model_dir: str | Path,
        *,
        threads: int | None = None,
        graph_optimization: str = "all",
        progress: bool = True,
    ) -> None:
        import onnx
        import onnxruntime as ort
        from tokenizers import Tokenizer

        folder = Path(model_dir).expanduser()
        if not folder.is_dir():
            raise ModelError(
                f"No ONNX export folder at {folder}. The onnxruntime backend serves what "
                f"export wrote: dialogsum export --model MODEL --output DIR "
                f"(Summarizer.export(DIR)), then load DIR."
            )
        self.manifest: ModelManifest = read_manifest(folder)
        export = self.manifest.export
        if export is None or export.backend != "onnxruntime":
            what = "has no export record" if export is None else f"names {export.backend}"
            raise ModelError(
                f"{folder} is not an ONNX export (its dialogsum.json {what}). Export it first: "
                f"dialogsum export --model MODEL --backend onnxruntime --output DIR."
            )
        if export.backend_data.get("cross_attention") != "item":
            # Exports written before the decoder shared its cross-attention cache among beams
            # (dialogsum 0.1) hold one per beam; that layout is no longer served.
            raise ModelError(
                f"The ONNX export in {folder} was written by an older dialogsum, with one "
                f"cross-attention cache per beam, which this version no longer serves. Export "
                f"it again from its source model"
                + (f" ({export.source_model})" if export.source_model else "")
                + ": dialogsum export --model SOURCE --output DIR --overwrite."
            )
        #: Positions a baked soft prompt adds before every dialogue (a prompt-tuned export).
        self.prompt_tokens = int(export.backend_data.get("prompt_tokens", 0))
        data = export.backend_data
        if data.get("quantize") == "int8" and "weight_bits" not in data and int8_pairs_saturate():
            logger.warning(
                "The int8 export in %s has full-range int8 weights, which onnxruntime's int8 "
                "kernel saturates on this CPU (x86 without VNNI): its summaries here differ from "
                "what its parity gate checked, and are worse. Export it again with this dialogsum "
                "(7-bit weights, exact on every CPU): dialogsum export --model %s --output %s "
                "--quantize int8 --overwrite.",
                folder,
                export.source_model or "SOURCE",
                folder,
            )
        missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
        if missing:
            raise ModelError(
                f"The ONNX export in {folder} is incomplete: {', '.join(missing)} missing. "
                f"Export it again (dialogsum export ... --overwrite)."
            )
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        options.graph_optimization_level = {
            "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[graph_optimization]
        # Denormal floats are far slower on x86 CPUs and change no summary.
        options.add_session_config_entry("session.set_denormal_as_zero", "1")
        # onnxruntime's memory arena keeps the largest of every shape it has seen; under
        # continuous batching the shapes keep changing, and a service's memory rose by a
        # sixth after its first few hundred requests (benchmarks.md, the soak). Without it,
        # memory stays level, at no measured cost in speed.
        options.enable_cpu_mem_arena = False
        # Each of the three sessions has its own thread pool, and a pool's threads spin for a
        # while after its run returns, looking for more work. Decoding alternates between the
        # sessions, so the idle pools' spinning took cores from the busy one (measured in
        # docs/benchmarks.md). Spinning now stops when a run returns; within a run it stays
        # on, where it pays.
        options.add_session_config_entry("session.force_spinning_stop", "1")
        sessions = []
        table = None
        for name in ONNX_FILES:
            try:
                source: Any = str(folder / name)
                if name == SLOTTED_FILE:
                    # Every later step runs with per-row cache positions (see step_slots).
                    model = onnx.load(source)
                    table = slot_self_attention(model)
                    add_top_log_probs(model)
                    source = model.SerializeToString()
                sessions.append(
                    ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
                )
            except ModelError:
                raise
            except Exception as exc:
                raise ModelError(
                    f"onnxruntime could not load {folder / name}: {clause(exc)}. The file is "
                    f"corrupt or was written for another onnxruntime; export the model again."
                ) from exc
        self.encoder, self.decoder, self.slotted = sessions
        self.slotted_outputs = [o.name for o in self.slotted.get_outputs()]
        self.position_bias = PositionBias(table, _max_distance(folder))
        self.top = TopLogProbsSession(options)
        try:
            generation = json.loads((folder / "generation_config.json").read_text(encoding="utf-8"))
            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as exc:  # tokenizers raises a bare Exception on a corrupt file
            raise ModelError(
                f"The export in {folder} has a corrupt generation_config.json or tokenizer.json "
                f"({exc}); export the model again."
            ) from exc
        self.eos_token_id = _single_id(generation.get("eos_token_id"), 1)
        self.pad_token_id = _single_id(generation.get("pad_token_id"), 0)
        self.start_token_id = _single_id(
            generation.get("decoder_start_token_id"), self.pad_token_id
        )
        self.tokenizer = tokenizer
        self.progress = progress
        self.model_dir = folder
        self._present_names = [
            o.name for o in self.decoder.get_outputs() if o.name.startswith("present.")
        ]
        self._inputs = {id(session): {i.name for i in session.get_inputs()} for session in sessions}
        # A multi-adapter export: adapters served unmerged beside the base, swapped atomically.
        self._swap = threading.Lock()
        self._adapter_set: AdapterSet | None = None
        self.adapter_layout: Layout | None = None
        section = export.backend_data.get("adapters")
        if section is not None:
            self.adapter_layout = _layout(sessions, export.source_model)
            adapter_set = AdapterSet(self.adapter_layout)
            for name in section.get("names", []):
                adapter_set, _ = adapter_set.with_adapter(name, folder / ADAPTERS_FOLDER / name)
            self._adapter_set = adapter_set
        self._adapter_width = 0 if self._adapter_set is None else self._adapter_set.layout.width

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Each text's token ids with the export's tokenizer."""
        return [encoding.ids for encoding in self.tokenizer.encode_batch(texts)]

    def summarize(self, dialogues: list[str], options: GenerationOptions) -> list[str]:
        """One summary per dialogue, in input order (greedy or beam search)."""
        return self.summarize_rows(dialogues, [options.adapter] * len(dialogues), options)

    def summarize_each(
        self, dialogues: list[str], options: GenerationOptions, on_summary: OnSummary
    ) -> list[str]:
        """Like :meth:`summarize`, calling ``on_summary(index, summary)`` as each summary is
        final: a dialogue whose search ends early is reported before its batch is done."""
        adapters = [options.adapter] * len(dialogues)
        return self.summarize_rows(dialogues, adapters, options, on_summary)

    def adapters(self) -> dict[str, AdapterInfo]:
        """The adapters served beside the base (a multi-adapter export's), by name."""
        return {} if self._adapter_set is None else self._adapter_set.infos()

    def load_adapter(self, name: str, source: Path) -> AdapterInfo:
        """Serve the adapter in ``source`` as ``name``; atomic (see :class:`AdapterSet`)."""
        if self._adapter_set is None:
            return super().load_adapter(name, source)
        with self._swap:  # two loads at once must not lose one another's adapter
            self._adapter_set, info = self._adapter_set.with_adapter(name, source)
        return info

    def unload_adapter(self, name: str) -> AdapterInfo:
        """Stop serving adapter ``name``; summaries running with it finish."""
        if self._adapter_set is None:
            return super().unload_adapter(name)
        with self._swap:
            self._adapter_set, info = self._adapter_set.without(name)
        return info

    def summarize_rows(
        self,
        dialogues: list[str],
        adapters: list[str | None],
        options: GenerationOptions,
        on_summary: OnSummary | None = None,
        on_partial: OnSummary | None = None,
    ) -> list[str]:
        """Rows of any adapters in shared batches: each row's summary is the one it gets alone
        (the adapters' branch is batch-invariant, see adapter_slots)."""
        check_supported(options)
        if not dialogues:
            return []
        served = self._adapter_set  # this call's adapters, whatever loads meanwhile
        groups = rows_by_adapter(adapters)
        # An unknown name fails before any work.
        manifests = {name: self._manifest(name, served) for name in groups}
        sources: list[list[int]] = [[] for _ in dialogues]
        limits: dict[int, list[int]] = {}
        for name, rows in groups.items():
            manifest = manifests[name]
            encoded = encode_with_tokenizers(
                [dialogues[row] for row in rows], self.tokenizer, self.eos_token_id, manifest.data
            )
            limit = options.max_new_tokens or manifest.data.max_target_length
            for row, source in zip(rows, encoded, strict=True):
                sources[row] = source
                limits.setdefault(limit, []).append(row)
        summaries: list[str] = [""] * len(dialogues)
        for limit, rows in limits.items():  # rows with one length limit decode together
            chosen = options.model_copy(update={"max_new_tokens": limit})
            texts = self._run(
                [sources[row] for row in rows],
                [adapters[row] for row in rows],
                chosen,
                _mapped(on_summary, rows),
                _mapped(on_partial, rows),
                served,
            )
            for row, text in zip(rows, texts, strict=True):
                summaries[row] = text
        return summaries

    def _run(
        self,
        sources: list[list[int]],
        adapters: list[str | None],
        options: GenerationOptions,
        on_summary: OnSummary | None,
        on_partial: OnSummary | None,
        served: AdapterSet | None,
    ) -> list[str]:
        decode = self.tokenizer.decode

        def run_batch(
            ids: list[list[int]],
            mask: list[list[int]],
            report: Callable[[int, str], None] | None = None,
            *,
            rows: list[int],
        ) -> list[str]:
            finished = None if report is None else (lambda row, tokens: report(row, decode(tokens)))
            progress = None
            if on_partial is not None:

                def progress(position: int, tokens: list[int]) -> None:
                    on_partial(rows[position], decode(tokens))

            generated = self.generate_ids(
                ids, mask, options, finished, [adapters[row] for row in rows], progress, served
            )
            return list(self.tokenizer.decode_batch(generated))

        return summarize_batches(
            sources,
            options.batch_size,
            self.pad_token_id,
            run_batch,
            progress=self.progress,
            on_summary=on_summary,
            with_rows=True,
        )

    def continuous_decoder(self, settings: ContinuousSettings) -> ContinuousDecoder:
        """Continuous batching over this export (see :mod:`.continuous`)."""
        return OnnxContinuous(self, settings)

    def encode(
        self, texts: list[str], *, warn: bool = True, adapter: str | None = None
    ) -> list[list[int]]:
        """Prompted, truncated token ids of ``texts`` (truncation is logged when ``warn``), with
        adapter ``adapter``'s prompt and lengths when given."""
        manifest = self._manifest(adapter, self._adapter_set)
        return encode_with_tokenizers(
            texts, self.tokenizer, self.eos_token_id, manifest.data, warn=warn
        )

    def _manifest(self, adapter: str | None, served: AdapterSet | None) -> ModelManifest:
        """The manifest rows of ``adapter`` (None: the base) are encoded and decoded with."""
        if adapter is not None and served is None:
            raise UnknownAdapterError(adapter, [])
        return self.manifest if served is None else served.manifest(adapter, self.manifest)

    def _encode_batch(
        self, ids: list[list[int]], mask: list[list[int]], feeds: BatchFeeds | None = None
    ) -> tuple[Any, Any]:
        """Encoder outputs and encoder mask of a right-padded batch, padded to its width.

        Rows run through the encoder in groups of similar length, each padded only to its own
        longest row: the encoder is compute-bound, so a batch gains nothing from running as
        one, and padding short rows to the longest cost up to twice the work on mixed
        lengths. Masked positions weigh nothing in the decoder, so the result is the same.
        With adapters (``feeds``), a prompt-tuned row's soft prompt takes its first positions.
        """
        import numpy as np

        prompts = feeds.prompts if feeds is not None else [None] * len(ids)
        lengths = [sum(row) for row in mask]
        extra = [0 if prompt is None else int(prompt.shape[0]) for prompt in prompts]
        total = [length + more for length, more in zip(lengths, extra, strict=True)]
        width = max(total)
        hidden: Any = None
        encoder_mask = np.zeros((len(ids), width), dtype=np.int64)
        for group in length_groups(total):
            used = max(total[row] for row in group)
            rows = [[self.pad_token_id] * extra[row] + ids[row][: lengths[row]] for row in group]
            part_ids = np.full((len(group), used), self.pad_token_id, dtype=np.int64)
            part_mask = np.zeros((len(group), used), dtype=np.int64)
            for position, row in enumerate(rows):
                part_ids[position, : len(row)] = row
                part_mask[position, : len(row)] = 1
            inputs: dict[str, Any] = {"input_ids": part_ids, "attention_mask": part_mask}
            if feeds is not None:
                inputs.update(self._prompt_feeds([prompts[row] for row in group]))
                inputs.update(lora_feeds(self._inputs[id(self.encoder)], feeds, group))
            outputs = self.encoder.run(None, inputs)
            # A prompt-tuned single export's encoder returns the mask widened by its baked soft
            # prompt (prepended) as its second output.
            group_mask = outputs[1] if len(outputs) > 1 else part_mask
            if hidden is None:
                baked = group_mask.shape[1] - used  # a baked soft prompt's positions, if any
                hidden = np.zeros(
                    (len(ids), width + baked, outputs[0].shape[2]), dtype=outputs[0].dtype
                )
                encoder_mask = np.zeros((len(ids), width + baked), dtype=group_mask.dtype)
            hidden[group, : group_mask.shape[1]] = outputs[0]
            encoder_mask[group, : group_mask.shape[1]] = group_mask
        return hidden, encoder_mask

    def _prompt_feeds(self, prompts: list[Any]) -> dict[str, Any]:
        """The adapter encoder's soft prompts (rows x longest x width) and their lengths."""
        import numpy as np

        longest = max([1, *(p.shape[0] for p in prompts if p is not None)])
        width = self._adapter_width
        soft = np.zeros((len(prompts), longest, width), dtype=np.float32)
        lengths = np.zeros(len(prompts), dtype=np.int64)
        for row, prompt in enumerate(prompts):
            if prompt is not None:
                soft[row, : prompt.shape[0]] = prompt
                lengths[row] = prompt.shape[0]
        return {"soft_prompt": soft, "prompt_lengths": lengths}

    def first_step_logits(
        self, ids: list[list[int]], mask: list[list[int]], adapters: list[str | None] | None = None
    ) -> Any:
        """Logits of the first decoder step (for parity checks against PyTorch)."""
        return self.step_logits(ids, mask, [[] for _ in ids], adapters)[:, 0]

    def step_logits(
        self,
        ids: list[list[int]],
        mask: list[list[int]],
        tokens: Any,
        adapters: list[str | None] | None = None,
    ) -> Any:
        """Logits (rows x steps x vocabulary) of decoding ``tokens`` (rows x steps - 1) forced.

        The first step's logits, then each later step's given the forced tokens so far: what
        the parity gate compares alone and in a batch, step by step.
        """
        import numpy as np

        forced = _Forced(np.asarray(tokens, dtype=np.int64).reshape(len(ids), -1))
        lane = Lane(self, 1)
        lane.join(self._items(ids, mask, adapters, None), forced)
        while lane.rows:
            lane.step()
        return np.stack(forced.logits, axis=1)

    def generate_ids(
        self,
        ids: list[list[int]],
        mask: list[list[int]],
        options: GenerationOptions,
        on_finished: Finished | None = None,
        adapters: list[str | None] | None = None,
        on_progress: Progress | None = None,
        served: AdapterSet | None = None,
    ) -> list[list[int]]:
        """Token ids for one padded batch (greedy or beam search), each cut after its eos.

        ``on_finished(row, ids)`` is called for a row as soon as its ids are final;
        ``on_progress(row, ids)`` (greedy) with each unfinished row's ids after every step.
        ``adapters[row]`` names the adapter of each row (None: the base), from ``served``
        (default: the adapters loaded now)."""
        results: dict[int, list[int]] = {}

        def done(row: int, tokens: list[int]) -> None:
            results[row] = tokens
            if on_finished is not None:
                on_finished(row, tokens)

        items = self._items(ids, mask, adapters, served, done, on_progress)
        lane = Lane(self, options.num_beams)
        lane.join(items, self.search(len(items), options))
        while lane.rows:
            lane.step()
        return [results[row] for row in range(len(ids))]

    def search(self, items: int, options: GenerationOptions) -> Search:
        """A fresh greedy or beam search over ``items`` items with ``options``."""
        limit = options.max_new_tokens or self.manifest.data.max_target_length
        start, eos = self.start_token_id, self.eos_token_id
        if options.num_beams > 1:
            return BeamSearch(items, limit, options, start, eos, self.pad_token_id, self.top)
        return GreedySearch(items, limit, options, start, eos)

    def _items(
        self,
        ids: list[list[int]],
        mask: list[list[int]],
        adapters: list[str | None] | None,
        served: AdapterSet | None,
        done: Finished | None = None,
        progress: Progress | None = None,
    ) -> list[Item]:
        """Items for the rows of a padded batch; ``done``/``progress`` hear them by row."""
        chosen = served or self._adapter_set
        names = list(adapters) if adapters is not None else [None] * len(ids)
        items = []
        for row, (source, marks, name) in enumerate(zip(ids, mask, names, strict=True)):
            if name is not None and chosen is None:
                self._manifest(name, None)  # fails: no adapters here
            items.append(
                Item(
                    source[: sum(marks)],
                    partial(_call, done, row),
                    name,
                    None if name is None or chosen is None else chosen.get(name),
                    None if progress is None else partial(_call, progress, row),
                )
            )
        return items

    def first_step(
        self, hidden: Any, encoder_mask: Any, feeds: BatchFeeds | None
    ) -> tuple[Any, dict[str, Any], dict[str, Any], Any]:
        """The first decoder step of an encoded batch: last-position logits, the self- and
        cross-attention caches, and the encoder mask as padded for decoding."""
        import numpy as np

        # Masked positions after every row's encoder output make decoding batch-invariant:
        # onnxruntime's CPU kernels sum the cross-attention of a sequence's last few
        # positions in a tail loop, in another order than the vectorised body. Alone, a row's
        # own last tokens fall in that tail; in a batch padded to a longer row they do not, so
        # its later steps differed by float rounding (enough to flip a near-tie, in fp32 and
        # int8). With CROSS_ATTENTION_TAIL masked positions at the end, every real position
        # is summed in the body at any padded length, and each step's logits are bit-identical
        # alone and in any batch. Masked positions weigh exactly 0, so nothing else changes.
        hidden = np.pad(hidden, ((0, 0), (0, CROSS_ATTENTION_TAIL), (0, 0)))
        encoder_mask = np.pad(encoder_mask, ((0, 0), (0, CROSS_ATTENTION_TAIL)))
        inputs = {
            "input_ids": np.full((len(hidden), 1), self.start_token_id, dtype=np.int64),
            "encoder_attention_mask": encoder_mask,
            "encoder_hidden_states": hidden,
        }
        if feeds is not None:
            inputs.update(lora_feeds(self._inputs[id(self.decoder)], feeds))
        outputs = self.decoder.run(None, inputs)
        named = dict(zip(["logits", *self._present_names], outputs, strict=True))
        # Cross-attention keys and values never change after the first step: they are kept.
        caches: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
        for name, value in named.items():
            if name != "logits":
                past = name.replace("present.", "past_key_values.")
                caches[".encoder." in name][past] = value
        return named["logits"][:, -1], caches[0], caches[1], encoder_mask


class _Forced:
    """A search that feeds given tokens and keeps every step's logits (parity checks)."""

    beams = 1

    def __init__(self, tokens: Any) -> None:
        import numpy as np

        self.tokens = tokens
        self.logits: list[Any] = []
        self.ids = np.arange(len(tokens))

    @property
    def rows(self) -> int:
        return len(self.ids)

    def advance(self, logits: Any, ready: Any = None) -> Advance:
        import numpy as np

        self.logits.append(np.array(logits))
        step = len(self.logits) - 1
        if step == self.tokens.shape[1]:
            finished: list[tuple[int, list[int]]] = [(int(row), []) for row in self.ids]
            self.ids = self.ids[:0]
            return Advance(self.ids, self.ids, self.ids, True, finished)
        return Advance(self.ids, self.tokens[:, step], self.ids, False, [])

    def partial(self) -> list[tuple[int, list[int]]]:
        return []


def _call(report: Callable[[int, list[int]], None] | None, row: int, tokens: list[int]) -> None:
    if report is not None:
        report(row, tokens)


def _max_distance(folder: Path) -> int:
    """The export's ``relative_attention_max_distance`` (T5's default when not written)."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    return int(config.get("relative_attention_max_distance", 128))


def _layout(sessions: list[Any], base_model: str | None) -> Layout:
    """What a multi-adapter export's graphs accept: each LoRA slot's shape, the prompt width."""
    slots: dict[str, tuple[int, int]] = {}
    width = 0
    for session in sessions:
        shapes = {i.name: i.shape for i in session.get_inputs()}
        for name, shape in shapes.items():
            if name.startswith("lora.") and name.endswith(".A"):
                slot = name[len("lora.") : -len(".A")]
                slots[slot] = (int(shape[0]), int(shapes[f"lora.{slot}.B"][1]))
        if "soft_prompt" in shapes:
            width = int(shapes["soft_prompt"][2])
    return Layout(slots=slots, width=width, base_model=base_model)


def _mapped(report: OnSummary | None, rows: list[int]) -> OnSummary | None:
    """``report`` called with the original row of a position in ``rows``."""
    if report is None:
        return None
    return lambda position, text: report(rows[position], text)


def _single_id(value: Any, default: int) -> int:
    # generation_config.json may hold a list of ids (e.g. several eos tokens); T5 uses one.
    if isinstance(value, list):
        value = value[0] if value else None
    return default if value is None else int(value)
