"""Loading and saving models: full models, PEFT adapters that record their base, and manifests.

A folder dialogsum saves holds the transformers (or peft) files, the tokenizer and
``dialogsum.json``: the method that produced it, its base model, and the prompt and lengths it
was tuned with, so that a reload summarizes exactly as the tuned model did.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dialogsum.data import DataOptions
from dialogsum.errors import ConfigError, ModelError, logger

MANIFEST_NAME = "dialogsum.json"
MANIFEST_FORMAT = 1
DEFAULT_MODEL = "google/flan-t5-base"

#: The backend that serves a folder whose manifest has no export record.
DEFAULT_BACKEND = "torch"


class ExportInfo(BaseModel):
    """What an export folder's manifest records about the export.

    ``backend`` names the backend that serves the folder, so a loader picks it from the
    manifest instead of guessing from file names.
    """

    model_config = ConfigDict(extra="ignore")

    format: Literal["onnx"] = "onnx"
    #: Exports written before this field existed were all onnxruntime exports.
    backend: str = "onnxruntime"
    quantize: Literal["int8"] | None = None
    prompt_tokens: int = Field(0, description="Soft-prompt length baked into the encoder.")
    onnxruntime_version: str = ""
    source_model: str | None = None
    files: list[str] = Field(default_factory=list)
    parity: dict[str, Any] = Field(default_factory=dict)


class ModelManifest(BaseModel):
    """What dialogsum records next to a saved model."""

    model_config = ConfigDict(extra="ignore")

    format: int = MANIFEST_FORMAT
    dialogsum_version: str = ""
    method: str | None = None
    base_model: str | None = None
    peft: bool = False
    #: True when adapter weights were folded into the base weights (``merge``).
    merged: bool = False
    #: Decoding defaults for summarize() (GenerationOptions fields); callers override them.
    generation: dict[str, Any] = Field(default_factory=dict)
    #: Set in ONNX export folders.
    export: ExportInfo | None = None
    data: DataOptions = DataOptions()


@dataclass
class LoadedModel:
    """A torch model, its tokenizer and its manifest."""

    model: Any
    tokenizer: Any
    manifest: ModelManifest


#: Models that ship inside the package, loadable offline by name.
BUNDLED_MODELS = ("dialogsum-tiny",)


def bundled_model_dir(name: str) -> Path | None:
    """The folder of a model shipped inside the package, or None if ``name`` is not one."""
    if name not in BUNDLED_MODELS:
        return None
    folder = Path(__file__).resolve().parent / "models" / name
    if not (folder / "config.json").is_file():
        raise ModelError(
            f"The model '{name}' is not bundled with this version of dialogsum (no weights in "
            f"{folder}). Pass a local model folder or, online, a hub id such as "
            f"{DEFAULT_MODEL}; or build it with recipes/train_dialogsum_tiny.py into that folder."
        )
    return folder


def resolve_model_dir(name_or_path: str | Path) -> Path | None:
    """The local folder to load, or ``None`` for a hub id.

    A bundled model's name (``dialogsum-tiny``) resolves to its folder inside the package, and a
    training run's output folder is accepted too: its final model lives in ``model/``.
    """
    bundled = bundled_model_dir(str(name_or_path)) if isinstance(name_or_path, str) else None
    if bundled is not None and not Path(name_or_path).exists():
        return bundled
    path = Path(name_or_path).expanduser()
    if not path.exists():
        text = str(name_or_path)
        if isinstance(name_or_path, Path) or text.startswith((".", "/", "~")) or text.endswith("/"):
            raise ModelError(f"No model folder at {path}: it does not exist.")
        return None
    if not path.is_dir():
        raise ModelError(
            f"{path} is a file; a model is a folder (with config.json or adapter_config.json)."
        )
    if not (path / MANIFEST_NAME).exists() and (path / "model" / MANIFEST_NAME).exists():
        return path / "model"
    return path


def read_manifest(model_dir: Path) -> ModelManifest:
    """The folder's manifest; a default one for plain transformers folders."""
    file = model_dir / MANIFEST_NAME
    if not file.exists():
        return ModelManifest()
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
        manifest = ModelManifest.model_validate(raw)
    except Exception as exc:
        raise ModelError(
            f"{file} is corrupt ({exc}); restore it or delete it to load the plain model."
        ) from exc
    if manifest.format > MANIFEST_FORMAT:
        raise ModelError(
            f"{file} was written by a newer dialogsum (format {manifest.format}, this one reads "
            f"up to {MANIFEST_FORMAT}); upgrade: pip install -U dialogsum."
        )
    return manifest


def default_backend(name_or_path: str | Path) -> str:
    """The backend that serves ``name_or_path``: the one its export record names, else torch.

    A hub id, a bundled model and a folder that ``save`` wrote are served by torch; an export
    folder by the backend its manifest records (``onnxruntime`` for ONNX exports).
    """
    model_dir = resolve_model_dir(name_or_path)
    if model_dir is None:
        return DEFAULT_BACKEND
    export = read_manifest(model_dir).export
    return export.backend if export is not None else DEFAULT_BACKEND


