"""dialogsum's test kit: tiny models built in-process, the shipped sample, the contract battery.

pytest accepts ``pytest_plugins`` only in a conftest it loads before collecting: this one, when
pytest runs in this plugin's folder (its pyproject's testpaths) or is given this folder, or, in
dialogsum's repository, through the root pyproject's ``testpaths = [..., "plugins/*/tests"]``.
"""

pytest_plugins = ["dialogsum.testing"]
