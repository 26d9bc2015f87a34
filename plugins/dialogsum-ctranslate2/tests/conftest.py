"""The dialogsum test kit: fixtures (tiny models, sample data) and the contract batteries."""

pytest_plugins = ["dialogsum.testing"]
