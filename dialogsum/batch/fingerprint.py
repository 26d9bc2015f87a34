"""What a batch job's model is made of, as fingerprints of its local files.

A job's record names its model by path; a model retrained or exported again to the same path
(or an adapter's files changed) keeps that name but not its summaries. So the record also holds
a fingerprint of each local folder the summaries come from: the model, a base model it names
(in its manifest or the options) and any folder or file a backend option names (adapters). A
hub id has no local files and gets none; the bundled model's folder is fingerprinted like any
other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from dialogsum.errors import DialogsumError
from dialogsum.modeling import MANIFEST_NAME, read_manifest, resolve_model_dir

#: Files up to this size are hashed whole: configs, manifests, tokenizers, adapter weights and
#: small models. Larger files (a full model's weights, gigabytes) are known by size and
#: modification time, as make and rsync know them: hashing them would cost seconds per
#: gigabyte on every run, and any save or export rewrites them with a new time.
HASHED_BYTES = 16 * 1024 * 1024

#: Files that make a folder a model or an adapter (any other folder an option names is not
#: fingerprinted: it is no part of the model).
_MODEL_FILES = ("config.json", "adapter_config.json", MANIFEST_NAME)


def model_fingerprints(model: str, backend_options: Mapping[str, Any]) -> dict[str, str]:
    """``{absolute path: sha256}`` for each local folder (or file) the summaries of ``model``
    served with ``backend_options`` come from. What cannot be resolved locally (a hub id, a
    missing path, which fails to load later with its own message) is left out."""
    found: dict[str, str] = {}
    for path in _model_paths(model, backend_options):
        key = str(path)
        if key not in found:
            found[key] = fingerprint(path)
    return found


def fingerprint(path: Path) -> str:
    """A sha256 over the files of ``path`` (a folder, recursively, or one file): each file's
    relative path, then its content's hash, or its size and modification time when it is over
    :data:`HASHED_BYTES`."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        name = file.name if file == path else file.relative_to(path).as_posix()
        digest.update(f"{name}\0{_file_print(file)}\n".encode())
    return "sha256:" + digest.hexdigest()


def _file_print(file: Path) -> str:
    stat = file.stat()
    if stat.st_size > HASHED_BYTES:
        return f"size={stat.st_size} mtime_ns={stat.st_mtime_ns}"
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        while block := handle.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def _model_paths(model: str, backend_options: Mapping[str, Any]) -> Iterator[Path]:
    folder = _local_model(model)
    if folder is not None:
        yield folder
        try:
            base = read_manifest(folder).base_model
        except DialogsumError:  # read again when the model loads, and reported there
            base = None
        base_folder = _local_model(base) if base else None
        if base_folder is not None:
            yield base_folder
    for value in _strings(backend_options):
        path = _local_option(value)
        if path is not None:
            yield path


def _local_model(name: str) -> Path | None:
    """The local folder ``name`` loads from, or None (a hub id, or a path that fails later)."""
    try:
        folder = resolve_model_dir(name)
    except DialogsumError:
        return None
    return folder.resolve() if folder is not None else None


def _local_option(value: str) -> Path | None:
    """The file, or the model or adapter folder, an option's value names (a base model or an
    adapter, as a path or the bundled model's name), or None."""
    path = Path(value).expanduser()
    if path.is_file():
        return path.resolve()
    folder = _local_model(value)
    if folder is not None and any((folder / name).is_file() for name in _MODEL_FILES):
        return folder
    return None


def _strings(value: Any) -> Iterator[str]:
    """Every string in an options value, nested mappings and lists included (adapters are
    ``{name: folder}``)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)
