"""The ctranslate2 backend's options: serving an export folder, and the export step."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dialogsum.plugin_api import Options


class CTranslate2Options(Options):
    """How an export folder is served."""

    compute_type: Literal["default", "int8", "float32"] = Field(
        "default",
        description=(
            "default: the type the folder was exported with (its parity record is for that "
            "type); int8 quantizes a float32 export's weights as it loads; float32 serves an "
            "int8 export in float32."
        ),
    )
    threads: int = Field(0, ge=0, description="Intra-op threads (0: CTranslate2's default).")
    progress: bool = Field(True, description="Show a progress bar over batches.")


class CTranslate2ExportOptions(Options):
    """Options of the ctranslate2 backend's export step."""

    quantize: Literal["int8"] | None = Field(
        None,
        description=(
            "int8: int8 weights and matrix products (CTranslate2's int8 compute type); "
            "default: float32."
        ),
    )
