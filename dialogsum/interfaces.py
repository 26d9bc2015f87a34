"""The contracts fine-tuning methods and inference backends fulfil.

Subclassing :class:`FinetuneMethod` or :class:`InferenceBackend` is optional: the registry checks
the shape of whatever is registered (``name``, ``Options``, ``prepare`` or ``load``), so a plugin
may also register plain objects. The base classes document the contract and give type checkers
something to hold on to.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    import torch

    from dialogsum.generation import OnSummary
    from dialogsum.modeling import ModelManifest

#: The learning rate of a method that declares no ``default_learning_rate``: the usual AdamW
#: rate for fine-tuning every weight of a T5. Adapter methods should declare a larger one.
FALLBACK_LEARNING_RATE = 5e-5


class Options(BaseModel):
    """Base class for a method's or backend's options: unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid")


class NoOptions(Options):
    """Options of a method or backend that takes none."""


class FinetuneMethod(ABC):
    """A way to turn a pretrained seq2seq model into the module the trainer updates.

    The core owns the training loop, saving, loading and merging; a method only decides which
    parameters train. Return a :class:`peft.PeftModel` for parameter-efficient methods: the core
    then saves adapter weights only and records the base model.
    """

    #: Unique method name, used as ``method=`` and ``--method``.
    name: ClassVar[str]
    #: Pydantic model of the method's options; must forbid unknown fields.
    Options: ClassVar[type[BaseModel]] = NoOptions
    #: Learning rate used when the user gives none; adapters want larger rates than full tuning.
    default_learning_rate: ClassVar[float] = FALLBACK_LEARNING_RATE

    @abstractmethod
    def prepare(self, model: Any, options: Any) -> torch.nn.Module:
        """Return the module to train, built from ``model`` (a transformers seq2seq model)."""


@runtime_checkable
class Predictor(Protocol):
    """What a backend's ``load`` returns: something that summarizes dialogues."""

    def summarize(self, dialogues: list[str], **generation: Any) -> list[str]:
        """Summarize each dialogue; one summary per input, in input order."""
        ...


@runtime_checkable
class StreamingPredictor(Protocol):
    """A predictor that reports each summary as soon as it is final (an optional capability).

    ``on_summary(index, summary)`` is called once per dialogue, from the thread that runs the
    model, as soon as that dialogue's summary can no longer change (a short summary need not
    wait for the longest in its batch); the call still returns every summary in input order.
    ``dialogsum serve`` answers each request as soon as its own summaries are reported.
    """

    def summarize_each(
        self, dialogues: list[str], on_summary: OnSummary | None, **generation: Any
    ) -> list[str]:
        """Like ``summarize``, reporting each summary through ``on_summary`` when final."""
        ...


@runtime_checkable
class TorchModelPredictor(Protocol):
    """A predictor exposing its PyTorch model: what fine-tuning, saving, merging, export need.

    The built-in ``torch`` backend returns one, and so may any third party's backend: the
    :class:`~dialogsum.Summarizer` checks this capability, never a class, before it tunes,
    saves, merges or exports. ``model`` is a transformers seq2seq model (or a peft model around
    one), ``tokenizer`` a transformers tokenizer, ``manifest`` the
    :class:`~dialogsum.modeling.ModelManifest` read from the model's folder.
    """

    model: Any
    tokenizer: Any
    manifest: ModelManifest

    def summarize(self, dialogues: list[str], **generation: Any) -> list[str]:
        """Summarize each dialogue; one summary per input, in input order."""
        ...


class InferenceBackend(ABC):
    """A way to serve a saved or exported model."""

    #: Unique backend name, used as ``backend=`` and ``--backend``.
    name: ClassVar[str]
    #: Pydantic model of the backend's options; must forbid unknown fields.
    Options: ClassVar[type[BaseModel]] = NoOptions

    @abstractmethod
    def load(self, model_dir: Path | str, options: Any) -> Predictor:
        """Load the model in ``model_dir`` and return a :class:`Predictor` for it.

        ``model_dir`` is a :class:`~pathlib.Path` for an existing folder; otherwise the string
        the user gave (a hub id, for backends that can fetch one).
        """
