"""The dialogsum command line in a process where some packages cannot be imported, as in an
install without the extra that brings them (the development environment has them all)."""

from __future__ import annotations

import textwrap


def cli_without(*modules: str) -> str:
    """A ``python -c`` script that runs ``dialogsum`` with ``sys.argv[1:]``, ``modules`` (and
    their submodules) refusing to import."""
    return textwrap.dedent(
        f"""
        import importlib.abc
        import sys

        BLOCKED = {set(modules)!r}


        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in BLOCKED:
                    raise ImportError(f"No module named {{name!r}}", name=name)
                return None


        sys.meta_path.insert(0, Block())  # before dialogsum is imported

        from dialogsum.cli import main

        sys.exit(main(sys.argv[1:]))
        """
    )
