"""Fixtures of the service's tests: a model served with adapters beside it (the tagging backend
of ``tests/adapter_backend.py``, registered as a plugin) and adapter folders for it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import pytest

from dialogsum import Summarizer
from dialogsum.modeling import read_manifest
from dialogsum.plugins import DialogsumPluginManager
from dialogsum.testing import make_plugin_manager

from ..adapter_backend import PLUGIN, write_adapter

#: Decoding every adapter test asks for explicitly, so that requests for any adapter (or none)
#: have equal options and may share a batch.
SHARED = {"num_beams": 1, "max_new_tokens": 12, "no_repeat_ngram_size": 3}


@pytest.fixture(scope="session")
def tagging_plugins() -> DialogsumPluginManager:
    """The installed plugins and the tagging backend (``backend="tagging"``)."""
    manager = make_plugin_manager()
    manager.register(PLUGIN, name="tagging")
    return manager


@pytest.fixture(scope="session")
def adapter_dirs(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Path]:
    """Adapter folders of the tiny model: ``support`` (greedy, the shared decoding, so it
    streams), ``sales`` (greedy, 8 tokens), ``other-base`` (tuned from another model) and
    ``corrupt`` (no tag)."""
    root = tmp_path_factory.mktemp("adapters")
    base = str(tiny_model_dir.resolve())
    manifest = read_manifest(tiny_model_dir)
    folders = {
        "support": write_adapter(root / "support", "S", base, manifest, **SHARED),
        "sales": write_adapter(root / "sales", "$", base, manifest, num_beams=1, max_new_tokens=8),
        "other-base": write_adapter(root / "other", "O", "/models/another-t5", manifest),
        "corrupt": write_adapter(root / "corrupt", "C", base, manifest),
    }
    (folders["corrupt"] / "tag.txt").unlink()
    return folders


def tagging_model(
    tiny_model_dir: Path,
    plugins: DialogsumPluginManager,
    adapter_dirs: dict[str, Path],
    *names: str,
) -> Summarizer:
    """A new Summarizer of the tiny model served by the tagging backend with the adapters
    ``names`` (keys of ``adapter_dirs``) loaded."""
    adapters = {name: str(adapter_dirs[name]) for name in names}
    return Summarizer.from_pretrained(
        tiny_model_dir, backend="tagging", backend_options={"adapters": adapters}, plugins=plugins
    )


@pytest.fixture
def tagging(
    tiny_model_dir: Path, tagging_plugins: DialogsumPluginManager, adapter_dirs: dict[str, Path]
) -> Callable[..., Summarizer]:
    """``tagging("support", ...)``: :func:`tagging_model` with those adapters loaded."""
    return functools.partial(tagging_model, tiny_model_dir, tagging_plugins, adapter_dirs)
