"""Export a tuned model to a self-contained ONNX folder for CPU serving.

LoRA and other mergeable adapters are folded into the base weights first. Prompt tuning has no
weights to fold, so its learned soft prompt is baked into the exported encoder: the encoder
takes token ids, prepends the prompt embeddings itself and returns the matching attention mask,
and a prompt-tuned model then serves with onnxruntime alone, no peft at run time.

Every export runs a parity check against the PyTorch model it came from and records the result
in the folder's manifest; an fp32 export that fails it is not written.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

from dialogsum.backends.onnxruntime.adapter_files import CONFIG as ADAPTER_CONFIG
from dialogsum.backends.onnxruntime.adapter_files import WEIGHTS as ADAPTER_WEIGHTS
from dialogsum.backends.onnxruntime.adapter_files import read_adapter
from dialogsum.backends.onnxruntime.adapter_slots import add_lora_slots
from dialogsum.backends.onnxruntime.adapter_tables import ADAPTERS_FOLDER
from dialogsum.backends.onnxruntime.export_files import ONNX_FILES, WEIGHT_BITS
from dialogsum.backends.onnxruntime.options import OnnxExportOptions
from dialogsum.backends.onnxruntime.shared_cross_attention import share_cross_attention
from dialogsum.plugin_api import (
    MANIFEST_NAME,
    ExportJob,
    ExportStages,
    ModelError,
    base_of,
    clause,
    is_prompt_learning,
    merged_copy,
    parity_dialogues,
    prompt_length,
    require,
)


def quiet_exporters() -> None:
    """Silence tracer and exporter chatter that says nothing actionable to a user.

    The tracer warnings concern branches fixed per exported file (first decoder step or not),
    which the parity gate verifies; optimum's tied-weight notes are informational.
    """
    import warnings

    import torch
    from optimum.utils import logging as optimum_logging
    from transformers.utils import logging as transformers_logging

    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
    optimum_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()


def _cpu_float32(model: Any) -> Any:
    """The model on the CPU in float32: what ONNX export and the fp32 parity gate need.

    A model served on a GPU (in bfloat16) is copied; the caller's model stays where it is.
    """
    import torch

    parameter = next(model.parameters())
    if parameter.device.type == "cpu" and parameter.dtype == torch.float32:
        return model
    return copy.deepcopy(model).to(device="cpu", dtype=torch.float32)


def _plain_model(model: Any) -> tuple[Any, Any]:
    """A plain transformers model to export, and the soft prompt to bake (or None)."""
    if is_prompt_learning(model):
        length = prompt_length(model)
        # Exactly what peft's generate() prepends to the encoder input embeddings.
        prompt = model.get_prompt(batch_size=1)[0, :length].detach().clone()
        return copy.deepcopy(base_of(model)), prompt
    return merged_copy(model), None


def _export_prompted_encoder(model: Any, prompt: Any, path: Path) -> None:
    import torch

    class PromptedEncoder(torch.nn.Module):
        """ids, mask -> (hidden states, mask) with the soft prompt prepended, as peft does."""

        def __init__(self) -> None:
            super().__init__()
            self.encoder: Any = model.get_encoder()
            self.embed: Any = model.get_input_embeddings()
            self.register_buffer("prompt", prompt[None])
            self.length = int(prompt.shape[0])

        def forward(self, input_ids: Any, attention_mask: Any) -> tuple[Any, Any]:
            batch = input_ids.shape[0]
            embeds = self.embed(input_ids)
            soft_prompt: Any = self.prompt
            embeds = torch.cat([soft_prompt.expand(batch, -1, -1).to(embeds.dtype), embeds], dim=1)
            ones = torch.ones(batch, self.length, dtype=attention_mask.dtype)
            mask = torch.cat([ones, attention_mask], dim=1)
            hidden = self.encoder(
                inputs_embeds=embeds, attention_mask=mask, use_cache=False
            ).last_hidden_state
            return hidden, mask

    dummy = (torch.randint(3, 20, (2, 7)), torch.ones(2, 7, dtype=torch.long))
    axes = {0: "batch_size", 1: "encoder_sequence_length"}
    prompted = {0: "batch_size", 1: "prompted_sequence_length"}
    torch.onnx.export(
        PromptedEncoder().eval(),
        dummy,
        str(path),
        input_names=["input_ids", "attention_mask"],
        output_names=["last_hidden_state", "encoder_attention_mask"],
        dynamic_axes={
            "input_ids": axes,
            "attention_mask": axes,
            "last_hidden_state": prompted,
            "encoder_attention_mask": prompted,
        },
        opset_version=17,
        do_constant_folding=True,
        dynamo=False,
    )


def _export_adapter_encoder(model: Any, path: Path) -> None:
    """An encoder that takes a soft prompt per row: what a multi-adapter export serves.

    Row ``i``'s first ``prompt_lengths[i]`` positions read ``soft_prompt[i]`` in place of the
    embeddings of their (placeholder) ids, so rows of different prompt-tuned adapters, and
    rows of none, share one batch with each row laid out as it is alone.
    """
    import torch

    class AdapterEncoder(torch.nn.Module):
        """ids, mask, soft prompts, prompt lengths -> hidden states."""

        def __init__(self) -> None:
            super().__init__()
            self.encoder: Any = model.get_encoder()
            self.embed: Any = model.get_input_embeddings()

        def forward(
            self, input_ids: Any, attention_mask: Any, soft_prompt: Any, prompt_lengths: Any
        ) -> Any:
            embeds = self.embed(input_ids)
            width = input_ids.shape[1]
            soft = torch.nn.functional.pad(soft_prompt, (0, 0, 0, width - soft_prompt.shape[1]))
            positions = torch.arange(width)[None, :]
            is_soft = (positions < prompt_lengths[:, None])[..., None]
            embeds = torch.where(is_soft, soft.to(embeds.dtype), embeds)
            return self.encoder(
                inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False
            ).last_hidden_state

    width = int(model.config.d_model)
    dummy = (
        torch.randint(3, 20, (2, 7)),
        torch.ones(2, 7, dtype=torch.long),
        torch.zeros(2, 3, width),
        torch.tensor([3, 0]),
    )
    axes = {0: "batch_size", 1: "encoder_sequence_length"}
    torch.onnx.export(
        AdapterEncoder().eval(),
        dummy,
        str(path),
        input_names=["input_ids", "attention_mask", "soft_prompt", "prompt_lengths"],
        output_names=["last_hidden_state"],
        dynamic_axes={
            "input_ids": axes,
            "attention_mask": axes,
            "soft_prompt": {0: "batch_size", 1: "prompt_length"},
            "prompt_lengths": {0: "batch_size"},
            "last_hidden_state": axes,
        },
        opset_version=17,
        do_constant_folding=True,
        dynamo=False,
    )


def _adapter_modules(job: ExportJob, options: OnnxExportOptions) -> set[str]:
    """The linear modules that get LoRA slots: the option's and every exported adapter's."""
    modules = set(options.lora_modules)
    for folder in job.adapters.values():
        config = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
        if str(config.get("peft_type", "")).upper() == "LORA":
            targets = config.get("target_modules") or []
            modules |= {targets} if isinstance(targets, str) else set(targets)
    return modules


def _write_adapters(job: ExportJob) -> None:
    """Each adapter's files (peft's, and its manifest) into ``adapters/NAME/``."""
    for name, source in job.adapters.items():
        folder = job.folder / ADAPTERS_FOLDER / name
        folder.mkdir(parents=True)
        for file in (ADAPTER_CONFIG, ADAPTER_WEIGHTS, MANIFEST_NAME):
            if (source / file).is_file():
                shutil.copyfile(source / file, folder / file)


def _stage_count(job: ExportJob, options: OnnxExportOptions) -> int:
    """The stages of :func:`export_onnx`: the graphs, the parity check, int8 quantization and
    its check, and one parity check per adapter."""
    return 2 + (2 if options.quantize == "int8" else 0) + len(job.adapters)


def export_onnx(job: ExportJob, options: OnnxExportOptions) -> None:
    """Write an ONNX export of ``job.model`` into ``job.folder`` (see the module docstring)."""
    require(
        ("onnxruntime", "optimum.exporters.onnx", "onnx"),
        extra="export",
        purpose="Exporting to ONNX",
    )
    for name, folder in job.adapters.items():
        read_adapter(name, folder)  # an adapter that cannot be served fails before the export
    with job.stages(_stage_count(job, options)) as stages:
        stages.start("exporting the ONNX graphs")
        model = _cpu_float32(job.model)
        _write_graphs(job, options, model)
        _check(job, options, model, stages)


def _write_graphs(job: ExportJob, options: OnnxExportOptions, model: Any) -> None:
    """Write the graphs, the generation config, the adapters and a first manifest (which the
    parity check's predictor reads)."""
    import onnxruntime
    from optimum.exporters.onnx import onnx_export_from_model

    quiet_exporters()
    plain, prompt = _plain_model(model)
    plain.eval()
    staging = job.folder
    # optimum copies the tokenizer from config._name_or_path, which may be a hub id (or a
    # bundled model's name) and would cost minutes of retries offline. Point it at the
    # staging folder, which holds our tokenizer already; the name is not written to disk.
    job.tokenizer.save_pretrained(str(staging))
    plain.config._name_or_path = str(staging)
    try:
        onnx_export_from_model(
            plain,
            output=staging,
            task="text2text-generation-with-past",
            # Separate decoder and decoder-with-past files: faster on CPU than the merged one.
            no_post_process=True,
            do_validation=False,
        )
        if prompt is not None:
            _export_prompted_encoder(plain, prompt, staging / "encoder_model.onnx")
        elif job.adapters:
            _export_adapter_encoder(plain, staging / "encoder_model.onnx")
        shared = share_cross_attention(staging)
        slots = add_lora_slots(staging, _adapter_modules(job, options)) if job.adapters else {}
    except Exception as exc:
        raise ModelError(
            f"The ONNX exporter failed on this {type(plain).__name__}: {type(exc).__name__}: "
            f"{clause(exc)}. Nothing was written."
        ) from exc
    missing = [name for name in ONNX_FILES if not (staging / name).exists()]
    if missing:
        raise ModelError(f"The ONNX exporter did not write {', '.join(missing)}.")
    if not shared:
        raise ModelError(
            f"The exported decoder of this {type(plain).__name__} has no cross-attention that "
            f"dialogsum can share among beams; only T5-style encoder-decoders are supported. "
            f"Nothing was written."
        )
    plain.generation_config.max_new_tokens = job.manifest.data.max_target_length
    plain.generation_config.save_pretrained(str(staging))
    section: dict[str, Any] = {
        "quantize": options.quantize,
        # 7-bit weights: full-range int8 saturates on CPUs without VNNI (export_files).
        **({"weight_bits": WEIGHT_BITS} if options.quantize == "int8" else {}),
        "prompt_tokens": 0 if prompt is None else int(prompt.shape[0]),
        # The decoder's cross-attention cache has one row per dialogue, shared by its beams
        # (see shared_cross_attention).
        "cross_attention": "item",
    }
    if job.adapters:
        _write_adapters(job)
        section["adapters"] = {
            "names": sorted(job.adapters),
            "lora_modules": sorted(_adapter_modules(job, options)),
            "slots": slots,
            "soft_prompts": True,
        }
    versions = {"onnxruntime": onnxruntime.__version__}
    job.write_manifest(section, files=list(ONNX_FILES), versions=versions)


def _check(job: ExportJob, options: OnnxExportOptions, model: Any, stages: ExportStages) -> None:
    """Run the parity gate on the written graphs (and quantize them between its checks);
    record the results in the manifest."""
    from dialogsum.backends.onnxruntime.onnx_predictor import OnnxPredictor
    from dialogsum.backends.onnxruntime.parity import (
        check_adapter_parity,
        check_int8_parity,
        check_parity,
    )
    from dialogsum.backends.onnxruntime.quantize import quantize_int8

    staging = job.folder
    stages.start("checking parity with PyTorch")
    # One predictor per set of graphs, shared by every check on them (each load costs
    # seconds for a large model).
    served = OnnxPredictor(staging, progress=False)
    sources = served.encode(parity_dialogues(), warn=False)  # both sides read these ids
    parity, fp32_greedy = check_parity(model, served, sources)
    if options.quantize == "int8":
        # Its sessions were built from the fp32 files that quantization rewrites in place.
        del served
        stages.start("quantizing to int8")
        try:
            quantize_int8(staging)
        except Exception as exc:
            raise ModelError(
                f"int8 quantization failed: {type(exc).__name__}: {clause(exc)}. Nothing was "
                f"written; the fp32 export (quantize=None) is unaffected."
            ) from exc
        stages.start("checking int8 parity")
        served = OnnxPredictor(staging, progress=False)
        parity["int8"] = check_int8_parity(served, sources, fp32_greedy)
    # Adapters are checked as served: their int8 branch on the base as exported.
    for name in job.adapters:
        stages.start(f"checking adapter {name}")
        tuned = job.adapter_model(name)  # one at a time: a copy of the base each
        parity.setdefault("adapters", {})[name] = check_adapter_parity(tuned.model, served, name)
        del tuned
    job.write_manifest(parity=parity)
