"""Fixtures of the commands' tests: a model served with an adapter beside it, by the tagging
backend of ``tests/adapter_backend.py`` registered on the process-wide plugin manager (the one
the commands use) for the test's duration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from dialogsum import Summarizer
from dialogsum.modeling import read_manifest
from dialogsum.plugins import get_plugin_manager

from ..adapter_backend import PLUGIN, write_adapter


class Tagging(NamedTuple):
    """The flags that serve the tiny model with the tagging backend and its adapter, and the
    Summarizer they load."""

    flags: list[str]
    summarizer: Summarizer


@pytest.fixture
def tagging(tiny_model_dir: Path, tmp_path: Path) -> Iterator[Tagging]:
    """The tiny model served by the tagging backend with its adapter ``support`` (tag ``S``,
    greedy, 12 tokens)."""
    folder = write_adapter(
        tmp_path / "support",
        "S",
        str(tiny_model_dir.resolve()),
        read_manifest(tiny_model_dir),
        num_beams=1,
        max_new_tokens=12,
    )
    manager = get_plugin_manager()
    manager.register(PLUGIN, name="tagging")
    adapters = {"support": str(folder)}
    flags = ["--model", str(tiny_model_dir), "--backend", "tagging"]
    flags += ["--backend-option", f"adapters={{support: {folder}}}"]
    try:
        model = Summarizer.from_pretrained(
            tiny_model_dir, backend="tagging", backend_options={"adapters": adapters}
        )
        yield Tagging(flags, model)
    finally:
        manager.unregister(name="tagging")
