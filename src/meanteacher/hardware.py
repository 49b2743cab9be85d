"""What this machine's processor offers, as far as the defaults care."""

from __future__ import annotations

import functools
import platform


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether the CPU computes bf16 matrix products in hardware (x86 AVX512_BF16 or AMX): where it
    does not, bf16 autocast is emulated and slower than fp32, not faster."""
    if platform.system() != "Linux":
        return False
    try:
        with open("/proc/cpuinfo") as handle:
            flags = next((line.split(":", 1)[1].split() for line in handle if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
