"""Built-in fine-tuning methods, each registered through the ``dialogsum`` entry points."""
