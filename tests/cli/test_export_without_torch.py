"""``dialogsum export`` on a serving install (no torch): the missing extra is the export one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dialogsum.errors import install_command

from ..without_modules import cli_without

EXPORT_WITHOUT_TORCH = cli_without("torch", "transformers", "peft", "optimum")


def test_export_without_torch_names_the_export_extra(tiny_model_dir: Path, tmp_path: Path) -> None:
    output = tmp_path / "exported"
    env = {**os.environ, "DIALOGSUM_DISABLE_PLUGIN_AUTOLOAD": "1"}
    result = subprocess.run(
        [sys.executable, "-c", EXPORT_WITHOUT_TORCH, "export", "--model", str(tiny_model_dir),
         "--output", str(output)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    error = result.stderr.strip().splitlines()[-1]
    assert install_command("export") in error, error
    assert install_command("train") not in error and "Traceback" not in result.stderr
    assert not output.exists()
