"""The version of dialogsum, in one place: pyproject.toml reads it, and so does the package.

This module imports nothing, so any module may read the version without importing the package
face (``dialogsum/__init__``).
"""

__version__ = "0.1.0"
