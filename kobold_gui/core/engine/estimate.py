"""llama.cpp's own estimate of a launch's buffers, without allocating them: the model is
loaded with `no_alloc` (metadata only, no weights read) and a context is created on it,
which reserves the compute graphs and logs the compute buffer each device would get.

This is the exact figure the memory plan models (pipeline parallelism included); it needs
the real devices, so the plan for assumed GPUs stays the model. On CUDA it initializes the
devices it plans for: call it in a child process when the CUDA contexts it makes must not
stay with the app."""

from __future__ import annotations

import ctypes
from typing import Any

import llama_cpp

from kobold_gui.core.engine.types import EngineError
from kobold_gui.core.launch.resolve import ResolvedLaunch
from kobold_gui.core.llama.buffers import parse_buffer_sizes
from kobold_gui.core.llama.library import init_backend
from kobold_gui.core.llama.log import first_error_since, llama_log_count, llama_log_since


def estimate_buffers(launch: ResolvedLaunch) -> dict[str, dict[str, int]]:
    """{device: {"compute": bytes, ...}} as llama.cpp would allocate them for this launch."""
    if launch.model_path is None:
        raise EngineError("no model selected")
    init_backend()
    mark = llama_log_count()
    params = llama_cpp.llama_model_default_params()
    params.no_alloc = True
    params.load_mode = llama_cpp.LLAMA_LOAD_MODE_NONE  # no_alloc maps nothing
    params.n_gpu_layers = launch.n_gpu_layers
    params.main_gpu = launch.main_gpu
    params.split_mode = launch.split_mode
    keep: list[Any] = []
    if launch.tensor_split:
        split = (ctypes.c_float * llama_cpp.llama_max_devices())(*launch.tensor_split)
        params.tensor_split = split
        keep.append(split)
    if launch.device_handles is not None:
        devices = (ctypes.c_void_p * (len(launch.device_handles) + 1))(*launch.device_handles, None)
        params.devices = ctypes.cast(devices, ctypes.c_void_p)
        keep.append(devices)
    model = llama_cpp.llama_model_load_from_file(str(launch.model_path).encode(), params)
    if not model:
        raise EngineError(
            f"llama.cpp could not read {launch.model_path.name}: "
            f"{first_error_since(mark) or 'unknown error'}"
        )
    try:
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = launch.n_ctx
        cparams.n_batch = launch.batch.n_batch
        cparams.n_ubatch = launch.batch.n_ubatch
        cparams.flash_attn_type = launch.flash_attn_type
        cparams.type_k = cparams.type_v = launch.kv_type
        cparams.offload_kqv = launch.offload_kqv
        if launch.n_seq_max > 1:  # as core/engine/llama_params.py's context_params
            cparams.n_seq_max, cparams.kv_unified = launch.n_seq_max, True
        ctx = llama_cpp.llama_init_from_model(model, cparams)
        if not ctx:
            raise EngineError(f"no context: {first_error_since(mark) or 'unknown error'}")
        llama_cpp.llama_free(ctx)
    finally:
        llama_cpp.llama_model_free(model)
    return parse_buffer_sizes(llama_log_since(mark))
