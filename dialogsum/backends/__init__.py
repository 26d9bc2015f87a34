"""Built-in inference backends, each registered through the ``dialogsum`` entry points."""
