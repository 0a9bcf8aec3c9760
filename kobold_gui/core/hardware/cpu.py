"""CPU features the portable llama.cpp build needs (it is compiled for AVX2, FMA and F16C):
checked before llama.cpp is loaded, so an older CPU gets a message instead of SIGILL. A build
whose CPU backend comes in variants (ggml loads the one this processor runs) needs none."""

from __future__ import annotations

import sys
from pathlib import Path

REQUIRED = ("avx2", "fma", "f16c")


def cpu_features() -> dict[str, bool] | None:
    """The required features and whether this CPU has them; None where it cannot be told."""
    if sys.platform.startswith("linux"):
        try:
            text = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return {f: f in flags for f in REQUIRED}
        return None
    return None  # other systems: not checked (see packaging/README.md)


def missing_cpu_features() -> list[str]:
    from kobold_gui.core.llama.backends import has_cpu_variants, installed_folder

    folder = installed_folder()
    if folder is not None and has_cpu_variants(folder):
        return []
    features = cpu_features()
    return [f for f, present in (features or {}).items() if not present]
