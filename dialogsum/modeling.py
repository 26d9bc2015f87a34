"""Loading and saving models: full models, PEFT adapters that record their base, and manifests.

A folder dialogsum saves holds the transformers (or peft) files, the tokenizer and
``dialogsum.json``: the method that produced it, its base model, and the prompt and lengths it
was tuned with, so that a reload summarizes exactly as the tuned model did.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dialogsum.data import DataOptions
from dialogsum.errors import ModelError, clause, logger, near_miss
from dialogsum.files import check_writable, staged_folder
from dialogsum.hub import hub_reachable, offline_reason, pretrained, refuse_pickles

__all__ = [
    "BUNDLED_MODELS",
    "DEFAULT_BACKEND",
    "DEFAULT_MODEL",
    "MANIFEST_NAME",
    "ExportInfo",
    "ModelManifest",
    "TorchModel",
    "check_writable",
    "default_backend",
    "load_model",
    "read_manifest",
    "resolve_model_dir",
    "save_model",
]

MANIFEST_NAME = "dialogsum.json"
MANIFEST_FORMAT = 1
DEFAULT_MODEL = "google/flan-t5-base"

#: The backend that serves a folder whose manifest has no export record.
DEFAULT_BACKEND = "torch"


#: Fields of an export record written before 0.2, when only onnxruntime exported: they now
#: live in the record's ``backend_data`` (the onnxruntime backend's own section).
_LEGACY_ONNX_FIELDS = ("quantize", "prompt_tokens", "onnxruntime_version", "cross_attention")


class ExportInfo(BaseModel):
    """The export record in an export folder's manifest: what every export shares.

    ``backend`` names the backend that serves the folder, so a loader picks it from the
    manifest instead of guessing from file names. ``backend_data`` is that backend's own
    section: the core never reads it.
    """

    model_config = ConfigDict(extra="ignore")

    #: The backend that wrote the folder and serves it.
    backend: str
    #: The model exported (folder or hub id), when known.
    source_model: str | None = None
    #: How an adapter reached the export: "merged" (folded into the weights), "baked" (a soft
    #: prompt built into the exported encoder) or None (a plain model).
    adapter: Literal["merged", "baked"] | None = None
    #: Package versions the export was written with (dialogsum, torch, the backend's runtime).
    versions: dict[str, str] = Field(default_factory=dict)
    #: The export step's options, as validated (the backend's ExportOptions).
    options: dict[str, Any] = Field(default_factory=dict)
    #: The files the backend wrote (besides tokenizer, generation config and manifest).
    files: list[str] = Field(default_factory=list)
    #: The parity check against the PyTorch model, as the backend recorded it.
    parity: dict[str, Any] = Field(default_factory=dict)
    #: The backend's own section.
    backend_data: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _read_legacy_onnx_record(cls, raw: Any) -> Any:
        # Records written before 0.2 had ONNX fields at the top level and no "backend" field
        # in the oldest ones; they are read into today's shape, so those exports keep loading.
        if not isinstance(raw, dict) or raw.get("format") != "onnx":
            return raw
        record = {k: v for k, v in raw.items() if k not in (*_LEGACY_ONNX_FIELDS, "format")}
        record.setdefault("backend", "onnxruntime")
        section = {k: raw[k] for k in _LEGACY_ONNX_FIELDS if k in raw}
        # The per-beam cache layout ("row") was the default before the field existed.
        section.setdefault("cross_attention", "row")
        record["backend_data"] = section
        record["options"] = {"quantize": raw.get("quantize")}
        if raw.get("onnxruntime_version"):
            record["versions"] = {"onnxruntime": raw["onnxruntime_version"]}
        return record


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
    #: Set in folders an export wrote: which backend serves them, and how they were made.
    export: ExportInfo | None = None
    data: DataOptions = DataOptions()


@dataclass
class TorchModel:
    """A PyTorch seq2seq model in memory with what summarizes it the way it was tuned.

    ``model`` is a transformers seq2seq model or a peft model around one, ``tokenizer`` a
    transformers tokenizer, ``manifest`` the model's :class:`ModelManifest` (method, base
    model, prompt, lengths, decoding defaults).
    """

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
            raise ModelError(no_such_folder(path))
        return None
    if not path.is_dir():
        raise ModelError(
            f"{path} is a file; a model is a folder (with config.json or adapter_config.json)."
        )
    if not (path / MANIFEST_NAME).exists() and (path / "model" / MANIFEST_NAME).exists():
        return path / "model"
    return path


def no_such_folder(path: Path) -> str:
    """ "No model folder at PATH: it does not exist", with the likeliest folder meant (a typo
    such as ``runs/lroa`` for ``runs/lora``) or what the parent folder holds."""
    return f"No model folder at {path}: it does not exist{near_miss(path, folders_only=True)}"


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


def local_manifest(name_or_path: str | Path) -> ModelManifest | None:
    """The manifest of the local folder ``name_or_path`` names (None for a hub id); a
    :class:`ModelError` where the folder is missing or its manifest unreadable."""
    model_dir = resolve_model_dir(name_or_path)
    return read_manifest(model_dir) if model_dir is not None else None


def default_backend(name_or_path: str | Path) -> str:
    """The backend that serves ``name_or_path``: the one its export record names, else torch.

    A hub id, a bundled model and a folder that ``save`` wrote are served by torch; an export
    folder by the backend its manifest records (``onnxruntime`` for ONNX exports). A folder
    whose manifest cannot be read also gets torch: loading it then reports what is wrong, in
    that backend's words. A folder named as a path that does not exist is a
    :class:`ModelError` (``No model folder at ...``) here: the options of a backend guessed for
    it were checked first, and refused as the wrong backend's.
    """
    model_dir = resolve_model_dir(name_or_path)
    try:
        manifest = read_manifest(model_dir) if model_dir is not None else None
    except ModelError:
        return DEFAULT_BACKEND
    export = manifest.export if manifest is not None else None
    return export.backend if export is not None else DEFAULT_BACKEND


def load_model(
    name_or_path: str | Path, *, base_model: str | None = None, device: str | None = None
) -> TorchModel:
    """Load a model folder or hub id (full model or PEFT adapter) with its tokenizer."""
    from transformers import AutoModelForSeq2SeqLM

    model_dir = resolve_model_dir(name_or_path)
    source = str(model_dir) if model_dir is not None else str(name_or_path)
    manifest = (
        read_manifest(model_dir) if model_dir is not None else ModelManifest(base_model=source)
    )
    if manifest.export is not None:
        source_model = manifest.export.source_model
        raise ModelError(
            f"{model_dir} is an export for the {manifest.export.backend} backend, which the "
            f"torch backend cannot load. Serve it with backend='{manifest.export.backend}' (the "
            f"default for an export), or load the PyTorch model it was exported from"
            + (f" ({source_model})." if source_model else ".")
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
    return TorchModel(model=model, tokenizer=tokenizer, manifest=manifest)


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The start of an exception's message (library errors can run to pages), without its
    closing period: the messages that quote it go on after it."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return clause(text) if len(text) <= limit else text[:limit] + " (cut short)"


def _from_pretrained(cls: Any, source: str, what: str) -> Any:
    try:
        return pretrained(cls, source, weights=what == "model")
    except ModelError:
        raise
    except Exception as exc:  # corrupt files raise anything from OSError to SafetensorError
        if Path(source).exists():
            where = "its folder"
        elif Path(source).parent.is_dir() and Path(source).parent != Path():
            # 'runs/lroa' reads as a hub id, but 'runs' is a local folder: a mistyped path.
            raise ModelError(
                f"{no_such_folder(Path(source))} Nor is '{source}' a model on the Hugging Face "
                f"hub or in its local cache."
            ) from exc
        elif not hub_reachable():
            where = (
                f"the local cache: it is not a local folder, and {offline_reason()}, so the "
                f"hub was not tried"
            )
        else:
            where = "the Hugging Face hub (it is not a local folder)"
        import difflib

        bundled = difflib.get_close_matches(source, BUNDLED_MODELS, n=1, cutoff=0.8)
        meant = f"Did you mean the bundled '{bundled[0]}'? " if bundled else ""
        raise ModelError(
            f"Could not load the {what} '{source}' from {where}: {type(exc).__name__}: "
            f"{_without_offline_advice(first_line(exc))}. {meant}Give a folder that save() "
            f"wrote, the bundled 'dialogsum-tiny', or a hub id such as {DEFAULT_MODEL} when "
            f"online."
        ) from exc


def _without_offline_advice(text: str) -> str:
    """``text`` without the library's advice to pass ``local_files_only=False``: dialogsum
    chose to stay offline (the hub did not answer), and the caller passed no such option."""
    sentences = text.split(". ")
    kept = [sentence for sentence in sentences if "local_files_only" not in sentence]
    return clause(". ".join(kept)) if kept else text


#: How a user names an adapter's base model, from Python and from the command line.
BASE_MODEL_HINT = (
    'Summarizer.from_pretrained(..., backend_options={"base_model": PATH}) (CLI: --base-model PATH)'
)


def _load_adapter(
    model_dir: Path, manifest: ModelManifest, base_model: str | None
) -> tuple[Any, str]:
    from peft import PeftConfig
    from transformers import AutoModelForSeq2SeqLM

    refuse_pickles(model_dir)
    try:
        config = PeftConfig.from_pretrained(str(model_dir))
    except Exception as exc:
        raise ModelError(f"{model_dir}/adapter_config.json is corrupt: {exc}") from exc
    base = base_model or manifest.base_model or config.base_model_name_or_path
    if not base:
        raise ModelError(
            f"The adapter in {model_dir} does not record its base model; name the model it "
            f"was tuned from: {BASE_MODEL_HINT}."
        )
    # The base may be a bundled model's name (dialogsum-tiny) or a folder: resolve it the way
    # every other model name is resolved, so neither is looked up on the hub.
    try:
        base_dir = resolve_model_dir(base)
    except ModelError as exc:
        raise ModelError(
            f"The adapter in {model_dir} was tuned from '{base}', which could not be loaded "
            f"({exc}). Point to a local copy of that model: {BASE_MODEL_HINT}."
        ) from exc
    base_source = str(base_dir) if base_dir is not None else str(base)
    try:
        base_module = pretrained(AutoModelForSeq2SeqLM, base_source)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(
            f"The adapter in {model_dir} was tuned from '{base}', which could not be loaded "
            f"({type(exc).__name__}: {first_line(exc)}). Point to a local copy of that "
            f"model: {BASE_MODEL_HINT}."
        ) from exc
    model = attach_adapter(base_module, model_dir)
    has_tokenizer = (model_dir / "tokenizer_config.json").exists()
    return model, str(model_dir) if has_tokenizer else base_source


def attach_adapter(base: Any, model_dir: Path) -> Any:
    """The peft adapter saved in ``model_dir`` on ``base`` (a transformers model, changed)."""
    from peft import PeftModel

    refuse_pickles(model_dir)
    try:
        model = PeftModel.from_pretrained(base, str(model_dir))
    except Exception as exc:
        raise ModelError(f"Could not load the adapter weights in {model_dir}: {exc}") from exc
    model.eval()
    return model


#: The files a tokenizer reads its vocabulary from; a folder needs one of them. T5's are
#: tokenizer.json (fast) and spiece.model (sentencepiece); the others are other families'.
TOKENIZER_VOCABULARY = (
    "tokenizer.json",
    "spiece.model",
    "tokenizer.model",
    "sentencepiece.bpe.model",
    "vocab.json",
    "vocab.txt",
)
#: What a folder save() writes for its tokenizer (T5), named when a folder lacks it.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def check_tokenizer_files(folder: Path) -> None:
    """Fail naming the missing files when ``folder`` holds no tokenizer vocabulary.

    Without one, transformers fails deep in sentencepiece with "Either model_file or
    model_proto must be specified", which names neither the folder nor the files.
    """
    if any((folder / name).is_file() for name in TOKENIZER_VOCABULARY):
        return
    missing = [name for name in TOKENIZER_FILES if not (folder / name).is_file()]
    present = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
    raise ModelError(
        f"{folder} has no tokenizer (missing: {', '.join(missing)}; it holds {present}). Copy "
        f"the tokenizer files of the model it was tuned from into it: "
        f"tokenizer.save_pretrained('{folder}') writes them, as save() does."
    )


def _load_tokenizer(source: str, model_dir: Path | None) -> Any:
    from transformers import AutoTokenizer

    if Path(source).is_dir():
        check_tokenizer_files(Path(source))
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
    with staged_folder(target, overwrite=overwrite) as staging:
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
