"""Model folders: an adapter of the bundled model records its name and loads again."""

from __future__ import annotations

import json
import time
from pathlib import Path

from dialogsum import Summarizer

PROBE = ["#Person1#: Where is the station?\n#Person2#: Two blocks north, next to the bank."]


def test_an_adapter_of_the_bundled_model_loads_again(bundled_lora_dir: Path) -> None:
    manifest = json.loads((bundled_lora_dir / "dialogsum.json").read_text())
    assert manifest["base_model"] == "dialogsum-tiny"
    started = time.perf_counter()
    reloaded = Summarizer.from_pretrained(bundled_lora_dir, backend_options={"progress": False})
    assert time.perf_counter() - started < 60  # no hub retries
    assert reloaded.method == "lora" and reloaded.summarize(PROBE, max_new_tokens=4)
    explicit = Summarizer.from_pretrained(
        bundled_lora_dir, backend_options={"base_model": "dialogsum-tiny", "progress": False}
    )
    assert explicit.summarize(PROBE, max_new_tokens=4, num_beams=1) == reloaded.summarize(
        PROBE, max_new_tokens=4, num_beams=1
    )
