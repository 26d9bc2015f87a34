"""Reading a LoRA or prompt-tuning adapter for unmerged serving, with numpy alone.

An adapter is read from the folder a tuning run saved (peft's ``adapter_config.json`` and
``adapter_model.safetensors``, with dialogsum's ``dialogsum.json`` beside them), given as the run
folder, its ``model`` folder, or an adapter folder of a multi-adapter export (the same files).
No torch, peft or safetensors package is needed: the safetensors format is a JSON header and raw
little-endian arrays, read here.

A LoRA adapter becomes, for each adapted linear module ("slot", e.g.
``encoder.block.0.layer.0.SelfAttention.q``), the matrices ``A`` (inputs x rank) and ``B`` (rank x
outputs) with peft's scaling folded into ``B``: the module then computes ``x W + (x A) B``, which
is what peft computes unmerged. A prompt-tuning adapter becomes its soft prompt (tokens x model
width), the rows peft prepends to the encoder's input embeddings.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dialogsum.plugin_api import AdapterInfo, ModelError, clause, read_manifest

#: The files of a saved adapter.
CONFIG, WEIGHTS = "adapter_config.json", "adapter_model.safetensors"

#: peft's prefix of every weight name, and the parts of a LoRA weight name after the module.
_PREFIX = "base_model.model."
_LORA_A, _LORA_B = ".lora_A.weight", ".lora_B.weight"

_DTYPES = {"F32": "<f4", "F16": "<f2", "BF16": "<u2", "F64": "<f8"}


def read_safetensors(path: Path) -> dict[str, Any]:
    """Every tensor of a safetensors file as a float32 numpy array (F32, F16, BF16, F64)."""
    import numpy as np

    data = path.read_bytes()
    if len(data) < 8:
        raise ModelError(f"{path} is not a safetensors file (it is {len(data)} bytes long).")
    size = int.from_bytes(data[:8], "little")
    try:
        header = json.loads(data[8 : 8 + size])
    except ValueError as exc:
        raise ModelError(f"{path} is not a safetensors file: its header is corrupt.") from exc
    body = memoryview(data)[8 + size :]
    arrays: dict[str, Any] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(entry.get("dtype"))
        begin, end = entry.get("data_offsets", (0, -1))
        shape = [int(d) for d in entry.get("shape", [])]
        if dtype is None:
            raise ModelError(
                f"{path}: tensor {name} is {entry.get('dtype')}; adapters are read in F32, "
                f"F16 or BF16."
            )
        raw = np.frombuffer(body[begin:end], dtype=dtype)
        if end > len(body) or raw.size != math.prod(shape):
            raise ModelError(f"{path} is truncated or corrupt (tensor {name}).")
        if entry["dtype"] == "BF16":  # bfloat16 is the top half of a float32
            raw = (raw.astype(np.uint32) << 16).view(np.float32)
        arrays[name] = raw.astype(np.float32).reshape(shape)
    return arrays


@dataclass(frozen=True)
class AdapterWeights:
    """One adapter as served: LoRA matrices per slot, or a soft prompt, and its record."""

    info: AdapterInfo
    #: slot -> (A: inputs x rank, B: rank x outputs, scaling folded in); empty for a prompt.
    lora: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    #: The soft prompt (virtual tokens x model width), or None for LoRA.
    prompt: Any = None

    @property
    def rank(self) -> int:
        """The LoRA rank (0 for a soft prompt)."""
        return next((a.shape[1] for a, _ in self.lora.values()), 0)


def adapter_folder(source: Path) -> Path:
    """The folder holding the adapter's files: ``source`` itself or its ``model`` folder."""
    for folder in (source, source / "model"):
        if (folder / CONFIG).is_file():
            return folder
    if not source.exists():
        raise ModelError(f"No adapter at {source}: the path does not exist.")
    raise ModelError(
        f"{source} holds no adapter ({CONFIG} and {WEIGHTS}): give a LoRA or prompt-tuning run "
        f"(its folder or its model folder), or an adapter folder of a multi-adapter export."
    )


