"""The plugin layer's errors: a backend whose dependency is missing names the extra to install."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialogsum.errors import install_command


def test_a_backend_whose_dependency_is_missing_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sys

    from dialogsum import MissingDependencyError, Summarizer

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(MissingDependencyError) as info:
        Summarizer.from_pretrained(tmp_path, backend="onnxruntime")
    assert info.value.extra == "cpu-serve"
    assert install_command("cpu-serve") in str(info.value)
    assert "The onnxruntime backend needs onnxruntime" in str(info.value)


class _Metadata:
    """A distribution's metadata as importlib reads it: only ``direct_url.json``."""

    def __init__(self, direct_url: str | None) -> None:
        self.direct_url = direct_url

    def read_text(self, name: str) -> str | None:
        return self.direct_url if name == "direct_url.json" else None


@pytest.mark.parametrize(
    ("copies", "command"),
    [
        # an editable install from a clone, run from the clone's root (its egg-info first)
        (
            [None, '{"url": "file:///home/ann/dialogsum", "dir_info": {"editable": true}}'],
            "pip install -e '/home/ann/dialogsum[hub]'",
        ),
        (
            ['{"url": "file:///src/my%20copy", "dir_info": {}}'],
            "pip install '/src/my copy[hub]'",
        ),
        ([None], "pip install 'dialogsum[hub]'"),  # from a package index
        ([], "pip install 'dialogsum[hub]'"),  # not installed
        (['{"url": "https://x/d.whl", "archive_info": {}}'], "pip install 'dialogsum[hub]'"),
        (["not json"], "pip install 'dialogsum[hub]'"),
    ],
)
def test_the_install_command_installs_from_where_dialogsum_came_from(
    monkeypatch: pytest.MonkeyPatch, copies: list[str | None], command: str
) -> None:
    from importlib import metadata

    found = [_Metadata(text) for text in copies]
    monkeypatch.setattr(metadata, "distributions", lambda name: iter(found))
    assert install_command("hub") == command
