"""Export as a backend capability: the staged folder, the shared manifest, the dispatch.

``Summarizer.export(path, backend=NAME, **options)`` and ``dialogsum export --backend NAME``
come here. The core checks the target, stages a folder, hands the backend an
:class:`ExportJob` and moves the folder into place when the backend returns; the backend
writes its own files and calls :meth:`ExportJob.write_manifest` with its own section of the
export record. The core knows no backend's field names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from dialogsum.adapters import is_peft, is_prompt_learning
from dialogsum.errors import (
    ConfigError,
    DialogsumError,
    ModelError,
    PluginError,
    clause,
    logger,
    near_miss,
)
from dialogsum.files import check_writable, staged_folder
from dialogsum.modeling import MANIFEST_NAME, ExportInfo, ModelManifest, read_manifest

if TYPE_CHECKING:
    from dialogsum.interfaces import TorchModel
    from dialogsum.registry import Registry


class ExportStages:
    """A progress bar over an export's stages, each named as it starts (see
    :meth:`ExportJob.stages`).

    An export spends minutes in steps that report nothing themselves (tracing, quantization,
    a parity check per adapter); the bar says which one is running and how many are left.
    It is tqdm's, as dialogsum's other bars, and off with ``progress=False``. Where stderr is
    no terminal (a CI log, a file) a bar would be carriage-return noise, so each stage is
    logged as one INFO line instead.
    """

    def __init__(self, total: int, *, enabled: bool = True) -> None:
        from tqdm.auto import tqdm

        # disable=None: tqdm shows the bar only where its stream (stderr) is a terminal.
        self._bar = tqdm(
            total=total, desc="export", unit="stage", disable=None if enabled else True
        )
        self._log = enabled and self._bar.disable
        self._total = total
        self._started = 0

    def start(self, stage: str) -> None:
        """Mark the stage in progress as done, and show ``stage`` as the one now running."""
        if self._started:
            self._bar.update(1)
        self._started += 1
        self._bar.set_postfix_str(stage)
        if self._log:
            logger.info("export stage %d of %d: %s", self._started, self._total, stage)

    def __enter__(self) -> ExportStages:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is None and self._started:
            self._bar.update(1)  # the last stage ended with the export
        self._bar.close()


@dataclass
class ExportJob:
    """What a backend's ``export`` gets: the model to export and the staged folder to fill.

    ``model``, ``tokenizer`` and ``manifest`` are the PyTorch model as the Summarizer holds it
    (a peft model for an adapter; possibly on a GPU, in bfloat16: copy it before changing it),
    ``source_model`` where it was loaded from, ``folder`` the staged folder to write into.
    """

    backend: str
    model: Any
    tokenizer: Any
    manifest: ModelManifest
    source_model: str | None
    folder: Path
    options: dict[str, Any] = field(default_factory=dict)
    #: Adapters to serve unmerged beside the base, by name (only for a backend that sets
    #: ``exports_adapters``): each a checked folder of peft's adapter files and its manifest,
    #: tuned from this base. :meth:`adapter_model` loads one for a parity check.
    adapters: dict[str, Path] = field(default_factory=dict)
    #: The record last written by :meth:`write_manifest` (None before the first call).
    record: ExportInfo | None = None
    #: Whether the caller wants a progress bar (``export(..., progress=False)``, ``dialogsum
    #: export --no-progress``): give :meth:`stages` a long export's steps.
    progress: bool = True

    def stages(self, total: int) -> ExportStages:
        """A progress bar over ``total`` stages; call its ``start(name)`` as each begins.

        Use it as a context manager. It is shown only when ``progress`` is on and stderr is a
        terminal.
        """
        return ExportStages(total, enabled=self.progress)

    @property
    def adapter(self) -> Literal["merged", "baked"] | None:
        """How the model's adapter reaches the export: "baked" (a soft prompt), "merged", None."""
        if is_prompt_learning(self.model):
            return "baked"
        if is_peft(self.model) or self.manifest.merged:
            return "merged"
        return None

    def adapter_model(self, name: str) -> TorchModel:
        """Adapter ``name`` as a peft model on a float32 CPU copy of the base, with its manifest.

        Each call makes its own copy: load one adapter at a time and drop it when done, so an
        export of many adapters holds the base twice at most, not once per adapter.
        """
        import copy

        import torch

        from dialogsum.modeling import TorchModel, attach_adapter

        base = copy.deepcopy(self.model).to(device="cpu", dtype=torch.float32)
        folder = self.adapters[name]
        return TorchModel(attach_adapter(base, folder), self.tokenizer, read_manifest(folder))

    def write_manifest(
        self,
        backend_data: Mapping[str, Any] | None = None,
        *,
        files: list[str] | None = None,
        parity: Mapping[str, Any] | None = None,
        versions: Mapping[str, str] | None = None,
    ) -> ModelManifest:
        """Write ``dialogsum.json`` into the folder with this export's record; return it.

        Call it once the files are written (a backend's own loader may read the manifest, to
        run its parity check) and again with the parity results; each call replaces the
        record, keeping what an earlier call gave and this one leaves out.
        """
        from dialogsum._version import __version__

        previous = self.record or ExportInfo(
            backend=self.backend,
            source_model=self.source_model,
            adapter=self.adapter,
            versions={"dialogsum": __version__},
            options=self.options,
        )
        given: dict[str, Any] = {"versions": {**previous.versions, **(versions or {})}}
        if files is not None:
            given["files"] = list(files)
        if parity is not None:
            given["parity"] = dict(parity)
        if backend_data is not None:
            given["backend_data"] = dict(backend_data)
        record = previous.model_copy(update=given)
        self.record = record
        manifest = self.manifest.model_copy(
            update={
                "dialogsum_version": __version__,
                # The export is a plain model: an adapter was merged or baked into it.
                "peft": False,
                "merged": self.adapter == "merged",
                "export": record,
            }
        )
        (self.folder / MANIFEST_NAME).write_text(
            manifest.model_dump_json(indent=2) + "\n", encoding="utf-8"
        )
        return manifest


