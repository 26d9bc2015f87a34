"""Error messages send users to help they have: an installed dialogsum ships no ``docs/``
folder, so a message names ``python -m pydoc <object>`` (or says what to do itself), and every
object it names exists."""

from __future__ import annotations

import ast
import pydoc
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from dialogsum.errors import PluginError
from dialogsum.plugins import make_plugin_manager

ROOT = Path(__file__).resolve().parents[2]
#: dialogsum's code and its plugins' (their tests may name docs: they run from a checkout).
SOURCES = [ROOT / "dialogsum", *(ROOT / "plugins").glob("dialogsum-*/dialogsum_*")]
#: Calls whose text a user reads.
SPOKEN = {"warning", "warn", "info", "error", "print"}


def message_strings() -> Iterator[tuple[str, str]]:
    """(file:line, text) of every string constant in a ``raise`` or a logging/print call."""
    for source in SOURCES:
        for path in sorted(source.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call):
                    called = getattr(node.func, "attr", getattr(node.func, "id", ""))
                    if called not in SPOKEN:
                        continue
                elif not isinstance(node, ast.Raise):
                    continue
                for part in ast.walk(node):
                    if isinstance(part, ast.Constant) and isinstance(part.value, str):
                        yield f"{path.relative_to(ROOT)}:{part.lineno}", part.value


def test_no_message_points_into_the_repositorys_docs() -> None:
    pointing = [where for where, text in message_strings() if "docs/" in text]
    assert not pointing, f"messages naming a docs/ path a user does not have: {pointing}"


def test_every_pydoc_reference_in_a_message_resolves() -> None:
    named: set[str] = set()
    for _, text in message_strings():
        named |= set(re.findall(r"pydoc\s+([\w.]+)", text))
    # pydoc.locate is what `python -m pydoc NAME` looks the name up with.
    assert named >= {"dialogsum.hookspecs", "dialogsum.plugin_api.ExportJob"}
    missing = sorted(name for name in named if pydoc.locate(name) is None)
    assert not missing, f"messages send users to pydoc for names that do not exist: {missing}"


def test_a_plugin_that_registers_nothing_is_told_where_the_hooks_are_described() -> None:
    plugin = ModuleType("quiet_plugin")
    plugin.register_methods = lambda register: None  # type: ignore[attr-defined]  # no @hookimpl
    with pytest.raises(PluginError, match=r"python -m pydoc dialogsum\.hookspecs") as error:
        make_plugin_manager(load_entry_points=False).register(plugin, "quiet")
    assert "docs/" not in str(error.value)
