"""What this machine's processor offers, as far as the defaults care."""

from __future__ import annotations

import functools
import os
import platform

NATIVE_BF16_VARIABLE = "MEANTEACHER_NATIVE_BF16"
"""Environment variable that overrides the bf16 detection: "1" as if the CPU computed bf16 in hardware,
"0" as if it did not (tests pin it, so that no number they compare depends on the machine)."""


def cpu_has_native_bf16() -> bool:
    """Whether the CPU computes bf16 matrix products in hardware (x86 AVX512_BF16 or AMX): where it
    does not, bf16 autocast is emulated and slower than fp32, not faster. ``MEANTEACHER_NATIVE_BF16``
    ("0" or "1") overrides what the processor says."""
    forced = os.environ.get(NATIVE_BF16_VARIABLE, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return _cpu_flags_have_bf16()


@functools.lru_cache(maxsize=1)
def _cpu_flags_have_bf16() -> bool:
    if platform.system() != "Linux":
        return False
    try:
        with open("/proc/cpuinfo") as handle:
            flags = next((line.split(":", 1)[1].split() for line in handle if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
