"""The contract every fine-tuning method, inference backend and predictor fulfils, declared once.

Everything a plugin may provide is an attribute or method of these base classes, with its
default: the registry checks what is registered against them (a plugin subclasses them), and
``docs/plugins.md`` documents exactly these names. Nothing in dialogsum probes a plugin for
an undeclared attribute or inspects a signature.

- :class:`FinetuneMethod`: ``name``, ``Options``, ``default_learning_rate`` and
  ``prepare(model, options, *, tokenizer)``.
- :class:`InferenceBackend`: ``name``, ``Options``, ``install_hint``, ``load(model_dir,
  options)``; optionally an export step (``ExportOptions`` and ``export(job, options)``) and
  serving a PyTorch model held in memory (``serves_torch_models`` and ``from_torch_model``).
- :class:`Predictor`: what ``load`` returns: ``manifest``, ``summarize(dialogues, options)``,
  optionally ``summarize_each`` (streaming), ``token_ids`` (token counts), ``torch_model``
  (fine-tuning, saving, merging and exporting need it), adapters served unmerged
  (``adapters``, ``load_adapter``, ``unload_adapter``, ``summarize_rows``) and continuous
  batching (``continuous_decoder``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from dialogsum.adapter_serving import AdapterInfo, UnknownAdapterError, run_grouped
from dialogsum.continuous import ContinuousDecoder, ContinuousSettings
from dialogsum.errors import ConfigError
from dialogsum.generation import GenerationOptions, OnSummary
from dialogsum.modeling import ModelManifest, TorchModel

if TYPE_CHECKING:
    from dialogsum.exporting import ExportJob

#: The learning rate of a method that declares no ``default_learning_rate``: the usual AdamW
#: rate for fine-tuning every weight of a T5. Adapter methods should declare a larger one.
FALLBACK_LEARNING_RATE = 5e-5


class Options(BaseModel):
    """Base class for a plugin's options models: unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid")


class NoOptions(Options):
    """Options of a method or backend (or an export step) that takes none."""


class Predictor(ABC):
    """What a backend's ``load`` returns: something that summarizes dialogues.

    The :class:`~dialogsum.Summarizer` checks the dialogues and validates the generation
    options once (the model's decoding defaults applied) before a predictor sees them, and
    checks that one string per dialogue comes back.
    """

    #: The model's manifest: prompt, lengths and decoding defaults (and the export record).
    manifest: ModelManifest
    #: Whether the backend can sample (``do_sample``). Where it cannot, the Summarizer (and
    #: ``dialogsum serve``) refuse the sampling options before a dialogue reaches it, naming
    #: the backend, and leave them out of the options an error lists as valid.
    samples: bool = True

    @abstractmethod
    def summarize(self, dialogues: list[str], options: GenerationOptions) -> list[str]:
        """Summarize each dialogue; one summary per input, in input order."""

    def summarize_each(
        self, dialogues: list[str], options: GenerationOptions, on_summary: OnSummary
    ) -> list[str]:
        """Like :meth:`summarize`, calling ``on_summary(index, summary)`` once per dialogue.

        Override it to report each summary as soon as it can no longer change (from the
        thread that runs the model): ``dialogsum serve`` then answers a request before the
        rest of its batch is done. This default reports every summary when the call ends.
        """
        summaries = self.summarize(dialogues, options)
        if isinstance(summaries, list) and len(summaries) == len(dialogues):
            for index, summary in enumerate(summaries):
                on_summary(index, summary)
        return summaries

    def token_ids(self, texts: list[str]) -> list[list[int]] | None:
        """Each text's token ids with the model's own tokenizer (special tokens added, nothing
        cut), or None when this predictor cannot tell. ``dialogsum serve`` counts input and
        output tokens with it, and reports inputs over the model's length."""
        return None

    def adapters(self) -> dict[str, AdapterInfo]:
        """The adapters served beside the base model, by name (none unless overridden).

        A backend that serves adapters unmerged overrides this, :meth:`load_adapter`,
        :meth:`unload_adapter`, and reads ``options.adapter`` in :meth:`summarize`. The core
        refuses an adapter name not listed here before a predictor sees it.
        """
        return {}

    def load_adapter(self, name: str, source: Path) -> AdapterInfo:
        """Start serving the adapter in folder ``source`` as ``name`` (replacing one so named).

        Atomic: a summary running meanwhile finishes with the adapters it started with, and an
        adapter that fails to load (a corrupt file, another base model) changes nothing.
        """
        export = self.manifest.export
        raise ConfigError(
            f"This model's backend ({export.backend if export else 'torch'}) serves no "
            f"adapters beside its base, so {name!r} cannot be loaded. Export the base "
            f"with its adapters for the onnxruntime backend (dialogsum export --adapter "
            f"NAME=RUN ...) and serve that folder."
        )

    def unload_adapter(self, name: str) -> AdapterInfo:
        """Stop serving adapter ``name`` (summaries already running with it finish); return it."""
        raise UnknownAdapterError(name, list(self.adapters()))

    def summarize_rows(
        self,
        dialogues: list[str],
        adapters: list[str | None],
        options: GenerationOptions,
        on_summary: OnSummary | None = None,
        on_partial: OnSummary | None = None,
    ) -> list[str]:
        """Summarize dialogues that may each ask for another adapter (None: the base).

        ``adapters[i]`` replaces ``options.adapter`` for dialogue ``i``. ``on_summary(i,
        summary)`` is called once per dialogue when its summary is final; ``on_partial(i,
        text)``, if the backend can, with the summary decoded so far as greedy decoding
        proceeds (``dialogsum serve`` streams it; beam search has no partial summary to show).
        This default runs the dialogues of each adapter together, one :meth:`summarize_each`
        call per adapter, and reports no partial summaries; a backend that can run rows of
        different adapters in one model call (each row's answer unchanged) overrides it.
        ``dialogsum serve`` batches through it.
        """

        def run(name: str | None, rows: list[int], report: OnSummary) -> list[str]:
            chosen = options.model_copy(update={"adapter": name})
            return self.summarize_each([dialogues[row] for row in rows], chosen, report)

        return run_grouped(adapters, run, on_summary)

    def continuous_decoder(self, settings: ContinuousSettings) -> ContinuousDecoder | None:
        """A continuous-batching decoder over this model, or None where the backend has none
        (``dialogsum serve`` then micro-batches through :meth:`summarize_rows`).

        Rows join the running decode between steps and leave as soon as they are final
        (:mod:`dialogsum.continuous`); each row's summary must equal the one
        :meth:`summarize` gives it alone with its options, whatever else is in flight.
        """
        return None

    @property
    def torch_model(self) -> TorchModel | None:
        """The PyTorch model behind this predictor, or None when it serves something else.

        Fine-tuning, saving, merging and exporting need it: a backend whose predictor returns
        one is tuned and exported like the built-in ``torch`` backend.
        """
        return None


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
    def prepare(self, model: Any, options: Any, *, tokenizer: Any) -> Any:
        """Return the module to train (a ``torch.nn.Module``), built from ``model``.

        ``model`` is a transformers seq2seq model (a copy: change it freely), ``options`` an
        instance of :attr:`Options`, ``tokenizer`` the model's tokenizer (prompt tuning starts
        its soft prompt from the embedding of a text, for example).
        """


