"""Export a tuned model to a self-contained CTranslate2 folder for CPU serving.

LoRA and other mergeable adapters are folded into the base weights, the plain model is
converted with CTranslate2's own converter, and the tokenizer and generation config are written
beside it, so the folder serves with ctranslate2 and tokenizers alone. A prompt-tuned model is
refused: its soft prompt is an input, not a weight, and a CTranslate2 model has no place for it.

The model is converted to float32 first and checked against PyTorch (see :mod:`.parity`); only
then, with ``quantize="int8"``, converted again with int8 weights, whose agreement with the
float32 export is recorded. An export that misses the gate raises and nothing is written.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from dialogsum.plugin_api import (
    ConfigError,
    ExportJob,
    ModelError,
    clause,
    is_prompt_learning,
    merged_copy,
    require,
)
from dialogsum_ctranslate2.export_files import MODEL_FILES, WEIGHTS
from dialogsum_ctranslate2.options import CTranslate2ExportOptions

PROMPT_TUNED = (
    "This model is prompt-tuned: its soft prompt is an input the model reads, not a weight, "
    "and a CTranslate2 model cannot hold it. Export it to ONNX instead, which bakes the "
    "prompt into the encoder: dialogsum export --model MODEL --backend onnxruntime --output "
    "DIR (Summarizer.export(DIR)); or serve it with the torch backend. Nothing was written."
)


def _cpu_float32(model: Any) -> Any:
    """The model on the CPU in float32, what the converter and the gate read; a model held on
    a GPU (in bfloat16) is copied, and the caller's stays where it is."""
    import torch

    parameter = next(model.parameters())
    if parameter.device.type == "cpu" and parameter.dtype == torch.float32:
        return model
    return copy.deepcopy(model).to(device="cpu", dtype=torch.float32)


def _unique_vocabulary(folder: Path, tokenizer_size: int) -> None:
    """Make every entry of the converted vocabulary unique, and check the tokenizer fits it.

    CTranslate2's Python API takes and returns token strings. For a model with more embedding
    rows than tokenizer entries (FLAN-T5: 32128 against 32100) the converter names the unused
    rows after sentinel tokens the tokenizer already has, and such a string could not be read
    back to one id. The unused rows get names of their own; the weights are untouched.
    """
    path = folder / "shared_vocabulary.json"
    vocabulary: list[str] = json.loads(path.read_text(encoding="utf-8"))
    if tokenizer_size > len(vocabulary):
        raise ModelError(
            f"The tokenizer has {tokenizer_size} tokens but the model only {len(vocabulary)} "
            f"embedding rows. Nothing was written."
        )
    seen: set[str] = set()
    for index, token in enumerate(vocabulary):
        if token in seen:
            token = f"<unused_row_{index}>"
            while token in seen:
                token = f"<{token}>"
            vocabulary[index] = token
        seen.add(token)
    path.write_text(json.dumps(vocabulary, ensure_ascii=False), encoding="utf-8")


def _convert(source: Path, scratch: Path, weights: str, folder: Path, tokenizer_size: int) -> None:
    """Convert the transformers folder ``source`` with ``weights`` into ``folder``'s model files."""
    from ctranslate2.converters import TransformersConverter

    output = scratch / weights
    try:
        TransformersConverter(str(source)).convert(str(output), quantization=weights)
    except Exception as exc:
        raise ModelError(
            f"CTranslate2's converter failed on this model ({weights}): {type(exc).__name__}: "
            f"{clause(exc)}. Only T5-style encoder-decoders are supported. Nothing was written."
        ) from exc
    missing = [name for name in MODEL_FILES if not (output / name).is_file()]
    if missing:
        raise ModelError(
            f"CTranslate2's converter did not write {', '.join(missing)}; only T5-style "
            f"models, whose encoder and decoder share one vocabulary, are supported. Nothing "
            f"was written."
        )
    _unique_vocabulary(output, tokenizer_size)
    for name in MODEL_FILES:
        shutil.move(str(output / name), str(folder / name))


def export_ctranslate2(job: ExportJob, options: CTranslate2ExportOptions) -> None:
    """Write a CTranslate2 export of ``job.model`` into ``job.folder`` (see the module doc)."""
    if is_prompt_learning(job.model):
        raise ConfigError(PROMPT_TUNED)
    require(
        ("ctranslate2", "ctranslate2.converters", "torch", "transformers"),
        extra="export",
        purpose="Exporting to CTranslate2",
        distribution="dialogsum-ctranslate2",
    )
    import ctranslate2
    import torch
    import transformers

    from dialogsum_ctranslate2.parity import check_encoding, check_float32, int8_record
    from dialogsum_ctranslate2.predictor import CTranslate2Predictor

    model = _cpu_float32(job.model)
    plain = merged_copy(model)
    plain.eval()
    folder = job.folder
    job.tokenizer.save_pretrained(str(folder))
    if not (folder / "tokenizer.json").is_file():
        raise ModelError(
            f"The model's tokenizer ({type(job.tokenizer).__name__}) wrote no tokenizer.json, "
            f"which the ctranslate2 backend serves with; load the model with a fast tokenizer. "
            f"Nothing was written."
        )
    tokenizer_size = len(job.tokenizer)
    # Summaries default to the length the model was tuned with, as every dialogsum folder.
    plain.generation_config.max_new_tokens = job.manifest.data.max_target_length
    plain.generation_config.save_pretrained(str(folder))
    versions = {
        "ctranslate2": ctranslate2.__version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__.split("+")[0],
    }
    # The transformers folder the converter reads and its outputs live in the staged folder,
    # removed with it if anything fails.
    with tempfile.TemporaryDirectory(dir=folder, prefix=".convert-") as scratch:
        source = Path(scratch) / "transformers"
        plain.save_pretrained(str(source), safe_serialization=True)
        job.tokenizer.save_pretrained(str(source))
        _convert(source, Path(scratch), WEIGHTS[None], folder, tokenizer_size)
        section = {"quantize": options.quantize, "weights": WEIGHTS[None]}
        job.write_manifest(section, files=list(MODEL_FILES), versions=versions)
        float32 = CTranslate2Predictor(folder, progress=False)
        sources = check_encoding(float32, job.tokenizer, job.manifest)
        parity, tokens = check_float32(model, float32, sources)
        del float32
        if options.quantize is not None:
            weights = WEIGHTS[options.quantize]
            _convert(source, Path(scratch), weights, folder, tokenizer_size)
            job.write_manifest({"quantize": options.quantize, "weights": weights})
            quantized = CTranslate2Predictor(folder, progress=False)
            parity[options.quantize] = int8_record(quantized, sources, tokens)
    job.write_manifest(parity=parity)