def read_adapter(name: str, source: Path) -> AdapterWeights:
    """Read the adapter in ``source`` to serve as ``name`` (see the module docstring)."""
    folder = adapter_folder(source)
    try:
        config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{folder / CONFIG} is unreadable or corrupt: {clause(exc)}.") from exc
    if not (folder / WEIGHTS).is_file():
        raise ModelError(f"{folder} has {CONFIG} but no {WEIGHTS}; save the adapter again.")
    manifest = read_manifest(folder)
    weights = read_safetensors(folder / WEIGHTS)
    kind = str(config.get("peft_type", "")).upper()
    details: dict[str, Any] = {}
    if kind == "LORA":
        lora = _lora_slots(folder, config, weights)
        rank = next(iter(lora.values()))[0].shape[1]
        details = {"rank": rank, "modules": sorted({slot.rsplit(".", 1)[1] for slot in lora})}
        prompt = None
    elif kind == "PROMPT_TUNING":
        prompt = _soft_prompt(folder, config, weights)
        lora = {}
        details = {"prompt_tokens": int(prompt.shape[0])}
    else:
        raise ModelError(
            f"{folder} holds a {kind or 'unknown'} adapter; unmerged serving takes LoRA and "
            f"prompt tuning. Merge it instead: dialogsum export --model {source} (one folder "
            f"per model)."
        )
    size = sum(a.nbytes + b.nbytes for a, b in lora.values()) + (
        0 if prompt is None else prompt.nbytes
    )
    info = AdapterInfo(
        name=name,
        method=manifest.method or kind.lower(),
        base_model=manifest.base_model or config.get("base_model_name_or_path"),
        manifest=manifest,
        size_bytes=size,
        source=str(source),
        details=details,
    )
    return AdapterWeights(info=info, lora=lora, prompt=prompt)


def _lora_slots(folder: Path, config: dict[str, Any], weights: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    if config.get("modules_to_save") or config.get("bias", "none") != "none":
        raise ModelError(
            f"The LoRA adapter in {folder} also trains other weights (modules_to_save or "
            f"biases), which unmerged serving does not carry; merge and export it alone "
            f"(dialogsum export --model {folder})."
        )
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise ModelError(
            f"The LoRA adapter in {folder} uses per-module ranks (rank_pattern/alpha_pattern); "
            f"merge and export it alone (dialogsum export --model {folder})."
        )
    rank = int(config["r"])
    alpha = float(config.get("lora_alpha", rank))
    scaling = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    slots: dict[str, tuple[Any, Any]] = {}
    for key, value in weights.items():
        if not key.endswith(_LORA_A):
            if not key.endswith(_LORA_B):
                raise ModelError(
                    f"The LoRA adapter in {folder} holds {key}, which is no LoRA matrix; merge "
                    f"and export it alone (dialogsum export --model {folder})."
                )
            continue
        module = key[: -len(_LORA_A)]
        down, up = value, weights.get(module + _LORA_B)
        if up is None or down.shape[0] != rank or up.shape[1] != rank:
            raise ModelError(f"The LoRA adapter in {folder} is corrupt around {module}.")
        slot = module.removeprefix(_PREFIX)
        slots[slot] = (
            np.ascontiguousarray(down.T),
            np.ascontiguousarray(up.T * np.float32(scaling)),
        )
    if not slots:
        raise ModelError(f"The LoRA adapter in {folder} holds no LoRA matrices.")
    return slots


def _soft_prompt(folder: Path, config: dict[str, Any], weights: dict[str, Any]) -> Any:
    import numpy as np

    table = weights.get("prompt_embeddings")
    length = int(config.get("num_virtual_tokens", 0))
    if table is None or length <= 0 or table.shape[0] < length:
        raise ModelError(f"The prompt-tuning adapter in {folder} is corrupt (prompt_embeddings).")
    # peft keeps one prompt per transformer stack; an encoder-decoder prepends the first
    # num_virtual_tokens rows to the encoder's inputs and nothing to the decoder's.
    return np.ascontiguousarray(table[:length])
