"""An export says what it is doing: a bar over its stages on a terminal, log lines elsewhere,
nothing with ``progress=False`` (``dialogsum export --no-progress``)."""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

from dialogsum import Summarizer
from dialogsum.cli import main
from dialogsum.plugin_api import ExportStages

pytest.importorskip("onnxruntime")
pytest.importorskip("optimum.exporters.onnx")


class Terminal(io.StringIO):
    """stderr as a terminal: tqdm draws its bars only there."""

    def isatty(self) -> bool:
        return True


def test_an_int8_export_shows_each_stage_on_a_terminal(
    lora_summarizer: Summarizer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    lora_summarizer.export(tmp_path / "int8", quantize="int8")
    shown = terminal.getvalue()
    for stage in (
        "exporting the ONNX graphs",
        "checking parity with PyTorch",
        "quantizing to int8",
        "checking int8 parity",
    ):
        assert stage in shown, shown
    assert "4/4" in shown  # every stage counted, the last one when the export ended


def test_stages_are_logged_where_stderr_is_no_terminal(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    output = io.StringIO()  # a file or a CI log: no carriage-return bar in it
    monkeypatch.setattr(sys, "stderr", output)
    with caplog.at_level(logging.INFO, logger="dialogsum"), ExportStages(2) as stages:
        stages.start("converting")
        stages.start("checking adapter support")
    assert output.getvalue() == ""
    assert [r.getMessage() for r in caplog.records] == [
        "export stage 1 of 2: converting",
        "export stage 2 of 2: checking adapter support",
    ]


def test_progress_off_shows_and_logs_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with (
        caplog.at_level(logging.INFO, logger="dialogsum"),
        ExportStages(1, enabled=False) as stages,
    ):
        stages.start("converting")
    assert terminal.getvalue() == "" and not caplog.records


def test_the_command_passes_no_progress_to_the_export(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dialogsum.exporting

    given: dict[str, Any] = {}

    def export_model(*args: Any, **kwargs: Any) -> Path:
        given.update(kwargs)
        return tmp_path  # no export record: the command prints the folder alone

    monkeypatch.setattr(dialogsum.exporting, "export_model", export_model)
    command = ["export", "--model", str(tiny_model_dir), "--output", str(tmp_path / "out")]
    assert main([*command, "--no-progress"]) == 0
    assert given["progress"] is False
    assert main(command) == 0
    assert given["progress"] is True
