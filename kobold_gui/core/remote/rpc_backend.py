"""llama.cpp's RPC backend through ggml's registry (llama-cpp-python binds none of it).

Remote devices are added as llama.cpp's own tools add them (common/arg.cpp's --rpc): the
RPC backend's `ggml_backend_rpc_add_server` proc address, then `ggml_backend_register`.
ggml aborts the process when a server cannot be reached, and a registered device cannot be
removed again: call this only in the engine's child process, after core/remote/probe.py has
checked every machine.

The server side is the same library's `ggml_backend_rpc_start_server`, which llama.cpp's
rpc-server tool (tools/rpc/rpc-server.cpp) also only wraps: the same build serves and
connects, so the protocol versions always match.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kobold_gui.core.llama.types import LlamaError


@dataclass(frozen=True)
class RegisteredDevice:
    name: str  # RPC0, RPC1, ... in the order the servers were added
    endpoint: str
    handle: int


def _lib() -> Any:
    from kobold_gui.core.hardware.ggml_devices import _lib as ggml_lib
    from kobold_gui.core.llama.library import init_backend

    init_backend()
    lib = ggml_lib()
    lib.ggml_backend_reg_by_name.restype = ctypes.c_void_p
    lib.ggml_backend_reg_by_name.argtypes = [ctypes.c_char_p]
    lib.ggml_backend_register.restype = None
    lib.ggml_backend_register.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_reg_dev_count.restype = ctypes.c_size_t
    lib.ggml_backend_reg_dev_count.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_reg_dev_get.restype = ctypes.c_void_p
    lib.ggml_backend_reg_dev_get.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    lib.ggml_backend_dev_by_name.restype = ctypes.c_void_p
    lib.ggml_backend_dev_by_name.argtypes = [ctypes.c_char_p]
    return lib


def _rpc_proc(lib: Any, name: str) -> int:
    reg = lib.ggml_backend_reg_by_name(b"RPC")
    if not reg:
        raise LlamaError(
            "this llama.cpp build has no RPC backend: rebuild it with -DGGML_RPC=ON "
            "(bash tools/dev.sh setup does)"
        )
    fn = lib.ggml_backend_reg_get_proc_address(reg, name.encode())
    if not fn:
        raise LlamaError(f"the RPC backend has no {name}")
    return int(fn)


def has_rpc() -> bool:
    try:
        _rpc_proc(_lib(), "ggml_backend_rpc_add_server")
    except LlamaError:
        return False
    return True


_added: dict[str, list[RegisteredDevice]] = {}


def add_servers(endpoints: tuple[str, ...]) -> list[RegisteredDevice]:
    """Register each server's devices (once per endpoint and process), in order."""
    lib = _lib()
    add = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_char_p)(
        _rpc_proc(lib, "ggml_backend_rpc_add_server")
    )
    out: list[RegisteredDevice] = []
    for endpoint in endpoints:
        if endpoint not in _added:
            reg = add(endpoint.encode())
            if not reg:
                raise LlamaError(f"{endpoint} offers no device")
            lib.ggml_backend_register(reg)
            devices = []
            for i in range(lib.ggml_backend_reg_dev_count(reg)):
                handle = lib.ggml_backend_reg_dev_get(reg, i)
                name = lib.ggml_backend_dev_name(handle).decode()
                devices.append(RegisteredDevice(name, endpoint, int(handle)))
            _added[endpoint] = devices
        out.extend(_added[endpoint])
    return out


def device_handle(name: str) -> int:
    """A local device of this process by llama.cpp's name (CUDA0, CPU, RPC1, ...)."""
    handle = _lib().ggml_backend_dev_by_name(name.encode())
    if not handle:
        raise LlamaError(f"llama.cpp has no device named {name}")
    return int(handle)


def cache_dir() -> Path:
    """Where llama.cpp's rpc-server keeps its tensor cache (common.cpp's
    fs_get_cache_directory() / "rpc"): LLAMA_CACHE when set, else the user's cache folder."""
    base = os.environ.get("LLAMA_CACHE")
    if base:
        return Path(base) / "rpc"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "llama.cpp" / "rpc"


def serve(endpoint: str, device_names: list[str], use_cache: bool, n_threads: int) -> None:
    """Run llama.cpp's RPC server in this process; returns only when it fails to start."""
    lib = _lib()
    start = ctypes.CFUNCTYPE(
        None,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_size_t,
        ctypes.POINTER(ctypes.c_void_p),
    )(_rpc_proc(lib, "ggml_backend_rpc_start_server"))
    handles = [device_handle(n) for n in device_names]
    _unbuffer_c_stdout()
    array = (ctypes.c_void_p * len(handles))(*handles)
    folder = None
    if use_cache:
        path = cache_dir()
        path.mkdir(parents=True, exist_ok=True)
        folder = str(path).encode()
    start(endpoint.encode(), folder, n_threads, len(handles), array)


def _unbuffer_c_stdout() -> None:
    """ggml's server prints its state with printf and flushes only per client: into a pipe
    (the window's Share panel, a service manager) nothing would show until the first client.
    Line buffering, as on a terminal."""
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)
        stdout = ctypes.c_void_p.in_dll(libc, "stdout")
        libc.setvbuf(stdout, None, 1, 0)  # _IOLBF
    except (OSError, ValueError, AttributeError):
        pass
