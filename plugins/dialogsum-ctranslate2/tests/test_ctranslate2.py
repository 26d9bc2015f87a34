"""dialogsum-ctranslate2 through dialogsum's public API, as a user of the installed plugin."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import dialogsum_ctranslate2
import pytest

from dialogsum import ConfigError, Summarizer
from dialogsum.testing import BackendContract, registration

PROBE = ["#Person1#: Where is the station?\n#Person2#: Two blocks north, next to the bank."]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("ct2-cache"))


class TestCTranslate2Contract(BackendContract):
    backend = "ctranslate2"
    backend_options: ClassVar[dict[str, Any]] = {"progress": False, "compute_type": "float32"}


def test_discovered_through_its_entry_point() -> None:
    registered = registration("backend", "ctranslate2")
    assert isinstance(registered.obj, dialogsum_ctranslate2.CTranslate2Backend)
    assert registered.source == f"dialogsum-ctranslate2 {dialogsum_ctranslate2.__version__}"


def test_float32_matches_pytorch_greedy_and_beams(tiny_model_dir: Path, cache: str) -> None:
    torch_side = Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})
    served = Summarizer.from_pretrained(
        tiny_model_dir,
        backend="ctranslate2",
        backend_options={"compute_type": "float32", "cache_dir": cache, "progress": False},
    )
    for beams in (1, 4):
        expected = torch_side.summarize(PROBE, num_beams=beams, max_new_tokens=12)
        assert served.summarize(PROBE, num_beams=beams, max_new_tokens=12) == expected


def test_an_adapter_is_merged_and_the_conversion_cached(
    tiny_model_dir: Path, few_examples, tmp_path: Path, cache: str
) -> None:  # type: ignore[no-untyped-def]
    base = Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})
    tuned = base.finetune(
        few_examples,
        method="lora",
        options={"r": 4},
        training={"max_steps": 4, "learning_rate": 1e-2, "progress": False, "save_strategy": "no"},
    )
    adapter = tuned.save(tmp_path / "adapter")
    options = {"compute_type": "float32", "cache_dir": cache, "progress": False}
    served = Summarizer.from_pretrained(adapter, backend="ctranslate2", backend_options=options)
    expected = tuned.merge().summarize(PROBE, num_beams=1, max_new_tokens=10)
    assert served.summarize(PROBE, num_beams=1, max_new_tokens=10) == expected
    before = sorted(Path(cache).iterdir())
    Summarizer.from_pretrained(adapter, backend="ctranslate2", backend_options=options)
    assert sorted(Path(cache).iterdir()) == before  # converted once


def test_int8_serves_and_bad_input_is_refused(
    tiny_model_dir: Path, tmp_path: Path, cache: str
) -> None:
    served = Summarizer.from_pretrained(
        tiny_model_dir, backend="ctranslate2", backend_options={"cache_dir": cache}
    )
    assert len(served.summarize(PROBE * 3, max_new_tokens=6)) == 3
    with pytest.raises(ConfigError, match="do_sample is not supported"):
        served.summarize(PROBE, do_sample=True)
    with pytest.raises(ConfigError, match="Invalid options for backend 'ctranslate2'"):
        Summarizer.from_pretrained(
            tiny_model_dir, backend="ctranslate2", backend_options={"compute": "int4"}
        )
    with pytest.raises(ConfigError, match="not one"):
        Summarizer.from_pretrained("someone/not-local", backend="ctranslate2")
