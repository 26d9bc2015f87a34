"""The hooks a dialogsum plugin can implement.

A plugin is a module (or object) exposed under the ``dialogsum`` entry-point group. It implements
one or both hooks below with :data:`dialogsum.hookimpl` and calls ``register(obj)`` once for each
fine-tuning method or inference backend it provides. The core validates every object and owns name
clashes, so plugins never see each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from collections.abc import Callable

    from dialogsum.interfaces import FinetuneMethod, InferenceBackend

PROJECT = "dialogsum"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_methods(register: Callable[[FinetuneMethod], None]) -> None:
    """Register fine-tuning methods.

    Call ``register(method)`` once per method: an instance of a
    :class:`~dialogsum.plugin_api.FinetuneMethod` subclass, which declares what a method
    provides. See ``docs/plugins.md``.
    """


@hookspec
def register_backends(register: Callable[[InferenceBackend], None]) -> None:
    """Register inference backends.

    Call ``register(backend)`` once per backend: an instance of an
    :class:`~dialogsum.plugin_api.InferenceBackend` subclass, which declares what a backend
    provides (loading, and optionally exporting). See ``docs/plugins.md``.
    """
