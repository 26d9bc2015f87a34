"""The exceptions dialogsum raises.

Every error a user can meet derives from :class:`DialogsumError`, and its message says what went
wrong, where (file and line, plugin, option) and how to fix it.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("dialogsum")


class DialogsumError(Exception):
    """Base class of every error dialogsum raises on purpose."""


class ConfigError(DialogsumError, ValueError):
    """A user-given option, flag or configuration file is invalid."""


class PluginError(DialogsumError):
    """A plugin failed to load, registered something invalid, or a name clashes or is unknown."""


class DataError(DialogsumError, ValueError):
    """Input data is malformed: a bad line, a missing or empty field, an unreadable source."""


class ModelError(DialogsumError):
    """A model folder is missing, corrupt, or refers to a base model that cannot be found."""


class BackendError(DialogsumError):
    """An inference backend could not load or run a model."""
