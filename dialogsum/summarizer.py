"""The facade users touch: load, fine-tune, summarize, evaluate, save."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from dialogsum.adapter_serving import AdapterInfo, UnknownAdapterError, check_adapter_name
from dialogsum.continuous import CheckedDecoder, ContinuousDecoder, ContinuousSettings
from dialogsum.data import DataOptions, DataSource, Example, group_references, load_examples
from dialogsum.errors import (
    BackendError,
    ConfigError,
    DialogsumError,
    ModelError,
    PluginError,
    clause,
    near_miss,
)
from dialogsum.exporting import check_adapters
from dialogsum.generation import GenerationOptions, check_dialogues, parse_generation
from dialogsum.interfaces import Predictor
from dialogsum.modeling import (
    DEFAULT_MODEL,
    ModelManifest,
    TorchModel,
    default_backend,
    first_line,
    save_model,
)
from dialogsum.plugins import DialogsumPluginManager, is_core_source
from dialogsum.registry import get_registry
from dialogsum.training.options import TrainingOptions

#: The backend that serves a model held in memory (tuned or merged in this process).
IN_MEMORY_BACKEND = "torch"

if TYPE_CHECKING:
    from dialogsum.generation import OnSummary
    from dialogsum.interfaces import InferenceBackend
    from dialogsum.sweep.budget import SweepProjection
    from dialogsum.sweep.job import SweepContext, SweepJob
    from dialogsum.sweep.options import SweepOptions
    from dialogsum.sweep.run import SweepResult
    from dialogsum.training.estimates import Estimate
    from dialogsum.training.planning import RunPlan
    from dialogsum.training.trainer import TrainResult


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
        backend_options: BaseModel | None = None,
    ) -> None:
        self._predictor = predictor
        self.backend = backend
        #: The backend's validated options (kept for the models tuned or merged from this one).
        self.backend_options = backend_options
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
        backend: str | None = None,
        backend_options: Mapping[str, Any] | BaseModel | None = None,
        plugins: DialogsumPluginManager | None = None,
    ) -> Summarizer:
        """Load a hub id (``google/flan-t5-base``) or a folder that :meth:`save` wrote.

        A PEFT folder holds adapter weights only; its base model is loaded from where the folder
        records it (``backend_options={"base_model": ...}`` overrides that). ``backend``
        defaults to the one the folder's manifest names: ``onnxruntime`` for an ONNX export,
        ``torch`` for everything else.
        """
        if isinstance(name_or_path, os.PathLike):
            name_or_path = Path(os.fspath(name_or_path))
        if not isinstance(name_or_path, (str, Path)) or not str(name_or_path).strip():
            raise ConfigError(
                f"name_or_path must name a model (a hub id, a folder, or 'dialogsum-tiny'), "
                f"not {name_or_path!r}."
            )
        registry = get_registry(plugins)
        chosen = backend is None
        if backend is None:
            backend = default_backend(name_or_path)
        implementation = registry.backend(backend)
        try:
            options = registry.backend_options(backend, backend_options)
        except ConfigError as exc:
            raise ConfigError(_chosen_for(exc, name_or_path, backend) if chosen else exc) from None
        path = Path(name_or_path).expanduser()
        source = str(path.resolve()) if path.exists() else str(name_or_path)
        try:
            predictor = implementation.load(Path(source) if path.exists() else source, options)
        except DialogsumError:
            raise
        except ImportError as exc:
            # A plugin says how to install what it needs; dialogsum cannot know it.
            hint = implementation.install_hint or (
                f"install what {registry.backends[backend].source} depends on"
            )
            raise PluginError(
                f"Backend '{backend}' ({registry.backends[backend].source}) is missing a "
                f"dependency: {clause(exc)}. To fix: {clause(hint)}."
            ) from exc
        except Exception as exc:
            raise BackendError(
                f"Backend '{backend}' ({registry.backends[backend].source}) failed to load "
                f"'{name_or_path}': {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(predictor, Predictor):
            raise PluginError(
                f"Backend '{backend}' ({registry.backends[backend].source}) returned "
                f"{type(predictor).__name__} from load(), which is not a "
                f"dialogsum.plugin_api.Predictor; subclass it (python -m pydoc "
                f"dialogsum.plugin_api.Predictor)."
            )
        if not isinstance(getattr(predictor, "manifest", None), ModelManifest):
            raise PluginError(
                f"Backend '{backend}' ({registry.backends[backend].source}) returned a "
                f"{type(predictor).__name__} from load() without a manifest: set "
                f"self.manifest = read_manifest(folder) (a dialogsum.plugin_api.ModelManifest) "
                f"in its __init__; every summary reads the model's prompt and lengths from it."
            )
        return cls(
            predictor, backend=backend, source=source, plugins=plugins, backend_options=options
        )

    def _in_memory(self) -> tuple[InferenceBackend, BaseModel]:
        """The backend (torch) and options that serve models tuned or merged from this one."""
        registry = get_registry(self._plugins)
        backend = IN_MEMORY_BACKEND
        implementation = registry.backend(backend)
        if not implementation.serves_torch_models:
            raise PluginError(
                f"Backend '{backend}' ({registry.backends[backend].source}) cannot serve a "
                f"model held in memory; dialogsum's own torch backend can."
            )
        keep = self.backend_options if self.backend == backend else None
        return implementation, registry.backend_options(backend, keep)

    def _serve_in_memory(self, model: TorchModel) -> Summarizer:
        """A Summarizer on ``model`` (merged from this one), served by torch."""
        implementation, options = self._in_memory()
        return Summarizer(
            implementation.from_torch_model(model, options),
            backend=IN_MEMORY_BACKEND,
            plugins=self._plugins,
            backend_options=options,
        )

    # -- properties ----------------------------------------------------------------------------

    @property
    def predictor(self) -> Predictor:
        """The backend object that summarizes."""
        return self._predictor

    def _torch(self, action: str) -> TorchModel:
        # A capability, not a class: any backend whose predictor exposes its torch model
        # (Predictor.torch_model) can be tuned, saved, merged and exported.
        torch_model = self._predictor.torch_model
        if torch_model is None:
            export = self.manifest.export
            if export is not None:
                # An export has no PyTorch model to load: its source has.
                source = export.source_model
                fix = (
                    f"Load the PyTorch model it was exported from to {action}: "
                    f"Summarizer.from_pretrained('{source}')."
                    if source
                    else f"Load the PyTorch model it was exported from to {action}."
                )
            else:
                fix = f"Load the model with backend='torch' to {action}."
            raise ConfigError(
                f"{action} needs the PyTorch model, but this Summarizer serves through backend "
                f"'{self.backend}', whose predictor does not expose one (torch_model). {fix}"
            )
        return torch_model

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
        return self._predictor.manifest

    @property
    def method(self) -> str | None:
        """The fine-tuning method that produced this model, or None for a base model."""
        return self.manifest.method

    # -- fine-tuning ---------------------------------------------------------------------------

    def _validate(
        self,
        method: str,
        options: Mapping[str, Any] | BaseModel | None,
        training: Mapping[str, Any] | TrainingOptions | None,
        data: Mapping[str, Any] | DataOptions | None,
    ) -> tuple[BaseModel, TrainingOptions, DataOptions]:
        from dialogsum.training.planning import validate_run

        # Validated once, here at the edge; what follows receives the typed objects.
        return validate_run(
            get_registry(self._plugins),
            method,
            options,
            training,
            data,
            lambda: self.manifest.data,
        )

    def _plan(
        self,
        train: DataSource,
        method: str,
        validated: tuple[BaseModel, TrainingOptions, DataOptions],
        eval_data: DataSource | None,
    ) -> RunPlan:
        from dialogsum.training.planning import plan_run

        registry = get_registry(self._plugins)
        method_options, training_options, data_options = validated
        torch_model = self._torch("finetune")
        return plan_run(
            model=torch_model.model,
            tokenizer=torch_model.tokenizer,
            manifest=self.manifest,
            source=self.source,
            registry=registry,
            train=train,
            method=method,
            method_options=method_options,
            training_options=training_options,
            data_options=data_options,
            eval_data=eval_data,
        )

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
        ``overwrite=True`` starts the run in ``output_dir`` over; ``resume_from_checkpoint``
        (in ``training``) continues it; giving both is a :class:`ConfigError`.
        """
        from dialogsum.training.checkpoints import check_run_folder, prepare_run_folder
        from dialogsum.training.distributed import is_main_process
        from dialogsum.training.run import run_finetune

        validated = self._validate(method, options, training, data)
        resume = validated[1].resume_from_checkpoint
        run_dir = Path(output_dir).expanduser() if output_dir is not None else None
        if run_dir is not None:
            # Before the data is read and the model copied: a folder that cannot be written,
            # or overwrite with resume, fails at once.
            check_run_folder(run_dir, overwrite=overwrite, resume=resume)
        plan = self._plan(train, method, validated, eval_data)
        if run_dir is not None:
            prepare_run_folder(run_dir, overwrite=overwrite, resume=resume)
        implementation, backend_options = self._in_memory()
        predictor, result = run_finetune(
            plan,
            output_dir=run_dir,
            generation=self.manifest.generation,
            serve=lambda model: implementation.from_torch_model(model, backend_options),
        )
        tuned = Summarizer(
            predictor,
            backend=IN_MEMORY_BACKEND,
            plugins=self._plugins,
            backend_options=backend_options,
        )
        tuned.training = result
        if run_dir is not None and is_main_process() and (run_dir / "model").is_dir():
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
        from dialogsum.training.estimates import estimate_run

        validated = self._validate(method, options, training, data)
        return estimate_run(self._plan(train, method, validated, None), steps=steps)

    def sweep(
        self,
        train: DataSource,
        eval_data: DataSource,
        *,
        space: Mapping[str, Any],
        output_dir: str | Path,
        method: str = "lora",
        options: Mapping[str, Any] | BaseModel | None = None,
        training: Mapping[str, Any] | TrainingOptions | None = None,
        data: Mapping[str, Any] | DataOptions | None = None,
        sweep: Mapping[str, Any] | SweepOptions | None = None,
        overwrite: bool = False,
    ) -> tuple[Summarizer | None, SweepResult]:
        """Search fine-tuning settings and return the best tuned model and the sweep.

        ``space`` maps settings to ranges or choices: training settings (``learning_rate``,
        ``max_steps``, ``batch_size``, ``warmup_ratio``, ...) and the method's own options
        (LoRA's ``r``), e.g. ``{"learning_rate": {"low": 1e-5, "high": 1e-2, "log": True},
        "r": [4, 8, 16]}``. ``options``, ``training`` and ``data`` are the fixed settings, as in
        :meth:`finetune`; ``sweep`` is :class:`~dialogsum.sweep.options.SweepOptions` (trials,
        objective, pruner, engine, workers, budget). Trials are scored on ``eval_data``.

        Everything is validated before anything trains. The sweep folder ``output_dir`` holds
        the study, ``sweep.json``, the report and ``best/``; running the same sweep again in it
        resumes it (``overwrite=True`` starts over). Returns the best trial's model (None when
        no trial finished) and a :class:`~dialogsum.sweep.run.SweepResult` (``.study`` is the
        Optuna study).
        """
        from dialogsum.sweep.run import run_sweep

        job, context = self._sweep_job(
            train, eval_data, space, output_dir, method, options, training, data, sweep
        )
        result = run_sweep(job, context, overwrite=overwrite)
        best = None
        if result.best is not None:
            best = Summarizer.from_pretrained(result.best, backend="torch", plugins=self._plugins)
        return best, result

    def estimate_sweep(
        self,
        train: DataSource,
        eval_data: DataSource,
        *,
        space: Mapping[str, Any],
        output_dir: str | Path,
        method: str = "lora",
        options: Mapping[str, Any] | BaseModel | None = None,
        training: Mapping[str, Any] | TrainingOptions | None = None,
        data: Mapping[str, Any] | DataOptions | None = None,
        sweep: Mapping[str, Any] | SweepOptions | None = None,
    ) -> SweepProjection:
        """Project a sweep's time (and cost) per rung and in total, from a few measured steps
        and one scoring; takes :meth:`sweep`'s arguments and trains no trial."""
        from dialogsum.sweep.run import run_sweep

        job, context = self._sweep_job(
            train, eval_data, space, output_dir, method, options, training, data, sweep
        )
        projection = run_sweep(job, context, estimate=True).projection
        assert projection is not None
        return projection

    def _sweep_job(
        self,
        train: DataSource,
        eval_data: DataSource,
        space: Mapping[str, Any],
        output_dir: str | Path,
        method: str,
        options: Mapping[str, Any] | BaseModel | None,
        training: Mapping[str, Any] | TrainingOptions | None,
        data: Mapping[str, Any] | DataOptions | None,
        sweep: Mapping[str, Any] | SweepOptions | None,
    ) -> tuple[SweepJob, SweepContext]:
        """A sweep's inputs, validated at once (space included), and its trials' context."""
        from dialogsum.sweep.job import SweepJob, build_context, check_loadable
        from dialogsum.sweep.options import SweepOptions
        from dialogsum.sweep.space import resolve_space
        from dialogsum.validation import validate_options

        method_options, training_options, data_options = self._validate(
            method, options, training, data
        )
        sweep_options = validate_options("sweep", SweepOptions, sweep)
        sweep_options.check_installed()
        check_loadable(self.source, sweep_options)
        registry = get_registry(self._plugins)
        resolved = resolve_space(
            space,
            method=method,
            method_options=method_options,
            training=training_options,
            validate_method=lambda values: registry.method_options(method, values),
        )
        torch_model = self._torch("sweep")
        implementation, backend_options = self._in_memory()
        job = SweepJob(
            source=self.source,
            backend_options=backend_options.model_dump(),
            method=method,
            method_options=method_options.model_dump(),
            training=training_options.model_dump(),
            data=data_options.model_dump(),
            space=resolved.as_dict(),
            options=sweep_options.model_dump(),
            train=list(load_examples(train, "train")),
            eval=list(load_examples(eval_data, "validation")),
            folder=str(Path(output_dir).expanduser().resolve()),
        )
        context = build_context(
            job,
            registry=registry,
            model=torch_model,
            serve=lambda model: implementation.from_torch_model(model, backend_options),
        )
        return job, context

    # -- using ---------------------------------------------------------------------------------

    def generation_options(self, **generation: Any) -> GenerationOptions:
        """``generation`` validated over this model's decoding defaults, once.

        Pass the result as ``summarize(dialogues, options=...)`` to summarize many times with
        options checked once (``dialogsum serve`` does). A bad option is a ConfigError naming
        it and the valid ones.
        """
        refused = self.sampling_refused_by
        options = parse_generation(generation, self.manifest.generation, no_sampling=refused)
        if options.adapter is None:
            return options
        # An adapter brings its own decoding defaults (those it was tuned with).
        defaults = self.adapter(options.adapter).manifest.generation
        return parse_generation(generation, defaults, no_sampling=refused)

    @property
    def _backend_named(self) -> str:
        """The backend as errors name it: "'onnxruntime' backend", and a plugin's distribution
        ("'mine' backend (dialogsum-mine 0.1.0)"), whose author the error is for."""
        registered = get_registry(self._plugins).backends.get(self.backend)
        if registered is None or is_core_source(registered.source):
            return f"'{self.backend}' backend"
        return f"'{self.backend}' backend ({registered.source})"

    @property
    def sampling_refused_by(self) -> str | None:
        """The backend's name when it cannot sample (``do_sample`` and the sampling options are
        refused); None when it can."""
        return None if self._predictor.samples else self.backend

    def _options(
        self, options: object, generation: dict[str, Any], caller: str
    ) -> GenerationOptions:
        """The generation options a call was given: ``options`` as they are (from
        :meth:`generation_options`), a mapping of their fields validated, or ``generation``
        (keywords) validated where ``options`` is None."""
        if options is None:
            return self.generation_options(**generation)
        if isinstance(options, GenerationOptions):
            return options
        if isinstance(options, Mapping):
            return self.generation_options(**{str(key): v for key, v in options.items()})
        raise ConfigError(
            f"{caller} got options={options!r} ({type(options).__name__}); give the options "
            f"from generation_options(), a mapping of their fields such as "
            f"{{'num_beams': 4}}, or keywords: summarize(dialogues, num_beams=4)."
        )

    def adapters(self) -> dict[str, AdapterInfo]:
        """The adapters served beside the base model, by name (a multi-adapter export's).

        Choose one per call with ``summarize(dialogues, adapter=NAME)``; none is the base.
        """
        return self._predictor.adapters()

    def adapter(self, name: str) -> AdapterInfo:
        """The loaded adapter ``name``, or an error listing the loaded ones."""
        found = self.adapters().get(name)
        if found is None:
            raise UnknownAdapterError(name, list(self.adapters()))
        return found

    def load_adapter(self, name: str, path: str | Path) -> AdapterInfo:
        """Serve the adapter in ``path`` as ``name`` from now on, beside the others.

        ``path`` is an adapter folder of a multi-adapter export, or a LoRA or prompt-tuning
        run (its folder or its ``model`` folder) of this model's base. Atomic: a failure
        changes nothing, and summaries running meanwhile finish unchanged.
        """
        check_adapter_name(name)
        folder = Path(path).expanduser()
        if not folder.exists():
            raise ModelError(f"No adapter at {folder}: it does not exist{near_miss(folder)}")
        return self._predictor.load_adapter(name, folder)

    def unload_adapter(self, name: str) -> AdapterInfo:
        """Stop serving adapter ``name``; return what it was."""
        return self._predictor.unload_adapter(name)

    def summarize(
        self,
        dialogues: list[str],
        *,
        options: GenerationOptions | Mapping[str, Any] | None = None,
        on_summary: OnSummary | None = None,
        **generation: Any,
    ) -> list[str]:
        """Summarize each dialogue (batched, longest first); one summary per input, in order.

        ``generation`` takes :class:`~dialogsum.generation.GenerationOptions` fields such as
        ``num_beams=4``, ``max_new_tokens=96`` or ``batch_size=16``, over the model's own
        decoding defaults; or pass ``options`` made by :meth:`generation_options` (or a
        mapping of the same fields, validated here). ``on_summary(index, summary)``, if given,
        is called once per dialogue as soon as its summary is final (from the thread running
        the model): with the onnxruntime backend a dialogue whose search ends early is
        reported before the rest of its batch; other backends report each summary when their
        batch (or the call) ends.
        """
        # A list from here on (a generator would be spent by the backend before the answer is
        # checked); a bare string or an empty dialogue is the caller's error, named as such.
        dialogues = check_dialogues(dialogues)
        if options is not None and generation:
            raise ConfigError(
                f"summarize() got options= and {', '.join(sorted(generation))}: give the "
                f"generation options one way, either as keywords or as options."
            )
        options = self._options(options, generation, "summarize()")
        if not dialogues:
            return []
        predictor = self._predictor
        if on_summary is not None:
            return self._run(dialogues, predictor.summarize_each, dialogues, options, on_summary)
        return self._run(dialogues, predictor.summarize, dialogues, options)

    def continuous_decoder(
        self, settings: ContinuousSettings | None = None
    ) -> ContinuousDecoder | None:
        """A continuous-batching decoder over this model, or None where its backend has none.

        Rows (dialogues with options from :meth:`generation_options`, adapters named in them)
        are added from any thread; one thread calls ``step()`` until it returns False. Each row
        joins the running decode at the next step and is answered as soon as its summary is
        final, with exactly the summary :meth:`summarize` gives it (see
        :mod:`dialogsum.continuous`). ``dialogsum serve --batching continuous`` runs one.
        """
        decoder = self._predictor.continuous_decoder(settings or ContinuousSettings())
        return None if decoder is None else CheckedDecoder(decoder, self._backend_named)

    def summarize_rows(
        self,
        dialogues: list[str],
        adapters: list[str | None],
        options: GenerationOptions,
        *,
        on_summary: OnSummary | None = None,
        on_partial: OnSummary | None = None,
    ) -> list[str]:
        """Summarize dialogues that each name their adapter (None: the base), in one call.

        ``options`` come from :meth:`generation_options`; ``adapters[i]`` replaces its
        ``adapter`` for dialogue ``i``. ``on_summary(index, summary)`` is called once per
        dialogue when its summary is final, ``on_partial(index, text)`` with the summary
        decoded so far where the backend can tell (greedy decoding). ``dialogsum serve``
        batches requests for different adapters through it. An adapter that is not loaded
        fails the whole call with :class:`~dialogsum.adapter_serving.UnknownAdapterError`.
        """
        dialogues = check_dialogues(dialogues)
        options = self._options(options, {}, "summarize_rows()")
        if len(adapters) != len(dialogues):
            raise ConfigError(
                f"summarize_rows() got {len(dialogues)} dialogues and {len(adapters)} adapters; "
                f"give one adapter (or None, the base) per dialogue."
            )
        if not dialogues:
            return []
        rows = self._predictor.summarize_rows
        return self._run(dialogues, rows, dialogues, adapters, options, on_summary, on_partial)

    def _run(self, dialogues: list[str], call: Callable[..., Any], *args: Any) -> list[str]:
        """``call(*args)``, the predictor's answer checked; a backend's own failure named."""
        try:
            summaries = call(*args)
        except DialogsumError:
            raise
        except Exception as exc:  # a backend's own failure, named (a plugin's included)
            raise BackendError(
                f"The {self._backend_named} failed: {type(exc).__name__}: {first_line(exc)}."
            ) from exc
        self._check_summaries(dialogues, summaries)
        return summaries

    def _check_summaries(self, dialogues: list[str], summaries: Any) -> None:
        # One string per dialogue is every backend's contract; a plugin that breaks it would
        # otherwise hand back a short list (a server's request then waits for ever) or None.
        if (
            not isinstance(summaries, list)
            or len(summaries) != len(dialogues)
            or not all(isinstance(summary, str) for summary in summaries)
        ):
            got = type(summaries).__name__
            if isinstance(summaries, list):
                kinds = ", ".join(sorted({type(item).__name__ for item in summaries}))
                got = f"{len(summaries)} items ({kinds or 'none'})"
            raise PluginError(
                f"The '{self.backend}' backend broke its contract: summarize() of "
                f"{len(dialogues)} dialogues returned {got}, not one string per dialogue in "
                f"input order. Fix the backend (dialogsum.testing.BackendContract checks it)."
            )

    def evaluate(
        self,
        data: DataSource | list[Example],
        split: str = "test",
        *,
        predictions_file: str | Path | None = None,
        overwrite: bool = False,
        **generation: Any,
    ) -> dict[str, float]:
        """ROUGE (percent, stemmed) of this model's summaries against the references in ``data``.

        With several references per dialogue (DialogSum test has three), each prediction's
        score is the mean over its references. Rows that repeat a dialogue (as the hub mirror
        does, one reference per row) are merged first. Returns ``rouge1``, ``rouge2``,
        ``rougeL``, ``rougeLsum``, ``n`` (dialogues), ``references`` and timing. An existing
        ``predictions_file`` is refused unless ``overwrite=True``, as ``save`` and ``export``
        refuse an existing folder.
        """
        from dialogsum.evaluate import check_output_file, evaluate_summaries

        options = self.generation_options(**generation)  # a bad option fails before loading
        if predictions_file is not None:  # and a file that cannot be written, before the data
            check_output_file(predictions_file, overwrite=overwrite)
        examples = group_references(load_examples(data, split))
        return evaluate_summaries(
            lambda dialogues: self.summarize(dialogues, options=options),
            examples,
            predictions_file=predictions_file,
            overwrite=overwrite,
        )

    def merge(self) -> Summarizer:
        """Fold the adapter (LoRA, IA3, any peft method that merges) into the base weights.

        Returns a new Summarizer holding a plain transformers model, which saves as a full model
        and exports without peft. A model without an adapter is returned as it is. Prompt tuning
        has no weights to fold: :meth:`export` bakes its soft prompt into the exported encoder.
        """
        from dialogsum.adapters import is_prompt_learning, merged_copy

        torch_model = self._torch("merge")
        if not self.manifest.peft:
            return self
        if is_prompt_learning(torch_model.model):
            raise ConfigError(
                f"A '{self.method}' model has no adapter weights to merge: its soft prompt is an "
                f"input, not a weight. Export it instead (export(dir)), which bakes the prompt "
                f"into the exported encoder."
            )
        manifest = self.manifest.model_copy(update={"peft": False, "merged": True})
        merged = TorchModel(merged_copy(torch_model.model), torch_model.tokenizer, manifest)
        result = self._serve_in_memory(merged)
        result.training = self.training
        return result

    def export(
        self,
        path: str | Path,
        *,
        backend: str = "onnxruntime",
        overwrite: bool = False,
        adapters: Mapping[str, str | Path] | None = None,
        progress: bool = True,
        **options: Any,
    ) -> Path:
        """Export into a self-contained folder that ``backend`` serves; return the folder.

        With ``adapters`` (name -> a LoRA or prompt-tuning run of this model), the folder holds
        this model once and every adapter beside it, unmerged, each chosen per call with
        ``summarize(..., adapter=NAME)`` (the onnxruntime backend; see docs/serving.md).

        ``options`` are the backend's export options (``dialogsum plugins`` lists them; the
        onnxruntime backend takes ``quantize="int8"``). Adapters are merged first (a
        prompt-tuned model's soft prompt is baked in where the backend can), and the export is
        checked against this PyTorch model, with the results in its ``dialogsum.json``. Load
        it with ``Summarizer.from_pretrained(path)``: the manifest names its backend. An
        existing folder is replaced only with ``overwrite=True``. ``progress=False`` hides the
        progress bar over the export's stages (shown on a terminal only).
        """
        from dialogsum.exporting import export_model

        registry = get_registry(self._plugins)
        validated = registry.export_options(backend, options)  # before anything is loaded
        torch_model = self._torch("export")
        source_model = self.source or self.manifest.base_model
        return export_model(
            registry,
            backend,
            torch_model,
            path,
            validated,
            source_model=source_model,
            overwrite=overwrite,
            adapters=check_adapters(adapters or {}, torch_model, source_model),
            progress=progress,
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
        torch_model = self._torch("save")
        manifest = self.manifest
        if generation is not None:
            defaults = parse_generation(generation).model_dump(exclude_unset=True)
            manifest = manifest.model_copy(update={"generation": defaults})
        return save_model(
            torch_model.model, torch_model.tokenizer, manifest, path, overwrite=overwrite
        )


def _chosen_for(error: ConfigError, name_or_path: str | Path, backend: str) -> str:
    """``error`` (options the backend refuses) with why that backend was chosen, where
    ``name_or_path`` is no local folder: it was taken for a hub id (``served_int8`` for the
    export ``served-int8``)."""
    from dialogsum.modeling import bundled_model_dir, no_such_folder

    path = Path(name_or_path).expanduser()
    if path.exists() or bundled_model_dir(str(name_or_path)) is not None:
        return str(error)
    return (
        f"{clause(error)}. '{name_or_path}' is no local folder, so it was taken for a hub id, "
        f"which backend '{backend}' serves (an export folder chooses its own backend). "
        f"{no_such_folder(path)}"
    )
