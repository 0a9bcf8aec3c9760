"""The effective launch configuration: what llama.cpp will really be given, and why.

Computed without loading the model, so the window's labels and `--show-config` show the same
values the engine then passes (and a test reads back from the loaded context)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kobold_gui.core.batching import BatchPlan, effective_batch
from kobold_gui.core.gguf_info import GGUFInfo
from kobold_gui.core.hardware import HardwareReport, select_devices
from kobold_gui.core.options import LaunchConfig

CTX_PAD = 256  # llama_context pads n_ctx to a multiple of 256 (llama-context.cpp)
FLASH_ATTN = {"auto": -1, "off": 0, "on": 1}  # LLAMA_FLASH_ATTN_TYPE_*


@dataclass(frozen=True)
class ResolvedLaunch:
    model_path: Path | None
    config: LaunchConfig
    n_ctx: int  # as asked of llama.cpp
    n_ctx_effective: int  # after llama.cpp's padding
    batch: BatchPlan
    n_gpu_layers: int  # as passed to llama.cpp
    gpu_layers_note: str
    n_threads: int
    flash_attn_type: int
    device_handles: tuple[int, ...] | None = None  # None: every device llama.cpp has
    main_gpu: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "model": str(self.model_path) if self.model_path else None,
            "options": self.config.to_dict(),
            "effective": {
                "n_ctx": self.n_ctx_effective,
                "n_batch": self.batch.n_batch,
                "n_ubatch": self.batch.n_ubatch,
                "batch_reasons": list(self.batch.reasons),
                "batch_label": self.batch.label(),
                "n_gpu_layers": self.n_gpu_layers,
                "gpu_layers_note": self.gpu_layers_note,
                "n_threads": self.n_threads,
                "flash_attn": self.config.flashattention,
                "gpus": self.config.gpus,
                "main_gpu": self.main_gpu,
            },
        }


def resolve_gpu_layers(requested: int, n_layers: int | None, gpu_offload: bool) -> tuple[int, str]:
    """KoboldCPP's meanings: -1 automatic (all until the memory plan decides), above the
    model's layers + 1 means all (users type 99), and 0 when the build cannot offload.
    llama.cpp counts the output layer as one more layer: n_layers + 1 offloads everything."""
    if not gpu_offload:
        return 0, "0: this llama.cpp build has no GPU backend (CPU only)"
    total = n_layers + 1 if n_layers else None
    if requested < 0:
        if total is None:
            return 999, "automatic: all layers"
        return total, f"automatic: all {total} layers (the memory plan will choose later)"
    if total is not None and requested >= total:
        return total, f"all {total} layers (the output layer included)"
    if total is None:
        return requested, ""
    return requested, f"{requested} of {total} layers"


def resolve_launch(
    config: LaunchConfig,
    model_path: Path | None,
    info: GGUFInfo | None,
    gpu_offload: bool,
    hardware: HardwareReport | None = None,
) -> ResolvedLaunch:
    """Raises ConfigError for a GPU choice that this machine cannot satisfy."""
    n_ctx = config.contextsize
    n_ctx_effective = -(-n_ctx // CTX_PAD) * CTX_PAD
    # llama.cpp clamps n_batch by the n_ctx it is given, before padding n_ctx.
    batch = effective_batch(config.blasbatchsize, n_ctx, config.batchpolicy)
    n_gpu_layers, note = resolve_gpu_layers(
        config.gpulayers, info.n_layers if info else None, gpu_offload
    )
    choice = select_devices(config.gpus, config.maingpu, hardware)
    return ResolvedLaunch(
        model_path=model_path,
        config=config,
        n_ctx=n_ctx,
        n_ctx_effective=n_ctx_effective,
        batch=batch,
        n_gpu_layers=n_gpu_layers,
        gpu_layers_note=note,
        n_threads=config.resolved_threads(),
        flash_attn_type=FLASH_ATTN[config.flashattention],
        device_handles=choice.handles,
        main_gpu=choice.main_gpu,
    )
