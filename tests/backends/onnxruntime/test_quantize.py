"""int8 quantization of an export: the libraries it calls stay quiet on the console."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_int8_export_logs_no_library_chatter(tiny_model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("optimum.exporters.onnx")
    command = [
        sys.executable,
        "-m",
        "dialogsum",
        "export",
        "--model",
        str(tiny_model_dir),
        "--output",
        str(tmp_path / "int8"),
        "--quantize",
        "int8",
    ]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "DIALOGSUM_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "INFO root" not in result.stderr
    assert len(result.stderr.splitlines()) < 15, result.stderr