def load_model(
    name_or_path: str | Path, *, base_model: str | None = None, device: str | None = None
) -> LoadedModel:
    """Load a model folder or hub id (full model or PEFT adapter) with its tokenizer."""
    from transformers import AutoModelForSeq2SeqLM

    model_dir = resolve_model_dir(name_or_path)
    source = str(model_dir) if model_dir is not None else str(name_or_path)
    manifest = (
        read_manifest(model_dir) if model_dir is not None else ModelManifest(base_model=source)
    )
    if model_dir is not None and (model_dir / "adapter_config.json").exists():
        model, tokenizer_source = _load_adapter(model_dir, manifest, base_model)
    else:
        if model_dir is not None and not (model_dir / "config.json").exists():
            raise ModelError(
                f"{model_dir} is not a model folder: it has neither config.json nor "
                f"adapter_config.json. Point to the folder a save or export wrote."
            )
        model = _from_pretrained(AutoModelForSeq2SeqLM, source, "model")
        tokenizer_source = source
    tokenizer = _load_tokenizer(tokenizer_source, model_dir)
    if device is not None:
        model.to(device)
    model.eval()
    return LoadedModel(model=model, tokenizer=tokenizer, manifest=manifest)


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The start of an exception's message: library errors can run to pages."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[:limit] + " ..."


def _from_pretrained(cls: Any, source: str, what: str) -> Any:
    try:
        return cls.from_pretrained(source)
    except Exception as exc:  # corrupt files raise anything from OSError to SafetensorError
        where = (
            "its folder"
            if Path(source).exists()
            else "the Hugging Face hub (it is not a local folder; are you offline?)"
        )
        raise ModelError(
            f"Could not load the {what} '{source}' from {where}: {type(exc).__name__}: "
            f"{first_line(exc)}. Give a folder that save() wrote, or a "
            f"hub id such as {DEFAULT_MODEL} when online."
        ) from exc


def _load_adapter(
    model_dir: Path, manifest: ModelManifest, base_model: str | None
) -> tuple[Any, str]:
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForSeq2SeqLM

    try:
        config = PeftConfig.from_pretrained(str(model_dir))
    except Exception as exc:
        raise ModelError(f"{model_dir}/adapter_config.json is corrupt: {exc}") from exc
    base = base_model or manifest.base_model or config.base_model_name_or_path
    if not base:
        raise ModelError(
            f"The adapter in {model_dir} does not record its base model; pass base_model= "
            f"(CLI: --base-model) naming the model it was tuned from."
        )
    try:
        base_module = AutoModelForSeq2SeqLM.from_pretrained(base)
    except Exception as exc:
        raise ModelError(
            f"The adapter in {model_dir} was tuned from '{base}', which could not be loaded "
            f"({type(exc).__name__}: {first_line(exc)}). Pass "
            f"base_model= (CLI: --base-model) pointing to a local copy of that model."
        ) from exc
    try:
        model = PeftModel.from_pretrained(base_module, str(model_dir))
    except Exception as exc:
        raise ModelError(f"Could not load the adapter weights in {model_dir}: {exc}") from exc
    tokenizer_source = str(model_dir) if (model_dir / "tokenizer_config.json").exists() else base
    return model, tokenizer_source


def _load_tokenizer(source: str, model_dir: Path | None) -> Any:
    from transformers import AutoTokenizer

    tokenizer = _from_pretrained(AutoTokenizer, source, "tokenizer")
    if tokenizer.pad_token_id is None:
        # Never fall back to eos as padding: labels padded with eos teach T5 to stop early.
        raise ModelError(
            f"The tokenizer of '{model_dir or source}' has no pad token; T5 models use '<pad>'. "
            f"Save a tokenizer with a pad token next to the model."
        )
    return tokenizer


def save_model(
    model: Any,
    tokenizer: Any,
    manifest: ModelManifest,
    path: str | Path,
    *,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` (adapter only for PEFT), tokenizer and manifest to ``path``, atomically.

    Files are written into a temporary sibling folder renamed into place when complete, so an
    interrupted save leaves nothing half-written. An existing ``path`` is replaced only with
    ``overwrite=True``.
    """
    from dialogsum._version import __version__

    target = Path(path).expanduser()
    check_writable(target, overwrite=overwrite)
    with staged_folder(target) as staging:
        # Saved models summarize at their tuned length, not transformers' default of 20 tokens.
        previous = model.generation_config.max_new_tokens
        model.generation_config.max_new_tokens = manifest.data.max_target_length
        try:
            model.save_pretrained(str(staging), safe_serialization=True)
        finally:
            model.generation_config.max_new_tokens = previous
        tokenizer.save_pretrained(str(staging))
        manifest = manifest.model_copy(update={"dialogsum_version": __version__})
        (staging / MANIFEST_NAME).write_text(
            manifest.model_dump_json(indent=2) + "\n", encoding="utf-8"
        )
    logger.info("saved %s model to %s", manifest.method or "base", target)
    return target


def check_writable(target: Path, *, overwrite: bool) -> None:
    """Refuse to replace an existing, non-empty folder unless ``overwrite`` is set."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())) and not overwrite:
        raise ConfigError(
            f"{target} already exists and is not empty; choose another folder or pass "
            f"overwrite=True (CLI: --overwrite) to replace it."
        )


@contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """A temporary sibling folder to write into, moved to ``target`` when the block completes.

    On any error the temporary folder is removed and ``target`` is left as it was, so an
    interrupted save or export leaves nothing half-written.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    )
    try:
        yield staging
        replace_folder(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def replace_folder(staging: Path, target: Path) -> None:
    """Move a completed ``staging`` folder to ``target``, replacing what was there."""
    if not target.exists():
        staging.rename(target)
        return
    # A unique name for the old folder: concurrent saves must not collide on it, and it is put
    # back if the new folder cannot be moved in, so a failed overwrite loses nothing.
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    old.rmdir()
    target.rename(old)
    try:
        staging.rename(target)
    except BaseException:
        old.rename(target)
        raise
    if old.is_dir():
        shutil.rmtree(old)
    else:
        old.unlink()
