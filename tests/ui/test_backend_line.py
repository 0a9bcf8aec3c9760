"""The window's backend line (ui/text/backend.py): the CPU variant ggml chose, and why a GPU
module did not load."""

from __future__ import annotations

from dataclasses import replace

from kobold_gui.core.llama.types import BackendInfo, BackendLoad, ModuleFailure
from kobold_gui.ui.text.backend import CUDA_HINT, backend_line

DL_CPU = BackendLoad(
    dynamic=True,
    registered=("RPC", "CPU"),
    loaded=("libggml-cpu-haswell.so", "libggml-rpc.so"),
    not_loaded=(
        ModuleFailure("libggml-cpu-skylakex.so", "this processor lacks its instructions"),
        ModuleFailure("libggml-cpu-x64.so", "haswell suits this processor better"),
    ),
    cpu_variant="haswell",
)


def test_the_line_names_the_cpu_variant() -> None:
    line = backend_line(BackendInfo("CPU", False, "0.3.36", "", DL_CPU))
    assert line.startswith("llama.cpp backend: CPU, CPU variant haswell (llama-cpp-python 0.3.36)")
    assert CUDA_HINT in line  # no GPU module in this build: how to get one
    assert "skylakex" not in line  # the CPU variants not chosen are no news


def test_a_gpu_module_that_did_not_load_is_said_with_its_reason() -> None:
    cuda = ModuleFailure("libggml-cuda.so", "libcuda.so.1: cannot open shared object file")
    loaded = replace(DL_CPU, not_loaded=(*DL_CPU.not_loaded, cuda))
    line = backend_line(BackendInfo("CPU", False, "0.3.36", "", loaded))
    assert line.endswith(
        ". Running on the CPU: libggml-cuda.so did not load: "
        "libcuda.so.1: cannot open shared object file"
    )
    assert CUDA_HINT not in line


def test_a_build_with_its_backends_linked_in_names_no_variant() -> None:
    line = backend_line(BackendInfo("CUDA", True, "0.3.36", "", BackendLoad(registered=("CUDA",))))
    assert line == "llama.cpp backend: CUDA (llama-cpp-python 0.3.36)"
