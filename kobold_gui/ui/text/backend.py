"""The window's backend line (bottom left): llama.cpp's backend, the CPU variant ggml chose,
and why a GPU backend module did not load (Qt-free, so it is tested without a window)."""

from __future__ import annotations

from kobold_gui.core.llama.types import BackendInfo, ModuleFailure

CUDA_HINT = (
    "GPUs need a build with GPU modules (the bundle: packaging/build.sh --backends "
    "cpu,cuda,vulkan; a source checkout: KOBOLD_GUI_BACKENDS=cpu,cuda bash tools/dev.sh setup)."
)
# Modules whose failure to load is no GPU going missing: the CPU variants ggml did not
# choose, and the RPC backend (other machines' devices).
_NOT_GPU = ("libggml-cpu", "ggml-cpu", "libggml-rpc", "ggml-rpc")


def backend_line(backend: BackendInfo) -> str:
    loaded = backend.backends
    text = f"llama.cpp backend: {backend.name}"
    if loaded.cpu_variant:
        text += f", CPU variant {loaded.cpu_variant}"
    text += f" (llama-cpp-python {backend.llama_cpp_python})"
    if backend.gpu_offload:
        return text
    problems = [g.summary for g in loaded.gpu if g.problem]
    if problems:  # GPU modules that give no GPU here, each with its reason
        return f"{text}. Running on the CPU: {'; '.join(problems)}"
    missing = gpu_modules_not_loaded(backend)
    if missing:
        reasons = "; ".join(f"{f.file} did not load: {f.reason}" for f in missing)
        return f"{text}. Running on the CPU: {reasons}"
    return f"{text}. This build cannot offload to a GPU. {CUDA_HINT}"


def gpu_modules_not_loaded(backend: BackendInfo) -> list[ModuleFailure]:
    """Modules that did not load and are neither a CPU variant nor RPC, nor left out on
    purpose (for builds whose GPU modules have no status: a module of an unknown backend)."""
    known = {g.file for g in backend.backends.gpu} | set(backend.backends.skipped)
    return [
        f
        for f in backend.backends.not_loaded
        if not f.file.startswith(_NOT_GPU) and f.file not in known
    ]
