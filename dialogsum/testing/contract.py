"""What the method and backend batteries share: one torch thread, and the plugins they run with."""

from __future__ import annotations

import pytest

from dialogsum.plugins import DialogsumPluginManager, make_plugin_manager


class ContractBase:
    """The fixtures every contract battery has; override ``contract_plugin_manager`` to register
    an uninstalled plugin in-process."""

    @pytest.fixture(autouse=True)
    def _contract_one_torch_thread(self, one_torch_thread: None) -> None:
        """Every battery test runs torch (where installed) on one thread."""

    @pytest.fixture(scope="class")
    @classmethod
    def contract_plugin_manager(cls) -> DialogsumPluginManager:
        """The plugins the battery runs with: a fresh manager loaded from entry points."""
        return make_plugin_manager()
