"""The launch's values in llama.cpp's model and context parameters, and the decode call:
what the in-process engine (core/engine/local.py) and its batch timing
(core/engine/batch_timing.py) both need."""

from __future__ import annotations

import ctypes
import logging
import threading
from typing import Any

import llama_cpp

from kobold_gui.core.engine.protocol import OnProgress
from kobold_gui.core.engine.types import EngineError, LoadCancelled, Stopped
from kobold_gui.core.launch.resolve import ResolvedLaunch
from kobold_gui.core.llama.log import first_error_since

log = logging.getLogger(__name__)


def load_model(
    launch: ResolvedLaunch,
    on_progress: OnProgress | None,
    cancel: threading.Event,
    log_start: int,
) -> Any:
    """llama_model_load_from_file with the launch's devices, layers and split. Progress goes
    to `on_progress`; `cancel` ends the load (LoadCancelled). Raises EngineError with
    llama.cpp's first error logged since `log_start`."""
    assert launch.model_path is not None

    def progress(value: float, _user: ctypes.c_void_p) -> bool:
        try:
            if on_progress is not None:
                on_progress(float(value))
        except Exception:  # a broken listener must not abort the load
            log.exception("progress listener failed")
        return not cancel.is_set()

    # Every ctypes object below is a local: alive until llama.cpp has returned.
    progress_cb = llama_cpp.llama_progress_callback(progress)
    mparams = llama_cpp.llama_model_default_params()
    mparams.n_gpu_layers = launch.n_gpu_layers
    mparams.main_gpu = launch.main_gpu
    mparams.split_mode = launch.split_mode
    if launch.tensor_split:  # llama.cpp reads llama_max_devices() floats
        split = (ctypes.c_float * llama_cpp.llama_max_devices())(*launch.tensor_split)
        mparams.tensor_split = split
    mparams.progress_callback = progress_cb
    if launch.device_handles is not None:  # NULL-terminated; llama.cpp copies it
        devices = (ctypes.c_void_p * (len(launch.device_handles) + 1))(*launch.device_handles, None)
        mparams.devices = ctypes.cast(devices, ctypes.c_void_p)
    model = llama_cpp.llama_model_load_from_file(str(launch.model_path).encode(), mparams)
    if not model:
        if cancel.is_set():
            raise LoadCancelled("loading was cancelled")
        reason = first_error_since(log_start) or "llama.cpp could not load the file"
        raise EngineError(f"could not load {launch.model_path.name}: {reason}")
    return model


def context_params(launch: ResolvedLaunch, n_batch: int, n_ubatch: int, abort_cb: Any) -> Any:
    """A context as the launch asks, with these batch sizes; `abort_cb` (llama.cpp's abort
    callback) is how Stop ends a decode within one graph node."""
    cparams = llama_cpp.llama_context_default_params()
    cparams.n_ctx = launch.n_ctx
    cparams.n_batch = n_batch
    cparams.n_ubatch = n_ubatch
    cparams.n_threads = launch.n_threads
    cparams.n_threads_batch = launch.n_threads
    cparams.flash_attn_type = launch.flash_attn_type
    cparams.type_k = cparams.type_v = launch.kv_type
    cparams.offload_kqv = launch.offload_kqv
    cparams.no_perf = True
    cparams.abort_callback = abort_cb
    if launch.n_seq_max > 1:  # parallel slots (core/engine/slots.py says why unified)
        cparams.n_seq_max = launch.n_seq_max
        cparams.kv_unified = True
    return cparams


def decode_on(ctx: Any, tokens: list[int]) -> None:
    """One llama_decode of `tokens` after those in the cache. Raises Stopped when the abort
    callback fired, EngineError when the decode failed."""
    arr = (llama_cpp.llama_token * len(tokens))(*tokens)
    rc = llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(arr, len(tokens)))
    if rc == 2:
        raise Stopped
    if rc != 0:
        raise EngineError(f"llama_decode failed with code {rc} (context full?)")
