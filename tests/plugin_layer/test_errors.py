"""The plugin layer's errors: a backend whose dependency is missing names the extra to install."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_a_backend_whose_dependency_is_missing_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sys

    from dialogsum import MissingDependencyError, Summarizer

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(MissingDependencyError) as info:
        Summarizer.from_pretrained(tmp_path, backend="onnxruntime")
    assert info.value.extra == "cpu-serve"
    assert "pip install 'dialogsum[cpu-serve]'" in str(info.value)
    assert "The onnxruntime backend needs onnxruntime" in str(info.value)
