"""Load llama.cpp's native library before numpy can be loaded.

Measured on H100s with the CUDA build: a process that imports numpy (directly, or through
gguf or pyqtgraph) before llama-cpp-python loads libllama crashes with a segmentation fault
in llama_model_load_from_file, before llama.cpp logs a line; the other order works. It is
numpy's own native libraries (its bundled OpenBLAS 0.3.34, libgfortran, libquadmath), not
their threads (OPENBLAS_NUM_THREADS=1 still crashed), and it happens on one GPU as on two.
A QApplication created before libllama is loaded did the same on the 2-GPU machine (the
window's own start imports kobold_gui first, so it never does). The window imports pyqtgraph
long before a model is loaded, and the CLI read GGUF headers (gguf, numpy) first:
kobold_gui's package import loads libllama first, for every process.
Only the shared library is loaded here (no Python of llama_cpp, which would import numpy)."""

from __future__ import annotations

import ctypes
import importlib.util
import sys
from pathlib import Path

_NAMES = {"linux": "libllama.so", "darwin": "libllama.dylib", "win32": "llama.dll"}


def load_llama_library() -> bool:
    """dlopen libllama (and with it libggml and its backends) with the mode llama-cpp-python
    uses, so that its own import later finds the same handle. False when it is not there
    (a build still to be made: the app says so later, when it imports llama_cpp)."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return False
    platform = "linux" if sys.platform.startswith(("linux", "freebsd")) else sys.platform
    name = _NAMES.get(platform)
    if name is None:
        return False
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "lib" / name
        if path.exists():
            try:
                ctypes.CDLL(str(path))
            except OSError:
                return False
            return True
    return False
