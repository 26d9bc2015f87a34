"""Loading from the Hugging Face hub safely and, when offline, quickly.

Two rules for every ``from_pretrained`` dialogsum makes:

- **Safetensors only.** Pickle checkpoints (``pytorch_model.bin``) can run arbitrary code when
  loaded; dialogsum asks transformers for safetensors and refuses a folder that holds only a
  pickle, saying how to convert it. ``trust_remote_code`` is never passed. See
  ``docs/security.md``.
- **Offline is noticed at once.** Without a connection, transformers retries the hub for over a
  minute before failing. dialogsum checks once per process whether the hub answers (or whether
  ``HF_HUB_OFFLINE`` is set) and, if not, loads from the local cache only: a cached model still
  loads, anything else fails immediately with a message that says so. That decision is
  dialogsum's own (:func:`hub_reachable`): the process's environment and huggingface_hub's
  settings are left as they were, so other code in the process (an ``InferenceClient``, say)
  goes on working.
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from dialogsum.errors import ModelError

#: Seconds to wait for the hub to accept a connection before working offline.
CONNECT_TIMEOUT = 3.0

_TRUE = ("1", "true", "yes", "on")


def offline_by_setting() -> bool:
    """Whether the user asked for offline mode (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``)."""
    return any(
        os.environ.get(name, "").strip().lower() in _TRUE
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


@functools.lru_cache(maxsize=1)
def hub_reachable() -> bool:
    """Whether the hub (``HF_ENDPOINT``, default huggingface.co) accepts a connection.

    Asked once per process: one failed connection is enough to work from the local cache.
    """
    if offline_by_setting():
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
    except OSError:
        return False
    return True


def offline_reason() -> str:
    """Why the hub is not used, for error messages."""
    if offline_by_setting():
        return "offline mode is set (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE)"
    return "the Hugging Face hub cannot be reached from this machine"


PICKLE_FILES = ("pytorch_model.bin", "adapter_model.bin")


def refuse_pickles(folder: Path) -> None:
    """Raise :class:`ModelError` when ``folder`` holds weights as pickles but not safetensors."""
    if not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    pickles = [name for name in PICKLE_FILES if (folder / name).is_file()]
    pickles += [p.name for p in folder.glob("pytorch_model-*.bin")]
    if not pickles:
        return
    raise ModelError(
        f"{folder} holds its weights only as a pickle ({', '.join(sorted(pickles))}), which can "
        f"run arbitrary code when loaded; dialogsum loads safetensors only. "
        f'If you trust the file, convert it once: python -c "from transformers import '
        f"AutoModelForSeq2SeqLM as M; M.from_pretrained('{folder}').save_pretrained('{folder}', "
        f'safe_serialization=True)" (for an adapter, load it with peft and save_pretrained).'
    )


def pretrained(cls: Any, source: str, *, weights: bool = True) -> Any:
    """``cls.from_pretrained(source)`` with dialogsum's rules (see the module docstring).

    ``weights`` is False for tokenizers and configs, which are not pickles to refuse.
    """
    target = source
    if not Path(source).exists() and not hub_reachable():
        target = str(cached_snapshot(source))
    if not weights:
        return cls.from_pretrained(target)
    refuse_pickles(Path(target))
    model = cls.from_pretrained(target, use_safetensors=True)
    if target != source:
        model.config._name_or_path = source  # as when loaded online: the hub id, not the cache
    return model


def cached_snapshot(repo_id: str) -> Path:
    """The folder of ``repo_id``'s snapshot in the local Hugging Face cache, found without a
    connection (``LocalEntryNotFoundError`` when it is not cached).

    Loading that folder instead of the hub id keeps every later request of transformers on this
    machine: ``local_files_only`` alone is not enough, since transformers still asks the hub
    for an ``adapter_config.json`` beside a model, five times, with back-off. Switching the
    whole process offline (``HF_HUB_OFFLINE``) would also stop the user's other hub calls.
    """
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, local_files_only=True))
