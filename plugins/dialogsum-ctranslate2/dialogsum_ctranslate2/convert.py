"""Converting a dialogsum model folder to CTranslate2's format, once per model and compute type.

The converted model is cached under a key made of the source folder's path, its files' sizes
and modification times, the compute type and the CTranslate2 version, so a changed model is
converted again and an unchanged one is loaded at once. Conversion writes into a temporary
folder renamed into place, so an interrupted conversion leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from dialogsum.plugin_api import (
    MANIFEST_NAME,
    BackendError,
    ConfigError,
    is_prompt_learning,
    load_model,
    merged_copy,
    read_manifest,
    resolve_model_dir,
)

#: Files CTranslate2's converted folder keeps beside model.bin for dialogsum to read back.
KEPT = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", MANIFEST_NAME)


def cache_root(cache_dir: str | None) -> Path:
    """Where converted models live."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dialogsum" / "ctranslate2"


def _fingerprint(folder: Path, compute_type: str, base_model: str | None) -> str:
    import ctranslate2

    digest = hashlib.sha256()
    digest.update(
        f"{folder.resolve()}|{compute_type}|{base_model}|{ctranslate2.__version__}".encode()
    )
    for path in sorted(folder.iterdir()):
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def converted_model(
    model_dir: Path | str,
    *,
    compute_type: str,
    cache_dir: str | None = None,
    base_model: str | None = None,
) -> Path:
    """The CTranslate2 folder for ``model_dir`` (converted now if not cached yet)."""
    folder = resolve_model_dir(model_dir)
    if folder is None:
        raise ConfigError(
            f"The ctranslate2 backend serves a local model folder; '{model_dir}' is not one. "
            f"Save the model first (Summarizer.save) and pass that folder."
        )
    manifest = read_manifest(folder)
    if manifest.export is not None:
        raise ConfigError(
            f"{folder} is an export for the {manifest.export.backend} backend; the ctranslate2 "
            f"backend converts the PyTorch model it came from. Pass the folder save() or train "
            f"wrote."
        )
    target = cache_root(cache_dir) / _fingerprint(folder, compute_type, base_model)
    if (target / "model.bin").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        _convert(folder, staging / "model", compute_type, base_model)
        if not target.exists():  # another process may have converted it meanwhile
            os.replace(staging / "model", target)
    except BackendError:
        raise
    except Exception as exc:
        raise BackendError(
            f"CTranslate2 could not convert {folder}: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _convert(folder: Path, output: Path, compute_type: str, base_model: str | None) -> None:
    from ctranslate2.converters import TransformersConverter

    loaded = load_model(folder, base_model=base_model, device="cpu")
    if is_prompt_learning(loaded.model):
        raise ConfigError(
            f"{folder} is a prompt-tuned model: its soft prompt is an input CTranslate2 cannot "
            f"hold. Serve it with the torch backend, or export it to ONNX (export bakes the "
            f"prompt into the encoder)."
        )
    with tempfile.TemporaryDirectory(prefix="dialogsum-ct2-") as scratch:
        plain = Path(scratch) / "plain"
        merged_copy(loaded.model).save_pretrained(plain, safe_serialization=True)
        loaded.tokenizer.save_pretrained(plain)
        TransformersConverter(str(plain)).convert(str(output), quantization=compute_type)
        for name in KEPT:
            if (plain / name).is_file():
                shutil.copy2(plain / name, output / name)
    manifest = loaded.manifest.model_copy(update={"peft": False})
    (output / MANIFEST_NAME).write_text(manifest.model_dump_json(indent=2) + "\n")
    (output / "dialogsum_source.json").write_text(json.dumps({"source": str(folder)}) + "\n")
