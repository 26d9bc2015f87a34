"""Loading from the hub and from folders safely: offline is noticed at once, pickle-only
checkpoints are refused with how to convert them, and no code is trusted remotely."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dialogsum import ModelError, Summarizer


def test_offline_hub_names_fail_fast_and_say_why(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if "OFFLINE" not in k}
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"  # nothing listens there: the hub is unreachable
    env["HF_HOME"] = str(tmp_path / "hf")  # an empty cache
    script = (
        "from dialogsum import Summarizer\n"
        "try:\n    Summarizer.from_pretrained('someone/mymodel')\n"
        "except Exception as e:\n    print(type(e).__name__, e)\n"
    )
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert time.perf_counter() - started < 20  # import, one refused connection, the error
    assert result.stdout.startswith("ModelError"), result.stdout + result.stderr[-2000:]
    assert "cannot be reached" in result.stdout and "someone/mymodel" in result.stdout


# -- pickles and remote code are refused -------------------------------------------------------


def test_a_pickle_only_checkpoint_is_refused_with_how_to_convert(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    folder = tmp_path / "pickled"
    AutoModelForSeq2SeqLM.from_pretrained(tiny_model_dir).save_pretrained(
        folder, safe_serialization=False
    )
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder)
    assert (folder / "pytorch_model.bin").is_file()
    with pytest.raises(ModelError, match=r"only as a pickle \(pytorch_model.bin\).*convert it"):
        Summarizer.from_pretrained(folder)


def test_no_code_passes_trust_remote_code() -> None:
    package = Path(__file__).resolve().parents[2] / "dialogsum"
    offenders = [
        str(path)
        for path in package.rglob("*.py")
        if "trust_remote_code=" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []
