"""What a new user broke, fixed: bundled bases, file modes, concurrent writers, offline loads,
pickle checkpoints. Each test failed before its fix."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dialogsum import ConfigError, ModelError, Summarizer
from dialogsum.cli import main
from dialogsum.files import staged_folder, write_text

PROBE = ["#Person1#: Where is the station?\n#Person2#: Two blocks north, next to the bank."]


# -- 1. bundled names resolve wherever a model name is accepted --------------------------------


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


def test_the_cli_takes_the_bundled_base_too(
    bundled_lora_dir: Path, sample_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["evaluate", "--model", str(bundled_lora_dir), "--data", str(sample_dir / "test.jsonl")]
    assert main([*args, "--max-new-tokens", "2", "--base-model", "dialogsum-tiny", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 40
    compare = ["compare", "--model", str(bundled_lora_dir), "--base-model", "dialogsum-tiny", "--data",
               str(sample_dir), "--limit", "2", "--output", str(tmp_path / "cmp"),
               "--max-new-tokens", "2"]
    assert main(compare) == 0, capsys.readouterr().err


# -- 2. what dialogsum writes is readable as the umask says -------------------------------------


def test_saved_models_follow_the_umask(tmp_path: Path, tiny_model_dir: Path) -> None:
    previous = os.umask(0o022)
    try:
        folder = Summarizer.from_pretrained(tiny_model_dir).save(tmp_path / "model")
        report = write_text(tmp_path / "report.json", "{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert stat.S_IMODE((folder / "config.json").stat().st_mode) == 0o644
    assert stat.S_IMODE(report.stat().st_mode) == 0o644


# -- 3. two writers into one folder: the second fails clearly ----------------------------------


def test_a_folder_written_meanwhile_is_never_replaced_silently(tmp_path: Path) -> None:
    target = tmp_path / "export"
    with (
        pytest.raises(ConfigError, match=r"written by another process while this one"),
        staged_folder(target) as first,
    ):
        (first / "who").write_text("first")
        with staged_folder(target) as second:  # another process, finishing first
            (second / "who").write_text("second")
    assert (target / "who").read_text() == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["export"]  # no staging left behind
    with staged_folder(target, overwrite=True) as third:  # asked for: replaced
        (third / "who").write_text("third")
    assert (target / "who").read_text() == "third"


def test_a_save_racing_another_save_does_not_claim_success(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summarizer = Summarizer.from_pretrained(tiny_model_dir)
    target = tmp_path / "model"
    tokenizer = type(summarizer.tokenizer)
    original = tokenizer.save_pretrained

    def racing(self, folder, *args, **kwargs):  # type: ignore[no-untyped-def]
        monkeypatch.setattr(tokenizer, "save_pretrained", original)
        Summarizer.from_pretrained(tiny_model_dir).save(target)  # the other process wins
        return original(self, folder, *args, **kwargs)

    monkeypatch.setattr(tokenizer, "save_pretrained", racing)
    with pytest.raises(ConfigError, match="another process"):
        summarizer.save(target)
    assert (target / "config.json").is_file()


# -- 9. offline is noticed at once ---------------------------------------------------------------


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


# -- 11. pickles are refused -----------------------------------------------------------------


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
