"""The kit's pytest fixtures: tiny models built in-process, the shipped sample, a plugin manager.

Registered with ``pytest_plugins = ["dialogsum.testing"]``; nothing here downloads anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from dialogsum.data import Example, load_examples, sample_path
from dialogsum.plugins import DialogsumPluginManager, make_plugin_manager
from dialogsum.training.tiny_models import build_tiny_t5, build_tiny_tokenizer, save_tiny_t5

if TYPE_CHECKING:
    from transformers import T5ForConditionalGeneration, T5TokenizerFast

#: Set for the session unless already set: tests never reach the Hugging Face hub, and the fast
#: tokenizers do not warn about forked processes. Export ``HF_HUB_OFFLINE=0`` to opt out.
TEST_ENVIRONMENT: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def pytest_configure(config: pytest.Config) -> None:
    """Keep the test session offline and quiet (see :data:`TEST_ENVIRONMENT`)."""
    for name, value in TEST_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny T5 model and tokenizer saved in a folder, shared read-only by the session.

    Load it with ``Summarizer.from_pretrained(tiny_model_dir)``; do not write into it, since
    adapters tuned from it record this folder as their base model.
    """
    return save_tiny_t5(tmp_path_factory.mktemp("models") / "tiny-t5")


@pytest.fixture
def tiny_model() -> T5ForConditionalGeneration:
    """A fresh tiny T5 model in memory (same weights as ``tiny_model_dir``), yours to change."""
    return build_tiny_t5().model


@pytest.fixture
def tiny_tokenizer() -> T5TokenizerFast:
    """A fresh tokenizer of the tiny model (T5's special tokens and ids), yours to change."""
    return build_tiny_tokenizer()


@pytest.fixture
def plugin_manager() -> DialogsumPluginManager:
    """A fresh plugin manager holding the built-ins and every installed plugin.

    Register an in-process plugin on it (``plugin_manager.register(module)``) and pass it as
    ``plugins=plugin_manager``: the process-wide manager is left untouched.
    """
    return make_plugin_manager()


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The DialogSum sample folder shipped inside the package (train/validation/test)."""
    return sample_path("train").parent


@pytest.fixture(scope="session")
def few_examples() -> list[Example]:
    """The eight shortest training examples of the shipped sample: loss falls within steps."""
    examples = load_examples(sample_path("train"))
    return sorted(examples, key=lambda example: len(example.dialogue))[:8]


@pytest.fixture(scope="session")
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread while the session lasts (skipped where torch is absent).

    Tiny models gain nothing from threads, and on a busy machine with few cores several torch
    threads contend with other processes and make ``generate()`` many times slower.
    """
    try:
        import torch
    except ImportError:  # a torch-free backend's test suite
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
