"""The adapters a multi-adapter export serves, and what a batch of their rows feeds the graphs.

An :class:`AdapterSet` is immutable: loading or unloading an adapter makes a new one, which the
predictor swaps in at once, so a summary already running keeps the set it started with and never
sees a half-loaded adapter. For a batch, :meth:`AdapterSet.batch` lays the LoRA adapters its
rows use side by side (sorted by name) into each slot's ``A`` and ``B`` inputs, and gives each
row its mask and soft prompt (see :mod:`.adapter_slots` for the graph side).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dialogsum.backends.onnxruntime.adapter_files import AdapterWeights, read_adapter
from dialogsum.backends.onnxruntime.export_files import (
    LORA_MASK,
    WEIGHT_LEVELS,
    quantize_columns,
    slot_inputs,
)
from dialogsum.plugin_api import (
    AdapterInfo,
    ModelError,
    ModelManifest,
    UnknownAdapterError,
    same_base,
)

#: The multi-adapter export's folder of adapters, one sub-folder per adapter.
ADAPTERS_FOLDER = "adapters"
#: Combinations of adapters whose side-by-side matrices an adapter set keeps.
TABLES_KEPT = 16


@dataclass(frozen=True)
class ServedAdapter:
    """One adapter ready to feed: int8 LoRA blocks per slot (see :func:`quantize_lora`) or a
    soft prompt. The float32 matrices it was read from are not kept."""

    info: AdapterInfo
    #: slot -> (A int8: inputs x rank, A's column scales, B int8: rank x outputs).
    blocks: dict[str, tuple[Any, Any, Any]]
    #: The soft prompt (virtual tokens x model width), or None for LoRA.
    prompt: Any
    #: The LoRA rank (0 for a soft prompt).
    rank: int

    @classmethod
    def of(cls, weights: AdapterWeights) -> ServedAdapter:
        """``weights`` quantized for serving."""
        blocks = quantize_lora(weights.lora)
        size = sum(a.nbytes + s.nbytes + b.nbytes for a, s, b in blocks.values())
        if weights.prompt is not None:
            size += weights.prompt.nbytes
        # The record gives the memory the adapter takes as served (int8), not as read.
        info = weights.info.model_copy(update={"size_bytes": size})
        return cls(info=info, blocks=blocks, prompt=weights.prompt, rank=weights.rank)


def quantize_lora(lora: dict[str, tuple[Any, Any]]) -> dict[str, tuple[Any, Any, Any]]:
    """Each slot's ``(A, B)`` as int8 blocks computing ``x A B`` (see :mod:`.adapter_slots`).

    ``B``'s rows are divided by their largest magnitude, which multiplies ``A``'s columns
    instead (the product is unchanged), so ``B`` quantizes with one fixed scale that is the
    same for every adapter; ``A`` keeps a scale per column. Both scales travel with the
    adapter's own columns, so its result does not depend on which adapters sit beside it.

    Both are 7-bit (``WEIGHT_LEVELS``: full-range int8 saturates on CPUs without VNNI). The
    graph reads ``B`` with the scale 1/127 (``rowq_step``, in exports made before too), so
    ``B``'s rows, quantized to +-63, carry 127/63 too much, which ``A``'s columns take back.
    """
    import numpy as np

    levels = WEIGHT_LEVELS
    blocks = {}
    for slot, (down, up) in lora.items():
        row_max = np.abs(up).max(axis=1)
        row_max[row_max == 0] = 1.0
        up_int8 = np.clip(np.round(up / row_max[:, None] * levels), -levels, levels)
        up_int8 = up_int8.astype(np.int8)
        # B_int / 127 is (up / row_max) x levels / 127: A's columns take row_max x 127 / levels.
        folded = down * (row_max * (127.0 / levels))[None, :]
        down_int8, scale = quantize_columns(folded)
        blocks[slot] = (down_int8, scale, up_int8)
    return blocks


@dataclass(frozen=True)
class Layout:
    """What the graphs accept: every slot's (inputs, outputs) and the soft prompt's width."""

    slots: dict[str, tuple[int, int]]
    width: int
    #: The base model the export was made from (what an adapter must have been tuned from).
    base_model: str | None


@dataclass(frozen=True)
class BatchFeeds:
    """What one batch feeds the graphs, by row."""

    #: Input name -> array, for every slot's ``A``, ``A_scale`` and ``B``.
    lora: dict[str, Any]
    #: Each row's mask (rows x 1 x R).
    mask: Any
    #: Each row's soft prompt (P_i x width), or None.
    prompts: list[Any]


@dataclass(frozen=True)
class AdapterSet:
    """The adapters served beside the base; immutable (see the module docstring)."""

    layout: Layout
    adapters: dict[str, ServedAdapter] = field(default_factory=dict)
    #: Each slot's side-by-side matrices, by the LoRA adapters a batch uses (a server's
    #: batches reuse a few combinations; the set never changes, so neither do they).
    _tables: dict[tuple[str, ...], dict[str, Any]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def infos(self) -> dict[str, AdapterInfo]:
        """Every adapter's record, by name."""
        return {name: served.info for name, served in sorted(self.adapters.items())}

    def manifest(self, name: str | None, base: ModelManifest) -> ModelManifest:
        """The manifest a row of adapter ``name`` is encoded and decoded with."""
        return base if name is None else self.get(name).info.manifest

    def get(self, name: str) -> ServedAdapter:
        """Adapter ``name``, or an error listing the loaded ones."""
        found = self.adapters.get(name)
        if found is None:
            raise UnknownAdapterError(name, list(self.adapters))
        return found

    def with_adapter(self, name: str, source: Path) -> tuple[AdapterSet, AdapterInfo]:
        """A set with the adapter in ``source`` added as ``name`` (replacing one so named)."""
        weights = read_adapter(name, source)
        self._check(weights, source)
        served = ServedAdapter.of(weights)
        return AdapterSet(self.layout, {**self.adapters, name: served}), served.info

    def without(self, name: str) -> tuple[AdapterSet, AdapterInfo]:
        """A set without adapter ``name``."""
        removed = self.get(name)
        kept = {key: value for key, value in self.adapters.items() if key != name}
        return AdapterSet(self.layout, kept), removed.info

    def _check(self, weights: AdapterWeights, source: Path) -> None:
        layout, info = self.layout, weights.info
        if (
            layout.base_model
            and info.base_model
            and not same_base(info.base_model, layout.base_model)
        ):
            raise ModelError(
                f"The adapter in {source} was tuned from {info.base_model}, and this export "
                f"serves {layout.base_model}: an adapter only works on its own base model. "
                f"Serve it with an export of {info.base_model}."
            )
        unknown = sorted(set(weights.lora) - set(layout.slots))
        if unknown:
            modules = sorted({slot.rsplit(".", 1)[1] for slot in unknown})
            served = sorted({slot.rsplit(".", 1)[1] for slot in layout.slots}) or ["none"]
            raise ModelError(
                f"The adapter in {source} adapts {', '.join(modules)}, which this export has no "
                f"slots for (it adapts {', '.join(served)}). Export the base again with "
                f"--option lora_modules={','.join(sorted(set(served) | set(modules)))}."
            )
        for slot, (down, up) in weights.lora.items():
            if (down.shape[0], up.shape[1]) != layout.slots[slot]:
                raise ModelError(
                    f"The adapter in {source} does not fit this export's model: {slot} is "
                    f"{down.shape[0]}x{up.shape[1]} there and {layout.slots[slot]} here."
                )
        prompt = weights.prompt
        if prompt is not None and (layout.width == 0 or prompt.shape[1] != layout.width):
            raise ModelError(
                f"The soft prompt in {source} is {prompt.shape[1]} wide; this export's "
                f"model is {layout.width} wide (or takes no soft prompts)."
            )

    def batch(self, rows: list[str | None]) -> BatchFeeds:
        """The feeds of a batch whose row ``i`` uses adapter ``rows[i]`` (None: the base)."""
        import numpy as np

        used = sorted({name for name in rows if name is not None and self.get(name).blocks})
        starts: dict[str, int] = {}
        total = 0
        for name in used:
            starts[name] = total
            total += self.adapters[name].rank
        width = max(total, 1)  # no LoRA row: one zero column keeps every shape valid
        lora = self._tables.get(tuple(used))
        if lora is None:
            lora = self._side_by_side(used, starts, width)
            if len(self._tables) >= TABLES_KEPT:
                self._tables.pop(next(iter(self._tables)))
            self._tables[tuple(used)] = lora
        mask = np.zeros((len(rows), 1, width), np.float32)
        prompts: list[Any] = []
        for row, chosen in enumerate(rows):
            served = None if chosen is None else self.adapters[chosen]
            if served is not None and chosen in starts:
                mask[row, 0, starts[chosen] : starts[chosen] + served.rank] = 1.0
            prompts.append(None if served is None else served.prompt)
        return BatchFeeds(lora=lora, mask=mask, prompts=prompts)

    def _side_by_side(self, used: list[str], starts: dict[str, int], width: int) -> dict[str, Any]:
        """Each slot's ``A``, ``A_scale`` and ``B`` with the ``used`` adapters' columns."""
        import numpy as np

        lora: dict[str, Any] = {}
        for slot, (inputs, outputs) in self.layout.slots.items():
            down = np.zeros((inputs, width), np.int8)
            scale = np.ones(width, np.float32)
            up = np.zeros((width, outputs), np.int8)
            for name in used:
                block = self.adapters[name].blocks.get(slot)
                if block is None:  # this adapter leaves the slot alone: its columns stay 0
                    continue
                begin = starts[name]
                end = begin + block[0].shape[1]
                down[:, begin:end], scale[begin:end], up[begin:end] = block
            names = slot_inputs(slot)
            lora.update(zip(names, (down, scale, up), strict=True))
        return lora


def lora_feeds(
    session_inputs: set[str], feeds: BatchFeeds, rows: Any | None = None
) -> dict[str, Any]:
    """The LoRA inputs one session takes, its mask cut to ``rows`` (indices) when given."""
    chosen = {name: value for name, value in feeds.lora.items() if name in session_inputs}
    if LORA_MASK in session_inputs:
        chosen[LORA_MASK] = feeds.mask if rows is None else feeds.mask[rows]
    return chosen
