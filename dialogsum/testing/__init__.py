"""dialogsum's test kit for plugin authors: pytest fixtures and the contract batteries.

Register it once, in the ``conftest.py`` at the root of your tests (pytest accepts
``pytest_plugins`` only in a conftest it loads before collection)::

    pytest_plugins = ["dialogsum.testing"]

then subclass the battery for your method or backend; pytest collects the ``Test*`` subclasses,
never the bases::

    from dialogsum.testing import BackendContract, MethodContract

    class TestIA3Contract(MethodContract):
        method = "ia3"

    class TestMyBackendContract(BackendContract):
        backend = "my-backend"
        export_options = {"quantize": "int8"}  # a backend that exports: its export options

:class:`BackendContract` also checks the export step of a backend that declares
``ExportOptions`` (and skips those tests for one that does not).

The fixtures (:mod:`dialogsum.testing.fixtures`) are ``tiny_model_dir``, ``tiny_model``,
``tiny_tokenizer``, ``plugin_manager``, ``sample_dir``, ``few_examples`` and
``one_torch_thread``; the kit also keeps the session offline (``HF_HUB_OFFLINE=1`` unless set).
:func:`make_plugin_manager` makes a fresh plugin manager to register an uninstalled plugin on
(``contract_plugin_manager``), and :func:`registration` tells what a name is registered as and
by which distribution.

For the service, :func:`asgi_client` calls an application (``create_app(...)`` or one of yours
that mounts it) in this process, its lifespan included, with no server;
:class:`dialogsum.testing.serving.Server` serves one on 127.0.0.1 for a real HTTP client.

The kit imports dialogsum, never the reverse. Importing it is cheap: torch and transformers are
imported inside the fixtures and tests that use them.
"""

from __future__ import annotations

from dialogsum.testing.backends import BackendContract, contract_dialogues
from dialogsum.testing.contract import make_plugin_manager, registration
from dialogsum.testing.methods import LEARNING_RATE_FACTOR, MethodContract, greedy_tokens
from dialogsum.testing.serving import asgi_client

#: Registering this package registers the fixtures module too.
pytest_plugins = ["dialogsum.testing.fixtures"]

__all__ = [
    "LEARNING_RATE_FACTOR",
    "BackendContract",
    "MethodContract",
    "asgi_client",
    "contract_dialogues",
    "greedy_tokens",
    "make_plugin_manager",
    "registration",
]
