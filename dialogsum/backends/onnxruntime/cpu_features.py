"""What this CPU's int8 kernels do with an export's weights.

onnxruntime multiplies uint8 activations by int8 weights with VNNI instructions where the CPU
has them (32-bit sums, exact). On x86 CPUs without VNNI (AVX2 only) it adds each pair of
products in 16 bits with saturation, so full-range int8 weights (up to 127) can overflow: an
int8 export made before its weights became 7-bit (``WEIGHT_BITS``) summarizes differently, and
worse, there.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

#: CPU flags (Linux ``/proc/cpuinfo``) of instructions that add uint8 x int8 products in 32 bits.
_VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@functools.cache
def int8_pairs_saturate() -> bool:
    """Whether onnxruntime's uint8 x int8 kernel saturates full-range int8 weights here: an x86
    CPU with AVX2 and no VNNI. False where that cannot be told (no ``/proc/cpuinfo``)."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return False
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    found = set(flags.partition(":")[2].split())
    return "avx2" in found and not any(flag in found for flag in _VNNI_FLAGS)
