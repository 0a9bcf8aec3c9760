"""ggml's own library (devices, backends, the RPC registry), opened by path from
llama-cpp-python's lib folder: the same handle llama-cpp-python and libllama already hold
(dlopen counts references), without importing llama-cpp-python's private `_ggml` module."""

from __future__ import annotations

import ctypes
import functools
import sys
from pathlib import Path

import llama_cpp

_NAMES = {"linux": "libggml.so", "darwin": "libggml.dylib", "win32": "ggml.dll"}


def library_folder() -> Path:
    """Where llama-cpp-python keeps libllama, libggml and ggml's backend libraries."""
    return Path(llama_cpp.__file__).resolve().parent / "lib"


@functools.cache
def libggml() -> ctypes.CDLL:
    platform = "linux" if sys.platform.startswith(("linux", "freebsd")) else sys.platform
    name = _NAMES.get(platform, "libggml.so")
    return ctypes.CDLL(str(library_folder() / name))
