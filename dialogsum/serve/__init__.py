"""``dialogsum serve``: the HTTP service. ``create_app(summarizer, settings)`` is the public
factory, for mounting the service in an application of your own.

Importing this package imports FastAPI (``pip install 'dialogsum[serve]'``); nothing below the
command line imports it, so ``import dialogsum`` stays light.
"""

from __future__ import annotations

from typing import Any

from dialogsum.serve.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]


def __getattr__(name: str) -> Any:
    # The app module imports FastAPI; only code that builds the app pays for it, not the CLI
    # reading the settings model.
    if name == "create_app":
        from dialogsum.serve.app import create_app

        return create_app
    raise AttributeError(f"module 'dialogsum.serve' has no attribute {name!r}")
