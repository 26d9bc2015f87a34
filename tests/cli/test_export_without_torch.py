"""``dialogsum export`` on a serving install (no torch): the missing extra is the export one."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

EXPORT_WITHOUT_TORCH = textwrap.dedent(
    """
    import importlib.abc
    import sys

    BLOCKED = {"torch", "transformers", "peft", "optimum"}


    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ImportError(f"No module named {name!r}", name=name)
            return None


    sys.meta_path.insert(0, Block())  # before dialogsum is imported

    from dialogsum.cli import main

    sys.exit(main(["export", "--model", sys.argv[1], "--output", sys.argv[2]]))
    """
)


def test_export_without_torch_names_the_export_extra(tiny_model_dir: Path, tmp_path: Path) -> None:
    output = tmp_path / "exported"
    env = {**os.environ, "DIALOGSUM_DISABLE_PLUGIN_AUTOLOAD": "1"}
    result = subprocess.run(
        [sys.executable, "-c", EXPORT_WITHOUT_TORCH, str(tiny_model_dir), str(output)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    error = result.stderr.strip().splitlines()[-1]
    assert "pip install 'dialogsum[export]'" in error, error
    assert "dialogsum[train]" not in error and "Traceback" not in result.stderr
    assert not output.exists()
