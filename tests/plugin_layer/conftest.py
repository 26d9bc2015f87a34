"""Fixtures of the plugin-layer tests: a clean plugin environment, and fake installed plugins.

``install`` writes fake distributions into ``tmp_path`` (a ``*.dist-info`` folder with
``METADATA`` and ``entry_points.txt`` next to the plugin module) and puts it on ``sys.path``;
``importlib.metadata`` finds them exactly as it finds a pip-installed plugin.
"""

from __future__ import annotations

import itertools
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dialogsum.plugins import ENV_ALLOWLIST, ENV_DISABLE_AUTOLOAD

_unique = itertools.count()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The switches of the developer's shell must not change what these tests see."""
    monkeypatch.delenv(ENV_ALLOWLIST, raising=False)
    monkeypatch.delenv(ENV_DISABLE_AUTOLOAD, raising=False)


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """Install fake plugin distributions; returns a function ``install(name, code) -> module``.

    Each call writes ``<module>.py`` and ``<name>-<version>.dist-info`` whose entry point (named
    ``entry_point``, default the module's name) in group ``dialogsum`` names the module. Module
    names are unique per call so no test sees another's cached import.
    """
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    modules: list[str] = []

    def _install(
        name: str, code: str, *, version: str = "1.0", entry_point: str | None = None
    ) -> str:
        module = f"fake_dialogsum_plugin_{next(_unique)}"
        modules.append(module)
        (site / f"{module}.py").write_text(textwrap.dedent(code), encoding="utf-8")
        dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
        )
        (dist_info / "entry_points.txt").write_text(
            f"[dialogsum]\n{entry_point or module} = {module}\n", encoding="utf-8"
        )
        return module

    yield _install
    for module in modules:
        sys.modules.pop(module, None)