def export_model(
    registry: Registry,
    backend: str,
    torch_model: TorchModel,
    path: str | Path,
    options: BaseModel,
    *,
    source_model: str | None,
    overwrite: bool = False,
    adapters: dict[str, Path] | None = None,
    progress: bool = True,
) -> Path:
    """Export ``torch_model`` to ``path`` with ``backend`` (its export ``options`` validated).

    ``adapters`` (name -> a folder :func:`check_adapters` checked) are served unmerged beside
    it, by a backend that ``exports_adapters``. ``progress`` lets the backend show a progress
    bar over its stages (:meth:`ExportJob.stages`).

    The folder appears only complete: written under a temporary name and renamed into place,
    removed if the backend raises (a failed parity check included).
    """
    implementation = registry.backend(backend)
    source = registry.backends[backend].source
    if adapters and not implementation.exports_adapters:
        able = [name for name in registry.backends if registry.backend(name).exports_adapters]
        raise ConfigError(
            f"Backend '{backend}' ({source}) cannot serve adapters unmerged beside the base; "
            f"export them with {' or '.join(able) or 'a backend that can'}, or merge each into "
            f"its own export (dialogsum export --model RUN)."
        )
    target = Path(path).expanduser()
    check_writable(target, overwrite=overwrite)
    with staged_folder(target, overwrite=overwrite) as staging:
        job = ExportJob(
            backend=backend,
            model=torch_model.model,
            tokenizer=torch_model.tokenizer,
            manifest=torch_model.manifest,
            source_model=source_model,
            folder=staging,
            options=options.model_dump(mode="json"),
            adapters=dict(adapters or {}),
            progress=progress,
        )
        try:
            implementation.export(job, options)
        except DialogsumError:
            raise
        except ImportError as exc:
            hint = implementation.install_hint or f"install what {source} depends on"
            raise PluginError(
                f"Exporting with backend '{backend}' ({source}) needs a missing package: "
                f"{clause(exc)}. To fix: {clause(hint)}."
            ) from exc
        except Exception as exc:
            raise ModelError(
                f"Backend '{backend}' ({source}) failed to export: {type(exc).__name__}: "
                f"{clause(exc)}. Nothing was written."
            ) from exc
        written = read_manifest(staging).export if (staging / MANIFEST_NAME).is_file() else None
        if written is None or written.backend != backend:
            raise PluginError(
                f"Backend '{backend}' ({source}) exported without writing its manifest: its "
                f"export() must call job.write_manifest(...) (python -m pydoc "
                f"dialogsum.plugin_api.ExportJob). Nothing was written."
            )
    logger.info("exported for the %s backend to %s", backend, target)
    return target


def check_adapters(
    adapters: Mapping[str, str | Path], base: TorchModel, base_name: str | None
) -> dict[str, Path]:
    """Each adapter's folder (name -> the folder of peft's files), checked before any export.

    Refused: a bad name, a folder that is no LoRA or prompt-tuning adapter, an adapter tuned
    from another base model (both names are given), a base that is itself tuned.
    """
    from dialogsum.adapter_serving import check_adapter_name, same_base
    from dialogsum.adapters import is_peft

    if adapters and (is_peft(base.model) or base.manifest.merged):
        raise ConfigError(
            "Adapters are exported beside a base model, and this model is tuned itself; load "
            "the base model they were tuned from and export that with the adapters."
        )
    checked: dict[str, Path] = {}
    for name, path in adapters.items():
        check_adapter_name(name)
        folder = Path(path).expanduser()
        if (folder / "model" / "adapter_config.json").is_file():
            folder = folder / "model"  # a run folder: its model
        if not folder.exists():
            meant = near_miss(folder, folders_only=True)
            raise ConfigError(f"Adapter {name!r}: there is no folder {folder}{meant}")
        if not (folder / "adapter_config.json").is_file():
            raise ConfigError(
                f"Adapter {name!r}: {folder} holds no adapter (adapter_config.json); give a LoRA "
                f"or prompt-tuning run's folder."
            )
        kind = _peft_type(folder / "adapter_config.json")
        if kind not in ("LORA", "PROMPT_TUNING"):
            raise ConfigError(
                f"Adapter {name!r}: {folder} holds an adapter of type {kind or 'unknown'}; "
                f"adapters are exported beside the base only when LoRA or prompt tuning. Merge "
                f"it into an export of its own instead (dialogsum export --model {path})."
            )
        recorded = read_manifest(folder).base_model
        if recorded and base_name and not same_base(recorded, base_name):
            raise ConfigError(
                f"Adapter {name!r} ({folder}) was tuned from {recorded}, and the base being "
                f"exported is {base_name}: every adapter must share the base. Load {recorded} "
                f"to export it."
            )
        checked[name] = folder
    return checked


def _peft_type(config: Path) -> str:
    """The ``peft_type`` an adapter_config.json names, upper-case ("" if it names none)."""
    import json

    try:
        kind = json.loads(config.read_text(encoding="utf-8")).get("peft_type")
    except (OSError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{config} is unreadable or corrupt: {clause(exc)}.") from exc
    return str(kind or "").upper()
