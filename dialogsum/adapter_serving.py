"""Adapters served beside one base model: their record, their names, and choosing them per row.

A backend that serves adapters unmerged (the onnxruntime backend does, from a multi-adapter
export) keeps one base model and many small adapters, each chosen per request by name. This
module holds what the core, the service and such backends share: the :class:`AdapterInfo`
record a predictor lists, the rule for adapter names, the error for a name that is not loaded,
and the default way to run rows that ask for different adapters (one call per adapter).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dialogsum.errors import ConfigError, ModelError, PluginError
from dialogsum.modeling import ModelManifest, bundled_model_dir

#: An adapter name: it appears in URLs (``/v1/adapters/{name}``), file names and the OpenAI
#: ``model`` field, so it is kept to characters that need no escaping anywhere.
ADAPTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class AdapterInfo(BaseModel):
    """One adapter a predictor serves beside its base model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    #: The fine-tuning method that made it (``lora``, ``prompt_tuning``).
    method: str
    #: The base model it was tuned from, as its run recorded it.
    base_model: str | None
    #: The adapter's own manifest: its prompt, lengths and decoding defaults.
    manifest: ModelManifest
    #: Memory its weights take in the server, in bytes.
    size_bytes: int = Field(ge=0)
    #: Where it was loaded from (a folder), if known.
    source: str | None = None
    #: What the backend records of it (ranks, adapted modules, soft prompt length, parity).
    details: dict[str, Any] = Field(default_factory=dict)


def check_adapter_name(name: str) -> str:
    """``name`` if it is a valid adapter name, else a ConfigError saying what is allowed."""
    if not isinstance(name, str) or not ADAPTER_NAME.fullmatch(name):
        raise ConfigError(
            f"Invalid adapter name {name!r}: use 1 to 64 letters, digits, '.', '_' or '-', "
            f"starting with a letter or digit (e.g. support, sales-v2)."
        )
    return name


def same_base(recorded: str, served: str) -> bool:
    """Whether an adapter tuned from ``recorded`` fits a base loaded as ``served``.

    The same model has several names: the bundled ``dialogsum-tiny`` is also the path of its
    folder, and a local folder may be named by another path to it. Names that are not folders
    here (hub ids, a folder since moved) must be equal.
    """
    if recorded == served:
        return True
    here = _base_folder(recorded)
    return here is not None and here == _base_folder(served)


def _base_folder(name: str) -> Path | None:
    try:
        bundled = bundled_model_dir(name)
    except ModelError:  # a bundled name whose weights are missing: compare names only
        return None
    path = Path(name).expanduser()
    if bundled is not None and not path.exists():
        return bundled.resolve()
    return path.resolve() if path.is_dir() else None


def meant_adapter(name: str, choices: Sequence[str]) -> str:
    """The hint for a typo, as `` Did you mean 'sales'?``, or "" when no choice is close."""
    from dialogsum.validation import likely_key

    close = likely_key(name, list(choices), {})
    return f" Did you mean {close!r}?" if close else ""


class UnknownAdapterError(ConfigError):
    """A summary asked for an adapter that is not loaded; :attr:`loaded` lists those that are."""

    def __init__(self, name: str, loaded: Sequence[str]) -> None:
        self.name = name
        self.loaded = sorted(loaded)
        if self.loaded:
            listed = ", ".join(self.loaded)
            super().__init__(
                f"No adapter named {name!r} is loaded; loaded: {listed} (or none for the base "
                f"model).{meant_adapter(name, self.loaded)}"
            )
        else:
            super().__init__(
                f"No adapter named {name!r} is loaded: this model serves no adapters. Export "
                f"one with it (dialogsum export --adapter {name}=RUN ...) or leave the adapter "
                f"out to use the base model."
            )


def rows_by_adapter(adapters: Sequence[str | None]) -> dict[str | None, list[int]]:
    """Row indices grouped by the adapter each row asks for, in first-seen order."""
    groups: dict[str | None, list[int]] = {}
    for row, name in enumerate(adapters):
        groups.setdefault(name, []).append(row)
    return groups


def run_grouped(
    adapters: Sequence[str | None],
    run: Callable[[str | None, list[int], Callable[[int, str], None]], list[str]],
    on_summary: Callable[[int, str], None] | None,
) -> list[str]:
    """Run the rows of each adapter together (``run(adapter, rows, report)``), in row order.

    ``report(position, summary)`` from ``run`` is passed on as ``on_summary(row, summary)``.
    """
    summaries: list[str] = [""] * len(adapters)
    for name, rows in rows_by_adapter(adapters).items():

        def report(position: int, summary: str, rows: list[int] = rows) -> None:
            if on_summary is not None:
                on_summary(rows[position], summary)

        got = run(name, rows, report)
        # A short list would otherwise surface as zip()'s ValueError, naming nothing.
        if not isinstance(got, list) or len(got) != len(rows):
            size = f"{len(got)} items" if isinstance(got, list) else type(got).__name__
            raise PluginError(
                f"A backend broke its contract: summarize_each() of {len(rows)} dialogues "
                f"({'the base model' if name is None else f'adapter {name!r}'}) returned "
                f"{size}, not one string per dialogue in input order. Fix the backend "
                f"(dialogsum.testing.BackendContract checks it)."
            )
        for row, summary in zip(rows, got, strict=True):
            summaries[row] = summary
    return summaries
