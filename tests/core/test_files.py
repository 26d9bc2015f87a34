"""What dialogsum writes is written whole or not at all: saved models and reports follow the
umask, a folder another process wrote meanwhile is never replaced silently, and an interrupt
or a full disk leaves the previous state as it was."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from dialogsum import ConfigError, DialogsumError, Summarizer
from dialogsum.files import staged_folder, write_text


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


# -- two writers into one folder: the second fails clearly -------------------------------------


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


# -- an interrupt or a full disk leaves the previous state -------------------------------------


def test_ctrl_c_during_a_save_leaves_the_folder_as_it_was(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summarizer = Summarizer.from_pretrained(tiny_model_dir)
    target = summarizer.save(tmp_path / "model")
    before = sorted(p.name for p in target.iterdir())
    config = (target / "config.json").read_text()

    def interrupted(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(type(summarizer.tokenizer), "save_pretrained", interrupted)
    with pytest.raises(KeyboardInterrupt):
        summarizer.save(target, overwrite=True)
    assert sorted(p.name for p in target.iterdir()) == before
    assert (target / "config.json").read_text() == config
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging folder left


def test_a_full_disk_leaves_the_previous_state_and_says_so(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = write_text(tmp_path / "metrics.json", '{"old": true}')
    summarizer = Summarizer.from_pretrained(tiny_model_dir)
    target = summarizer.save(tmp_path / "model")

    def full(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DialogsumError, match=r"disk or your quota is full.*intact"):
        write_text(report, '{"new": true}')
    assert report.read_text() == '{"old": true}'
    monkeypatch.setattr(type(summarizer.tokenizer), "save_pretrained", full)
    with pytest.raises(DialogsumError, match=r"disk or your quota is full"):
        summarizer.save(target, overwrite=True)
    assert (target / "config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "model"]
