"""The facade users touch: load, fine-tune, summarize, evaluate, save."""

from __future__ import annotations

import copy
import json
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from dialogsum.data import DataOptions, DataSource, Example, group_references, load_examples
from dialogsum.errors import BackendError, ConfigError, DialogsumError, PluginError, logger
from dialogsum.evaluate import rouge
from dialogsum.interfaces import Predictor
from dialogsum.modeling import DEFAULT_MODEL, ModelManifest, check_writable, save_model
from dialogsum.plugins import DialogsumPluginManager
from dialogsum.registry import get_registry
from dialogsum.runs import Estimate
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
            predictor = implementation.load(Path(source) if path.exists() else source, options)
        except DialogsumError:
            raise
        except ImportError as exc:
            raise PluginError(
                f"Backend '{backend}' ({registry.backends[backend].source}) is missing a "
                f"dependency: {exc}. Install the backend's extra."
            ) from exc
        except Exception as exc:
            raise BackendError(
                f"Backend '{backend}' ({registry.backends[backend].source}) failed to load "
                f"'{name_or_path}': {type(exc).__name__}: {exc}"
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
        from dialogsum.predictor import TorchPredictor
        from dialogsum.reports import write_run_report
        from dialogsum.runs import plan_run
        from dialogsum.training import is_main_process
        from dialogsum.training import train as run_training

        plan = plan_run(self, train, method, options, eval_data, training, data)
        run_dir = Path(output_dir).expanduser() if output_dir is not None else None
        if run_dir is not None and not plan.training.resume_from_checkpoint:
            check_writable(run_dir, overwrite=overwrite)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="dialogsum-run-") as scratch:
            training_options = plan.training
            if run_dir is None:
                training_options = training_options.model_copy(update={"save_strategy": "no"})
            result = run_training(
                plan.module,
                plan.tokenizer,
                plan.train_features,
                plan.eval_features,
                training_options,
                learning_rate=plan.learning_rate,
                checkpoint_dir=run_dir / "checkpoints" if run_dir is not None else Path(scratch),
                max_target_length=plan.data.max_target_length,
            )
        plan.module.eval()  # the Trainer leaves the model in training mode (dropout on)
        result.metrics["truncation"] = plan.truncation.as_dict()
        result.metrics["wall_seconds"] = time.perf_counter() - started
        manifest = ModelManifest(
            method=method,
            base_model=plan.base_name or self.manifest.base_model,
            peft=plan.is_peft,
            data=plan.data,
            generation=self.manifest.generation,  # the base model's decoding defaults carry over
        )
        tuned = Summarizer(
            TorchPredictor(plan.module, plan.tokenizer, manifest, progress=plan.training.progress),
            backend="torch",
            source=None,
            plugins=self._plugins,
        )
        tuned.training = result
        if plan.eval_examples and plan.training.eval_strategy != "no":
            scores = tuned.evaluate(plan.eval_examples)
            result.metrics.update({f"eval_{key}": value for key, value in scores.items()})
        if run_dir is not None and is_main_process():
            tuned.save(run_dir / "model", overwrite=True)
            _write_json(
                run_dir / "metrics.json", {**result.metrics, "log_history": result.log_history}
            )
            _write_json(run_dir / "train_config.json", plan.config())
            write_run_report(run_dir, plan, result)
            tuned.source = str((run_dir / "model").resolve())
        return tuned

    def estimate(
        self,
        train: DataSource,
        *,
        method: str = "lora",
        options: Mapping[str, Any] | BaseModel | None = None,
        training: Mapping[str, Any] | TrainingOptions | None = None,
        data: Mapping[str, Any] | DataOptions | None = None,
        steps: int = 5,
    ) -> Estimate:
        """Run a few real training steps and project the whole run's wall time (and price).

        Takes the same arguments as :meth:`finetune`; nothing is saved and this Summarizer is
        unchanged. With ``training={"hourly_cost": ...}`` the estimate includes the price.
        """
        from dialogsum.runs import estimate_run, plan_run

        plan = plan_run(self, train, method, options, None, training, data)
        return estimate_run(plan, steps=steps)

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
        if predictions_file is not None:
            check_output_file(predictions_file)  # before the work, not after it
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

    def save(
        self,
        path: str | Path,
        *,
        overwrite: bool = False,
        generation: Mapping[str, Any] | None = None,
    ) -> Path:
        """Save the model, tokenizer and manifest to ``path`` (adapter only for PEFT methods).

        ``generation`` records decoding defaults (e.g. ``{"num_beams": 4}``) that
        :meth:`summarize` uses for this model unless the caller overrides them. Written
        atomically; an existing folder is replaced only with ``overwrite=True``.
        """
        from dialogsum.generation import parse_generation

        torch_side = self._torch("save")
        manifest = self.manifest
        if generation is not None:
            defaults = parse_generation(generation).model_dump(exclude_unset=True)
            manifest = manifest.model_copy(update={"generation": defaults})
        return save_model(
            torch_side.model, torch_side.tokenizer, manifest, path, overwrite=overwrite
        )


def check_output_file(path: str | Path) -> None:
    """Fail before any work when ``path`` cannot be written (missing folder, a directory)."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise ConfigError(f"Output file {target} is a folder; give a file name.")
    if not target.parent.is_dir():
        raise ConfigError(
            f"Cannot write {target}: its folder {target.parent} does not exist; create it first."
        )


def _write_json(path: Path, payload: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    logger.info("wrote %s", path)
