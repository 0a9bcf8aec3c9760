"""ggml's backends loaded at run time from llama-cpp-python's lib folder, and an account of
what loaded and what did not.

A llama.cpp built with GGML_BACKEND_DL links no backend into libggml: each is a module
(libggml-cpu-haswell.so, libggml-rpc.so, libggml-cuda.so, ...) that someone must load before
the first device query or model load, which otherwise finds no device. llama-cpp-python
0.3.36 does not, so this does, through ggml's own `ggml_backend_load_all_from_path`: ggml
picks the best CPU variant for this processor by each variant's `ggml_backend_score`, and a
GPU module whose driver library is missing fails to dlopen and is skipped. ggml says nothing
about the modules it skipped in a release build; each is then opened here once more to tell
why (the dynamic loader's error, or the CPU variant's score), and closed again.

A build with its backends linked in (they are registered before anything is loaded) has
nothing to load: that is reported too, and nothing is done.

KOBOLD_GUI_SKIP_BACKENDS=cuda (a comma list of module stems) leaves modules out, so that an
NVIDIA card runs through Vulkan instead of CUDA: when both load, llama.cpp keeps the first
device of each card (CUDA's) and skips the other backend's.
"""

from __future__ import annotations

import _ctypes
import ctypes
import importlib.util
import os
import re
import sys
from pathlib import Path
from typing import Any

from kobold_gui.core.llama.gpu_status import gpu_statuses
from kobold_gui.core.llama.types import BackendLoad, ModuleFailure

# The backends ggml_backend_load_all_from_path looks for, as it names their files.
_BACKENDS = (
    "blas", "zendnn", "cann", "cuda", "hip", "metal", "rpc", "sycl", "vulkan", "virtgpu", "opencl",
    "hexagon", "musa", "openvino", "cpu",
)  # fmt: skip
_WINDOWS = sys.platform == "win32"
_PREFIX, _SUFFIX = ("ggml-", ".dll") if _WINDOWS else ("libggml-", ".so")
_MODULE = re.compile(
    rf"{re.escape(_PREFIX)}(?P<backend>{'|'.join(_BACKENDS)})(?:-(?P<variant>.+))?"
    rf"{re.escape(_SUFFIX)}"
)


def module_files(folder: Path) -> list[Path]:
    """The files of `folder` that ggml_backend_load_all_from_path would consider."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _MODULE.fullmatch(p.name) and p.is_file())


def has_cpu_variants(folder: Path) -> bool:
    """Whether the CPU backend of the build in `folder` comes as variants (GGML_CPU_ALL_VARIANTS:
    one per instruction set, from plain x86-64 up), so that any processor runs it."""
    return any(_backend(p) == "cpu" and _variant(p) != "default" for p in module_files(folder))


def installed_folder() -> Path | None:
    """llama-cpp-python's lib folder, found without importing it (nor numpy)."""
    spec = importlib.util.find_spec("llama_cpp")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / "lib").is_dir():
            return Path(folder) / "lib"
    return None


def load_backends(lib: Any, folder: Path, skip: frozenset[str] | None = None) -> BackendLoad:
    """Load every backend module of `folder` through ggml (`lib`: libggml opened by ctypes),
    unless this build has its backends linked in. Call once per process, before anything
    asks ggml for a device. `skip`: module stems to leave out (default: the environment's
    KOBOLD_GUI_SKIP_BACKENDS)."""
    _declare(lib)
    if lib.ggml_backend_reg_count() > 0:  # linked in: nothing to load
        return BackendLoad(dynamic=False, registered=_registered(lib))
    skip = skipped_backends() if skip is None else skip
    files = module_files(folder)
    if skip:
        _load_except(lib, files, skip)
    else:
        lib.ggml_backend_load_all_from_path(os.fsencode(folder))
    mapped = _mapped_files()  # read once: each read stats every file the process maps
    loaded = [p for p in files if is_loaded(p, mapped)]
    cpu = next((p for p in loaded if _backend(p) == "cpu"), None)
    chosen = _variant(cpu) if cpu is not None else ""
    failures = tuple(
        ModuleFailure(p.name, "left out (KOBOLD_GUI_SKIP_BACKENDS)")
        if _backend(p) in skip
        else ModuleFailure(p.name, why_not_loaded(p, chosen))
        for p in files
        if p not in loaded
    )
    reasons = {f.file: f.reason for f in failures}
    return BackendLoad(
        dynamic=True,
        registered=_registered(lib),
        loaded=tuple(p.name for p in loaded),
        not_loaded=failures,
        cpu_variant=chosen,
        gpu=gpu_statuses(
            [(_backend(p), p.name, reasons.get(p.name)) for p in files if _backend(p) not in skip],
            _device_counts(lib),
        ),
        skipped=tuple(p.name for p in files if _backend(p) in skip),
    )


def skipped_backends() -> frozenset[str]:
    text = os.environ.get("KOBOLD_GUI_SKIP_BACKENDS", "")
    return frozenset(part.strip().lower() for part in text.split(",") if part.strip())


