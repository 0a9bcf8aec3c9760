"""ggml's own library (devices, backends, the RPC registry) as libllama uses it, without
importing llama-cpp-python's private `_ggml` module.

On Linux and macOS ggml's functions are looked up through libllama's handle, the one
llama-cpp-python and native_first.py hold (dlopen counts references): a lookup on a handle
searches the library's dependencies, so it finds the libggml that libllama loaded. Opening
libggml.so by path would not: a wheel holds libggml.so and libggml.so.0 as two copies of one
file (zip has no symbolic links), and libllama loads libggml.so.0; a second libggml in the
process has a backend registry of its own, which a model load never sees (with backends
loaded at run time, the load then finds no backend at all). Windows has one ggml.dll, and
GetProcAddress does not search dependencies: it is opened itself there."""

from __future__ import annotations

import ctypes
import functools
import sys
from pathlib import Path

import llama_cpp

_NAMES = {"linux": "libllama.so", "darwin": "libllama.dylib", "win32": "ggml.dll"}


def library_folder() -> Path:
    """Where llama-cpp-python keeps libllama, libggml and ggml's backend libraries."""
    return Path(llama_cpp.__file__).resolve().parent / "lib"


@functools.cache
def libggml() -> ctypes.CDLL:
    platform = "linux" if sys.platform.startswith(("linux", "freebsd")) else sys.platform
    name = _NAMES.get(platform, "libllama.so")
    return ctypes.CDLL(str(library_folder() / name))
