"""Shared fixtures: a tiny FLAN-T5-shaped model saved once per session, and sample data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dialogsum.data import Example, load_examples, sample_path
from dialogsum.training.scratch import save_tiny_t5

# Keep test runs quiet and offline: no hub calls, no telemetry.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dialogsum"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny T5 model and tokenizer saved in a folder, shared read-only by the session."""
    return save_tiny_t5(tmp_path_factory.mktemp("models") / "tiny-t5")


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The DialogSum sample folder shipped inside the package (train/validation/test)."""
    return sample_path("train").parent


@pytest.fixture(scope="session")
def few_examples() -> list[Example]:
    """Eight short training examples: enough for loss to fall within a few steps."""
    examples = load_examples(sample_path("train"))
    return sorted(examples, key=lambda e: len(e.dialogue))[:8]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The full DialogSum corpus beside the checkout; tests using it skip where it is absent."""
    if not (SHARED_DATA / "test.jsonl").is_file():
        pytest.skip(f"the full DialogSum corpus is not at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> None:
    # Tiny models gain nothing from threads, and on a busy 2-core machine two torch threads
    # contend with other processes and make generate() many times slower.
    import torch

    torch.set_num_threads(1)