def _load_except(lib: Any, files: list[Path], skip: frozenset[str]) -> None:
    """What ggml_backend_load_all_from_path does, less the skipped backends: each backend in
    ggml's order, and of the CPU variants the one with the best score for this processor."""
    cpu = [p for p in files if _backend(p) == "cpu"]
    best = max(cpu, key=_score) if cpu and "cpu" not in skip else None
    for name in _BACKENDS:
        if name in skip:
            continue
        for path in files:
            if _backend(path) == name and (name != "cpu" or path == best):
                lib.ggml_backend_load(os.fsencode(path))


def _score(path: Path) -> int:
    try:
        score, _ = _probe(path)
    except OSError:
        return -1
    return score or 0


def _probe(path: Path) -> tuple[int | None, bool]:
    """Open a module to read its ggml_backend_score (None without one) and whether it has
    ggml_backend_init, then give it back. Raises OSError where it cannot be loaded."""
    module = ctypes.CDLL(str(path))
    try:
        score_fn = getattr(module, "ggml_backend_score", None)
        score = int(score_fn()) if score_fn is not None else None
        return score, hasattr(module, "ggml_backend_init")
    finally:
        _close(module)


def is_loaded(path: Path, mapped: set[tuple[int, int]] | None = None) -> bool:
    """Whether this process has the library at `path` loaded (without loading it). Linux:
    by file in the process's mappings (dlopen's RTLD_NOLOAD matches only the same name);
    `mapped` is _mapped_files() read once for several paths."""
    if sys.platform == "win32":
        return bool(ctypes.windll.kernel32.GetModuleHandleW(str(path)))
    if mapped is None:
        mapped = _mapped_files()
    if mapped is not None:
        return _file_id(path) in mapped
    try:
        ctypes.CDLL(str(path), mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
    except OSError:
        return False
    return True


def _mapped_files() -> set[tuple[int, int]] | None:
    """(device, inode) of every file mapped into this process; None without /proc."""
    try:
        lines = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return None
    ids = set()
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith("/"):
            ids.add(_file_id(Path(fields[5])))
    return ids


def _file_id(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError:
        return (-1, -1)
    return (st.st_dev, st.st_ino)


def why_not_loaded(path: Path, cpu_variant: str = "") -> str:
    """Why ggml did not load the module at `path`: the dynamic loader's own error where it
    cannot be loaded (a missing driver library, a file that is no library), else what its
    score or ggml made of it. `cpu_variant` is the CPU variant ggml chose instead."""
    try:
        score, has_init = _probe(path)
    except OSError as e:
        return _loader_error(str(e), path)
    if not has_init:
        return "not a ggml backend module (it has no ggml_backend_init)"
    if score == 0:
        if _backend(path) == "cpu":
            return "this processor lacks instructions it is built for"
        return "not supported on this system"
    if _backend(path) == "cpu" and cpu_variant:
        return f"{cpu_variant} suits this processor better"
    return "ggml did not register it (a different ggml version, or no device)"


def _loader_error(message: str, path: Path) -> str:
    """dlerror's text without the module's own path in front ('/x/libggml-cuda.so: ...')."""
    for prefix in (f"{path}: ", f"{path.name}: "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def _close(module: ctypes.CDLL) -> None:
    """Give back the reference taken to probe the module, so that what remains loaded is
    what ggml loaded."""
    if sys.platform == "win32":
        _ctypes.FreeLibrary(module._handle)
    else:
        _ctypes.dlclose(module._handle)


def _backend(path: Path) -> str:
    match = _MODULE.fullmatch(path.name)
    return match.group("backend") if match else ""


def _variant(path: Path) -> str:
    match = _MODULE.fullmatch(path.name)
    return (match.group("variant") if match else None) or "default"


def _registered(lib: Any) -> tuple[str, ...]:
    names = (
        lib.ggml_backend_reg_name(lib.ggml_backend_reg_get(i)) or b""
        for i in range(lib.ggml_backend_reg_count())
    )
    return tuple(n.decode(errors="replace") for n in names)


def _device_counts(lib: Any) -> dict[str, int]:
    """Devices per registered backend, by the backend's name (CUDA, Vulkan, ...)."""
    counts = {}
    for i in range(lib.ggml_backend_reg_count()):
        reg = lib.ggml_backend_reg_get(i)
        name = (lib.ggml_backend_reg_name(reg) or b"").decode(errors="replace")
        counts[name] = int(lib.ggml_backend_reg_dev_count(reg))
    return counts


def _declare(lib: Any) -> None:
    lib.ggml_backend_reg_count.restype = ctypes.c_size_t
    lib.ggml_backend_reg_count.argtypes = []
    lib.ggml_backend_reg_get.restype = ctypes.c_void_p
    lib.ggml_backend_reg_get.argtypes = [ctypes.c_size_t]
    lib.ggml_backend_reg_name.restype = ctypes.c_char_p
    lib.ggml_backend_reg_name.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_reg_dev_count.restype = ctypes.c_size_t
    lib.ggml_backend_reg_dev_count.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_load.restype = ctypes.c_void_p
    lib.ggml_backend_load.argtypes = [ctypes.c_char_p]
    lib.ggml_backend_load_all_from_path.restype = None
    lib.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
