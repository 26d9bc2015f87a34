"""dialogsum: fine-tune FLAN-T5 into a dialogue summarizer and serve it.

Only the public names live here; heavy libraries (torch, transformers, peft) are imported when a
model is first loaded, so ``import dialogsum`` stays fast.
"""

from __future__ import annotations

from dialogsum._version import __version__
from dialogsum.data import DataOptions, Example, load_examples
from dialogsum.errors import (
    BackendError,
    ConfigError,
    DataError,
    DialogsumError,
    MissingDependencyError,
    ModelError,
    PluginError,
)
from dialogsum.generation import GenerationOptions
from dialogsum.hookspecs import hookimpl
from dialogsum.interfaces import (
    FinetuneMethod,
    InferenceBackend,
    NoOptions,
    Options,
    Predictor,
)
from dialogsum.modeling import TorchModel
from dialogsum.plugins import make_plugin_manager
from dialogsum.summarizer import Summarizer
from dialogsum.training.options import TrainingOptions

__all__ = [
    "BackendError",
    "ConfigError",
    "DataError",
    "DataOptions",
    "DialogsumError",
    "Example",
    "FinetuneMethod",
    "GenerationOptions",
    "InferenceBackend",
    "MissingDependencyError",
    "ModelError",
    "NoOptions",
    "Options",
    "PluginError",
    "Predictor",
    "Summarizer",
    "TorchModel",
    "TrainingOptions",
    "__version__",
    "hookimpl",
    "load_examples",
    "make_plugin_manager",
]
