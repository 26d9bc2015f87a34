"""Every hook a plugin can implement is tested and documented.

A new hook spec added to ``dialogsum/hookspecs.py`` fails these tests until some test in
``tests/`` exercises it and ``docs/plugins.md`` has a ``## <hook name>`` section for it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dialogsum import hookspecs
from dialogsum.plugins import make_plugin_manager

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
PLUGINS_DOC = ROOT / "docs" / "plugins.md"


def hook_names() -> list[str]:
    """Names of the hook specs, as pluggy sees them (not a hand-kept list)."""
    manager = make_plugin_manager(load_entry_points=False)
    return sorted(
        name
        for name, caller in vars(manager.hook).items()
        if not name.startswith("_") and caller.has_spec()
    )


HOOKS = hook_names()


def test_hook_specs_are_found() -> None:
    # Guards the parametrised tests below against silently checking nothing.
    assert "register_methods" in HOOKS
    assert "register_backends" in HOOKS
    declared = {name for name in vars(hookspecs) if name.startswith("register_")}
    assert set(HOOKS) == declared


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_docstring(hook: str) -> None:
    doc = getattr(hookspecs, hook).__doc__
    assert doc and doc.strip(), f"hook spec {hook} has no docstring"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_exercised_by_a_test(hook: str) -> None:
    this_file = Path(__file__).resolve()
    mentioning = [
        path.name
        for path in sorted(TESTS.rglob("test_*.py"))
        if path.resolve() != this_file and hook in path.read_text(encoding="utf-8")
    ]
    assert mentioning, f"no test in {TESTS} mentions the hook {hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_section_in_the_plugin_docs(hook: str) -> None:
    text = PLUGINS_DOC.read_text(encoding="utf-8")
    headings = re.findall(r"^#{2,3}\s+`?(\w+)`?\s*$", text, flags=re.MULTILINE)
    assert hook in headings, f"{PLUGINS_DOC} has no '## {hook}' section"
