"""The exceptions dialogsum raises.

Every error a user can meet derives from :class:`DialogsumError`, and its message says what went
wrong, where (file and line, plugin, option) and how to fix it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger("dialogsum")


class DialogsumError(Exception):
    """Base class of every error dialogsum raises on purpose."""


class ConfigError(DialogsumError, ValueError):
    """A user-given option, flag or configuration file is invalid."""


class PluginError(DialogsumError):
    """A plugin failed to load, registered something invalid, or a name clashes or is unknown."""


class DataError(DialogsumError, ValueError):
    """Input data is malformed: a bad line, a missing or empty field, an unreadable source."""


class ModelError(DialogsumError):
    """A model folder is missing, corrupt, or refers to a base model that cannot be found."""


class BackendError(DialogsumError):
    """An inference backend could not load or run a model."""


class MissingDependencyError(DialogsumError, ImportError):
    """An optional dependency is not installed; :attr:`extra` names the extra that brings it.

    Raise it through :func:`require`, so every missing package is reported the same way, with
    the exact ``pip install`` command.
    """

    def __init__(self, message: str, *, extra: str | None, missing: str | None = None) -> None:
        super().__init__(message)
        #: The dialogsum extra (``train``, ``export``, ``cpu-serve``, ``hub``), or None when the
        #: package is a plugin's own dependency.
        self.extra = extra
        #: The top-level module that failed to import.
        self.missing = missing


def clause(text: object) -> str:
    """``text`` (an exception, a plugin's hint) without its closing period, for a message that
    goes on after it: a library's "... in the cached files." followed by ". Give ..." read
    "files.. Give". An ellipsis is kept."""
    words = str(text).strip()
    return words[:-1] if words.endswith(".") and not words.endswith("..") else words


def install_command(extra: str, distribution: str = "dialogsum") -> str:
    """The pip command that installs ``distribution`` with ``extra``, as it was installed: from
    the folder it was installed from (a clone; ``-e`` where editable), else by name."""
    source = installed_from(distribution)
    if source is None:
        return f"pip install '{distribution}[{extra}]'"
    import shlex

    folder, editable = source
    return f"pip install {'-e ' if editable else ''}{shlex.quote(f'{folder}[{extra}]')}"


def installed_from(distribution: str) -> tuple[str, bool] | None:
    """The local folder ``distribution`` was installed from and whether editably (pip's
    ``direct_url.json``), or None: installed by name from a package index, or not at all.
    A clone's extras installed by name would fetch another dialogsum, or fail where it is not
    on the index."""
    import json
    from importlib import metadata
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    # Every copy of its metadata: run from a clone's root, the clone's own *.egg-info (which
    # records no source) comes before the installed one.
    texts = [
        found.read_text("direct_url.json") for found in metadata.distributions(name=distribution)
    ]
    try:
        recorded: Any = next((json.loads(text) for text in texts if text), {})
    except ValueError:
        return None
    url = recorded.get("url", "") if isinstance(recorded, dict) else ""
    if not url.startswith("file://") or not isinstance(recorded.get("dir_info"), dict):
        return None  # by name, or from an archive (whose extras pip takes by name too)
    return url2pathname(urlparse(url).path), bool(recorded["dir_info"].get("editable"))


def require(
    modules: str | tuple[str, ...],
    *,
    extra: str,
    purpose: str,
    distribution: str = "dialogsum",
) -> None:
    """Import ``modules`` or raise :class:`MissingDependencyError` naming the extra to install.

    ``purpose`` says what needs them (``"Exporting to ONNX"``); the message reads
    "Exporting to ONNX needs optimum (No module named 'optimum'): pip install 'dialogsum[export]'."
    """
    import importlib

    for module in (modules,) if isinstance(modules, str) else modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            missing = exc.name or module
            raise MissingDependencyError(
                f"{purpose} needs {module} ({exc}): {install_command(extra, distribution)}.",
                extra=extra,
                missing=missing,
            ) from exc


def near_miss(path: Path, *, folders_only: bool = False) -> str:
    """What to add to "``path`` does not exist": the likeliest entry meant (a typo such as
    ``runs/lroa`` for ``runs/lora``, as ". Did you mean runs/lora?"), or what the parent holds."""
    import difflib

    parent = path.parent
    if not parent.is_dir():
        return f" (nor does {parent})."
    entries = sorted(
        p.name for p in parent.iterdir() if p.name[0] != "." and (p.is_dir() or not folders_only)
    )
    close = difflib.get_close_matches(path.name, entries, n=1, cutoff=0.6)
    if close:
        return f". Did you mean {parent / close[0]}?"
    what = "folders" if folders_only else "files or folders"
    if not entries:
        return f" ({parent} holds no {what})."
    return f" ({parent} holds {', '.join(entries[:10]) + (', ...' if len(entries) > 10 else '')})."