class InferenceBackend(ABC):
    """A way to serve a saved model, and optionally to export one into a folder it serves."""

    #: Unique backend name, used as ``backend=`` and ``--backend``.
    name: ClassVar[str]
    #: Pydantic model of the backend's load options; must forbid unknown fields.
    Options: ClassVar[type[BaseModel]] = NoOptions
    #: What to tell a user whose install lacks a package :meth:`load` imports (shown when it
    #: raises ImportError), e.g. ``"pip install dialogsum-ctranslate2"``.
    install_hint: ClassVar[str | None] = None
    #: Pydantic model of the export step's options, or None when the backend cannot export.
    #: A backend that sets it implements :meth:`export`.
    ExportOptions: ClassVar[type[BaseModel] | None] = None
    #: Whether :meth:`from_torch_model` serves a PyTorch model held in memory.
    serves_torch_models: ClassVar[bool] = False
    #: Whether :meth:`export` takes adapters to serve unmerged beside the base
    #: (``ExportJob.adapters``), and its predictors serve them.
    exports_adapters: ClassVar[bool] = False

    @abstractmethod
    def load(self, model_dir: Path | str, options: Any) -> Predictor:
        """Load the model in ``model_dir`` and return a :class:`Predictor` for it.

        ``model_dir`` is a :class:`~pathlib.Path` for an existing folder; otherwise the string
        the user gave (a hub id, for backends that can fetch one).
        """

    def export(self, job: ExportJob, options: Any) -> None:
        """Write a deployable folder for ``job.model`` into ``job.folder``.

        Called only when :attr:`ExportOptions` is set, with an instance of it. ``job.folder``
        is a staged folder that dialogsum moves into place when this returns (and removes if
        it raises); write the backend's files there and call ``job.write_manifest(...)`` with
        the backend's own section and the parity results (see
        :class:`~dialogsum.exporting.ExportJob`). Raise :class:`~dialogsum.errors.ModelError`
        when the export does not reproduce the model: nothing is written then.
        """
        raise NotImplementedError(f"The '{self.name}' backend cannot export.")

    def from_torch_model(self, model: TorchModel, options: Any) -> Predictor:
        """A predictor for a PyTorch model held in memory (a freshly tuned or merged one).

        Called only when :attr:`serves_torch_models` is True.
        """
        raise NotImplementedError(f"The '{self.name}' backend serves saved folders only.")
