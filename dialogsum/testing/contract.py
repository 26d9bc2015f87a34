"""What the method and backend batteries share: one torch thread, the plugins they run with,
and a look-up of what a plugin registered."""

from __future__ import annotations

from typing import Any, Literal

import pytest

from dialogsum.plugins import DialogsumPluginManager, get_plugin_manager, make_plugin_manager
from dialogsum.registry import Registered, get_registry

__all__ = ["ContractBase", "make_plugin_manager", "registration"]


def registration(
    kind: Literal["method", "backend"],
    name: str,
    plugins: DialogsumPluginManager | None = None,
) -> Registered[Any]:
    """What is registered as the method or backend ``name``: ``.obj`` and ``.source``.

    ``source`` is ``"<distribution> <version>"`` for a plugin found through its entry point
    (``"in-process plugin '<name>'"`` for one registered by hand), so a plugin's tests can check
    that its installed entry point is what users get. ``plugins`` defaults to the process-wide
    plugin manager. An unknown name is a :class:`~dialogsum.plugin_api.PluginError` listing the
    registered ones.
    """
    registry = get_registry(plugins or get_plugin_manager())
    if kind == "method":
        registry.method(name)  # an unknown name: the registry's error, with the known ones
        return registry.methods[name]
    registry.backend(name)
    return registry.backends[name]


class ContractBase:
    """The fixtures every contract battery has; override ``contract_plugin_manager`` to register
    an uninstalled plugin in-process."""

    @pytest.fixture(autouse=True)
    def _contract_one_torch_thread(self, one_torch_thread: None) -> None:
        """Every battery test runs torch (where installed) on one thread."""

    @pytest.fixture(scope="class")
    @classmethod
    def contract_plugin_manager(cls) -> DialogsumPluginManager:
        """The plugins the battery runs with: a fresh manager loaded from entry points.

        Override it to add a plugin that is not installed::

            @pytest.fixture(scope="class")
            @classmethod
            def contract_plugin_manager(cls):
                manager = make_plugin_manager()  # from dialogsum.testing
                manager.register(my_plugin)
                return manager
        """
        return make_plugin_manager()
