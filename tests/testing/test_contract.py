"""The test kit's contract battery over every registered method and both built-in backends.

The methods come from the default registry, so a newly registered method (a built-in, or an
installed plugin such as dialogsum-ia3) is covered without touching this file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from dialogsum.registry import get_registry
from dialogsum.testing import BackendContract, MethodContract

METHODS = sorted(get_registry().methods)


def test_the_battery_covers_the_built_ins_and_the_installed_plugin() -> None:
    # Guards the parametrisation below against silently covering nothing.
    assert {"full", "lora", "prompt_tuning", "ia3"} <= set(METHODS)


class TestEveryRegisteredMethod(MethodContract):
    @pytest.fixture(scope="class", params=METHODS)
    @classmethod
    def method_name(cls, request: pytest.FixtureRequest) -> str:
        return str(request.param)


class TestTorchBackend(BackendContract):
    backend = "torch"
    backend_options: ClassVar[dict[str, Any]] = {"progress": False}


@pytest.fixture(scope="module")
def onnx_model_dir(onnx_export_dir: Path) -> Path:
    """The tiny model exported to ONNX (the session's shared export)."""
    return onnx_export_dir


class TestOnnxRuntimeBackend(BackendContract):
    backend = "onnxruntime"
    backend_options: ClassVar[dict[str, Any]] = {"progress": False, "threads": 1}

    @pytest.fixture(scope="class")
    @classmethod
    def model_dir(cls, onnx_model_dir: Path) -> Path:
        return onnx_model_dir
