"""The files of an ONNX export folder, as the exporter writes them and the predictor reads them.

The folder's manifest (``dialogsum.json``) carries an export record
(:class:`~dialogsum.modeling.ExportInfo`) naming the backend that serves it and the parity
results; its ``backend_data`` holds this backend's own fields: ``quantize``, ``weight_bits``
(an int8 export's: 7 since weights stopped using the full int8 range, absent before),
``prompt_tokens``
(the soft prompt baked into the encoder), ``cross_attention`` (``"item"``: the decoder's
cross-attention cache has one row per dialogue, shared by its beams) and, in a multi-adapter
export, ``adapters`` (their names, the modules with LoRA slots, each graph's slots); the
adapters' own files are in ``adapters/NAME/``.
"""

from __future__ import annotations

from typing import Any

#: The encoder, the first decoder step, and the decoder with past key values.
ONNX_FILES = ("encoder_model.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx")
#: Everything the onnxruntime backend reads from an export folder.
REQUIRED_FILES = (*ONNX_FILES, "tokenizer.json", "generation_config.json")
#: The largest magnitude of an int8 weight (base and LoRA): 7 bits, so that two uint8 x int8
#: products add up within int16 (255 x 63 x 2 = 32130). onnxruntime's uint8 x int8 kernel for
#: x86 CPUs without VNNI (AVX2 only, e.g. many AMD EPYC machines) adds them in 16 bits with
#: saturation: with full-range weights (127) rows came out wrong by thousands there.
WEIGHT_LEVELS = 63
#: The ``weight_bits`` an int8 export records since its weights are 7-bit.
WEIGHT_BITS = 7


def quantize_columns(matrix: Any) -> tuple[Any, Any]:
    """``matrix`` (inputs x outputs) as int8 within +-``WEIGHT_LEVELS`` and one float32 scale
    per column (an all-zero column keeps the scale 1): the export's weights and a LoRA
    adapter's ``A`` are quantized alike."""
    import numpy as np

    scale = np.abs(matrix).max(axis=0) / WEIGHT_LEVELS
    scale[scale == 0] = 1.0
    quantized = np.clip(np.round(matrix / scale), -WEIGHT_LEVELS, WEIGHT_LEVELS)
    return quantized.astype(np.int8), scale.astype(np.float32)


#: The per-row mask input shared by a graph's LoRA slots (see adapter_slots).
LORA_MASK = "lora_mask"


def slot_inputs(slot: str) -> tuple[str, str, str]:
    """The graph input names of a LoRA slot's ``A`` (int8), ``A``'s column scales and ``B``
    (int8), as adapter_slots writes them and the predictor feeds them."""
    return f"lora.{slot}.A", f"lora.{slot}.A_scale", f"lora.{slot}.B"
