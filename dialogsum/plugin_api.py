"""The public plugin API: every name a dialogsum plugin may rely on, and nothing else.

A plugin (and each built-in method and backend) imports from this module and from the package
face (``dialogsum``) only; everything else in dialogsum is internal and may change between
releases. ``docs/plugins.md`` documents exactly the names in ``__all__``, and a test fails when
one is undocumented. Plugin tests add the test kit, ``dialogsum.testing``.

Importing it is cheap: no torch, transformers, peft, optimum or onnxruntime.
"""

from __future__ import annotations

from dialogsum.adapter_serving import (
    AdapterInfo,
    UnknownAdapterError,
    check_adapter_name,
    rows_by_adapter,
    run_grouped,
    same_base,
)
from dialogsum.adapters import (
    base_of,
    check_target_modules,
    is_peft,
    is_prompt_learning,
    merged_copy,
    prompt_length,
)
from dialogsum.continuous import ContinuousDecoder, ContinuousRow, ContinuousSettings
from dialogsum.data import DataOptions
from dialogsum.errors import (
    BackendError,
    ConfigError,
    DataError,
    DialogsumError,
    MissingDependencyError,
    ModelError,
    PluginError,
    clause,
    install_command,
    require,
)
from dialogsum.exporting import ExportJob, ExportStages
from dialogsum.generation import (
    GenerationOptions,
    OnSummary,
    cut_at_eos,
    encode_sources,
    encode_with_tokenizers,
    pad_batch,
    summarize_batches,
    warn_truncated_inputs,
)
from dialogsum.hookspecs import hookimpl
from dialogsum.interfaces import (
    FALLBACK_LEARNING_RATE,
    FinetuneMethod,
    InferenceBackend,
    NoOptions,
    Options,
    Predictor,
)
from dialogsum.modeling import (
    MANIFEST_NAME,
    ExportInfo,
    ModelManifest,
    TorchModel,
    load_model,
    read_manifest,
    resolve_model_dir,
)
from dialogsum.parity import (
    BEAM_AGREEMENT,
    BEAMS,
    PARITY_NEW_TOKENS,
    agreement,
    check_token_parity,
    parity_dialogues,
    parity_sources,
    torch_first_logits,
    torch_tokens,
)
from dialogsum.validation import OTHER_NAMES

__all__ = [
    "BEAMS",
    "BEAM_AGREEMENT",
    "FALLBACK_LEARNING_RATE",
    "MANIFEST_NAME",
    "OTHER_NAMES",
    "PARITY_NEW_TOKENS",
    "AdapterInfo",
    "BackendError",
    "ConfigError",
    "ContinuousDecoder",
    "ContinuousRow",
    "ContinuousSettings",
    "DataError",
    "DataOptions",
    "DialogsumError",
    "ExportInfo",
    "ExportJob",
    "ExportStages",
    "FinetuneMethod",
    "GenerationOptions",
    "InferenceBackend",
    "MissingDependencyError",
    "ModelError",
    "ModelManifest",
    "NoOptions",
    "OnSummary",
    "Options",
    "PluginError",
    "Predictor",
    "TorchModel",
    "UnknownAdapterError",
    "agreement",
    "base_of",
    "check_adapter_name",
    "check_target_modules",
    "check_token_parity",
    "clause",
    "cut_at_eos",
    "encode_sources",
    "encode_with_tokenizers",
    "hookimpl",
    "install_command",
    "is_peft",
    "is_prompt_learning",
    "load_model",
    "merged_copy",
    "pad_batch",
    "parity_dialogues",
    "parity_sources",
    "prompt_length",
    "read_manifest",
    "require",
    "resolve_model_dir",
    "rows_by_adapter",
    "run_grouped",
    "same_base",
    "summarize_batches",
    "torch_first_logits",
    "torch_tokens",
    "warn_truncated_inputs",
]
