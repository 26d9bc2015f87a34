"""The files of a CTranslate2 export folder, as the export writes them and the predictor reads them.

The folder's manifest (``dialogsum.json``) carries the export record naming the ``ctranslate2``
backend, the parity results and, in its ``backend_data``, this backend's own fields:
``quantize`` (the export option) and ``weights`` (the type ``model.bin`` holds: ``float32`` or
``int8``).
"""

from __future__ import annotations

#: What CTranslate2's converter writes for a T5 model: the weights, CTranslate2's own model
#: config (not a transformers config.json), and the vocabulary encoder and decoder share.
MODEL_FILES = ("model.bin", "config.json", "shared_vocabulary.json")
#: Everything the ctranslate2 backend reads from an export folder (besides the manifest).
REQUIRED_FILES = (*MODEL_FILES, "tokenizer.json", "generation_config.json")
#: The weight type ``model.bin`` is written in, per value of the ``quantize`` export option.
WEIGHTS = {None: "float32", "int8": "int8"}
