"""The facade users touch: load, fine-tune, summarize, evaluate, save."""

from __future__ import annotations

import copy
import inspect
import json
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from dialogsum.data import DataOptions, DataSource, Example, group_references, load_examples
from dialogsum.errors import ConfigError, DialogsumError, PluginError, logger
from dialogsum.evaluate import rouge
from dialogsum.interfaces import FinetuneMethod, Predictor
from dialogsum.modeling import DEFAULT_MODEL, ModelManifest, check_writable, save_model
from dialogsum.plugins import DialogsumPluginManager
from dialogsum.registry import get_registry, validate_options
from dialogsum.training import TrainingOptions, TrainResult


class Summarizer:
    """A dialogue summarizer: a model plus the backend that runs it.

    Create one with :meth:`from_pretrained`; :meth:`finetune` returns a new, tuned Summarizer
    and leaves this one unchanged, so the two can be compared.
    """

    def __init__(
        self,
        predictor: Predictor,
        *,
        backend: str = "torch",
        source: str | None = None,
        plugins: DialogsumPluginManager | None = None,
    ) -> None:
        self._predictor = predictor
        self.backend = backend
        #: Where the model was loaded from (folder or hub id); None for a model only in memory.
        self.source = source
        self._plugins = plugins
        #: Metrics and loss history of the run that produced this model, after ``finetune``.
        self.training: TrainResult | None = None

    def __repr__(self) -> str:
        return (
            f"Summarizer(source={self.source!r}, method={self.method!r}, backend={self.backend!r})"
        )

    # -- loading -------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path = DEFAULT_MODEL,
        *,
        backend: str = "torch",
        backend_options: Mapping[str, Any] | BaseModel | None = None,
        plugins: DialogsumPluginManager | None = None,
    ) -> Summarizer:
        """Load a hub id (``google/flan-t5-base``) or a folder that :meth:`save` wrote.

        A PEFT folder holds adapter weights only; its base model is loaded from where the folder
        records it (``backend_options={"base_model": ...}`` overrides that).
        """
        registry = get_registry(plugins)
        implementation = registry.backend(backend)
        options = registry.backend_options(backend, backend_options)
        path = Path(name_or_path).expanduser()
        source = str(path.resolve()) if path.exists() else str(name_or_path)
        try:
            predictor = implementation.load(Path(source) if path.exists() else source, options)  # type: ignore[arg-type]
        except DialogsumError:
            raise
        except ImportError as exc:
            raise PluginError(
                f"Backend '{backend}' ({registry.backends[backend].source}) is missing a "
                f"dependency: {exc}. Install the backend's extra."
            ) from exc
        if not isinstance(predictor, Predictor):
            raise PluginError(
                f"Backend '{backend}' ({registry.backends[backend].source}) returned "
                f"{type(predictor).__name__} from load(), which has no summarize() method."
            )
        return cls(predictor, backend=backend, source=source, plugins=plugins)

    # -- properties ----------------------------------------------------------------------------

    @property
    def predictor(self) -> Predictor:
        """The backend object that summarizes."""
        return self._predictor

    def _torch(self, action: str) -> Any:
        from dialogsum.predictor import TorchPredictor

        if not isinstance(self._predictor, TorchPredictor):
            raise ConfigError(
                f"{action} needs the PyTorch model, but this Summarizer serves through backend "
                f"'{self.backend}'. Load the model with backend='torch' to {action}."
            )
        return self._predictor

    @property
    def model(self) -> Any:
        """The PyTorch model (a peft model for PEFT methods)."""
        return self._torch("access the model").model

    @property
    def tokenizer(self) -> Any:
        """The tokenizer."""
        return self._torch("access the tokenizer").tokenizer

    @property
    def manifest(self) -> ModelManifest:
        """Method, base model, prompt and lengths recorded for this model."""
        manifest = getattr(self._predictor, "manifest", None)
        return manifest if isinstance(manifest, ModelManifest) else ModelManifest()

    @property
    def method(self) -> str | None:
        """The fine-tuning method that produced this model, or None for a base model."""
        return self.manifest.method

    # -- fine-tuning ---------------------------------------------------------------------------

    def finetune(
        self,
        train: DataSource,
        *,
        method: str = "lora",
        options: Mapping[str, Any] | BaseModel | None = None,
        eval_data: DataSource | None = None,
        output_dir: str | Path | None = None,
        training: Mapping[str, Any] | TrainingOptions | None = None,
        data: Mapping[str, Any] | DataOptions | None = None,
        overwrite: bool = False,
    ) -> Summarizer:
        """Fine-tune a copy of this model and return it as a new Summarizer.

        ``options`` are the method's own (e.g. ``{"r": 16}`` for LoRA), ``training`` the run's
        hyper-parameters (:class:`~dialogsum.training.TrainingOptions`), ``data`` the prompt and
        length limits (:class:`~dialogsum.data.DataOptions`; default: this model's). With
        ``output_dir``, checkpoints go to ``output_dir/checkpoints`` and the final model to
        ``output_dir/model``, with ``metrics.json`` and ``train_config.json`` beside them.
        """
        from dialogsum.features import tokenize_examples
        from dialogsum.predictor import TorchPredictor
        from dialogsum.training import is_main_process
        from dialogsum.training import train as run_training

        # Everything the user gave is validated before any work starts.
        registry = get_registry(self._plugins)
        implementation = registry.method(method)
        method_options = registry.method_options(method, options)
        training_options = parse_training(training)
        data_options = parse_data(data) if data is not None else self.manifest.data
        current = self._torch("finetune")
        run_dir = Path(output_dir).expanduser() if output_dir is not None else None
        if run_dir is not None and not training_options.resume_from_checkpoint:
            check_writable(run_dir, overwrite=overwrite)
        if self.manifest.peft:
            raise ConfigError(
                f"This model is a '{self.method}' adapter; fine-tuning an adapter again is not "
                f"supported. Fine-tune its base model ('{self.manifest.base_model}') instead."
            )
        train_examples = load_examples(train, "train")
        eval_examples = load_examples(eval_data, "validation") if eval_data is not None else None

        model = copy.deepcopy(current.model)  # the original Summarizer stays as it was
        base_name = self.source
        if base_name is not None:
            model.config._name_or_path = base_name  # what peft records as the adapter's base
        module = _prepare(
            implementation,
            registry.methods[method].source,
            model,
            method_options,
            current.tokenizer,
        )
        is_peft = hasattr(module, "peft_config")
        if is_peft and base_name is None:
            raise ConfigError(
                "This model exists only in memory, so an adapter trained on it could not record "
                "its base model. Save it first (save(dir)), load it with from_pretrained(dir), and "
                "fine-tune that."
            )
        train_features, truncation = tokenize_examples(
            train_examples, current.tokenizer, data_options
        )
        eval_features = (
            tokenize_examples(eval_examples, current.tokenizer, data_options)[0]
            if eval_examples
            else None
        )
        with tempfile.TemporaryDirectory(prefix="dialogsum-run-") as scratch:
            if run_dir is None:
                training_options = training_options.model_copy(update={"save_strategy": "no"})
            checkpoint_dir = run_dir / "checkpoints" if run_dir is not None else Path(scratch)
            result = run_training(
                module,
                current.tokenizer,
                train_features,
                eval_features,
                training_options,
                learning_rate=training_options.learning_rate
                or implementation.default_learning_rate,
                checkpoint_dir=checkpoint_dir,
                max_target_length=data_options.max_target_length,
            )
        module.eval()  # the Trainer leaves the model in training mode (dropout on)
        result.metrics["truncation"] = truncation.as_dict()
        manifest = ModelManifest(
            method=method,
            base_model=base_name or self.manifest.base_model,
            peft=is_peft,
            data=data_options,
        )
        tuned = Summarizer(
            TorchPredictor(module, current.tokenizer, manifest, progress=current.progress),
            backend="torch",
            source=None,
            plugins=self._plugins,
        )
        tuned.training = result
        if eval_examples and training_options.eval_strategy != "no":
            scores = tuned.evaluate(eval_examples)
            result.metrics.update({f"eval_{key}": value for key, value in scores.items()})
        if run_dir is not None and is_main_process():
            tuned.save(run_dir / "model", overwrite=True)
            _write_json(
                run_dir / "metrics.json", {**result.metrics, "log_history": result.log_history}
            )
            _write_json(
                run_dir / "train_config.json",
                {
                    "method": method,
                    "options": method_options.model_dump(),
                    "training": training_options.model_dump(),
                    "data": data_options.model_dump(),
                    "base_model": manifest.base_model,
                },
            )
            tuned.source = str((run_dir / "model").resolve())
        return tuned

    # -- using ---------------------------------------------------------------------------------

    def summarize(self, dialogues: list[str], **generation: Any) -> list[str]:
        """Summarize each dialogue (batched, longest first); one summary per input, in order.

        ``generation`` takes :class:`~dialogsum.generation.GenerationOptions` fields such as
        ``num_beams=4``, ``max_new_tokens=96`` or ``batch_size=16``.
        """
        return self._predictor.summarize(dialogues, **generation)

    def evaluate(
        self,
        data: DataSource | list[Example],
        split: str = "test",
        *,
        predictions_file: str | Path | None = None,
        **generation: Any,
    ) -> dict[str, float]:
        """ROUGE (percent, stemmed) of this model's summaries against the references in ``data``.

        With several references per dialogue (DialogSum test has three), each prediction's
        score is the mean over its references. Rows that repeat a dialogue (as the hub mirror
        does, one reference per row) are merged first. Returns ``rouge1``, ``rouge2``,
        ``rougeL``, ``rougeLsum``, ``n`` (dialogues), ``references`` and timing.
        """
        examples = group_references(load_examples(data, split))
        started = time.perf_counter()
        predictions = self.summarize([e.dialogue for e in examples], **generation)
        seconds = time.perf_counter() - started
        scores: dict[str, float] = rouge(predictions, [e.references for e in examples])
        scores.update(
            n=len(examples),
            references=sum(len(e.references) for e in examples),
            seconds=seconds,
            dialogues_per_second=len(examples) / seconds if seconds > 0 else float("inf"),
        )
        if predictions_file is not None:
            rows = [
                {
                    "id": e.id,
                    "dialogue": e.dialogue,
                    "prediction": p,
                    "references": list(e.references),
                }
                for e, p in zip(examples, predictions, strict=True)
            ]
            Path(predictions_file).write_text(
                "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows),
                encoding="utf-8",
            )
        return scores

    def merge(self) -> Summarizer:
        """Fold the adapter (LoRA, IA3, any peft method that merges) into the base weights.

        Returns a new Summarizer holding a plain transformers model, which saves as a full model
        and exports without peft. A model without an adapter is returned as it is. Prompt tuning
        has no weights to fold: :meth:`export` bakes its soft prompt into the exported encoder.
        """
        torch_side = self._torch("merge")
        if not self.manifest.peft:
            return self
        if (
            getattr(torch_side.model, "peft_config", None)
            and torch_side.model.active_peft_config.is_prompt_learning
        ):
            raise ConfigError(
                f"A '{self.method}' model has no adapter weights to merge: its soft prompt is an "
                f"input, not a weight. Export it instead (export(dir)), which bakes the prompt "
                f"into the exported encoder."
            )
        from dialogsum.predictor import TorchPredictor

        merged = copy.deepcopy(torch_side.model).merge_and_unload()
        manifest = self.manifest.model_copy(update={"peft": False, "merged": True})
        result = Summarizer(
            TorchPredictor(merged, torch_side.tokenizer, manifest, progress=torch_side.progress),
            backend="torch",
            source=None,
            plugins=self._plugins,
        )
        result.training = self.training
        return result

    def export(
        self,
        path: str | Path,
        *,
        format: str = "onnx",
        quantize: str | None = None,
        overwrite: bool = False,
    ) -> Path:
        """Export for CPU serving: a self-contained ONNX folder (optionally int8).

        Adapters are merged first; a prompt-tuned model gets its soft prompt baked into the
        encoder. The export is checked against this PyTorch model (the parity gate) and the
        results recorded in its ``dialogsum.json``. Serve it with
        ``Summarizer.from_pretrained(path, backend="onnxruntime")``.
        """
        from dialogsum.export import check_quantize, export_onnx

        if format != "onnx":
            raise ConfigError(f"Unsupported export format {format!r}; the supported one is 'onnx'.")
        check_quantize(quantize)
        torch_side = self._torch("export")
        return export_onnx(
            torch_side.model,
            torch_side.tokenizer,
            self.manifest,
            path,
            quantize=quantize,
            overwrite=overwrite,
            source_model=self.source or self.manifest.base_model,
        )

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Save the model, tokenizer and manifest to ``path`` (adapter only for PEFT methods).

        Written atomically; an existing folder is replaced only with ``overwrite=True``.
        """
        torch_side = self._torch("save")
        return save_model(
            torch_side.model, torch_side.tokenizer, self.manifest, path, overwrite=overwrite
        )


def parse_training(training: Mapping[str, Any] | TrainingOptions | None) -> TrainingOptions:
    """Validate training options, naming the bad field."""
    result = validate_options("training", TrainingOptions, training)
    assert isinstance(result, TrainingOptions)
    return result


def parse_data(data: Mapping[str, Any] | DataOptions | None) -> DataOptions:
    """Validate data options (prompt, lengths), naming the bad field."""
    result = validate_options("data", DataOptions, data)
    assert isinstance(result, DataOptions)
    return result


def _prepare(
    method: FinetuneMethod, source: str, model: Any, options: BaseModel, tokenizer: Any
) -> Any:
    kwargs = (
        {"tokenizer": tokenizer}
        if "tokenizer" in inspect.signature(method.prepare).parameters
        else {}
    )
    try:
        return method.prepare(model, options, **kwargs)
    except DialogsumError:
        raise
    except Exception as exc:
        raise PluginError(
            f"Method '{method.name}' ({source}) failed to prepare the model: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _write_json(path: Path, payload: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    logger.info("wrote %s", path)
