"""Shared fixtures: dialogsum's own test kit, as plugin authors use it, plus the full corpus.

``dialogsum.testing`` provides ``tiny_model_dir``, ``tiny_model``, ``tiny_tokenizer``,
``plugin_manager``, ``sample_dir``, ``few_examples`` and ``one_torch_thread``, and keeps the
session offline (no hub calls, no telemetry).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["dialogsum.testing"]

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dialogsum"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The full DialogSum corpus beside the checkout; tests using it skip where it is absent."""
    if not (SHARED_DATA / "test.jsonl").is_file():
        pytest.skip(f"the full DialogSum corpus is not at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread(one_torch_thread: None) -> None:
    """Every test here runs torch on one thread (the kit's ``one_torch_thread`` says why)."""
