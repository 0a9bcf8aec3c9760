"""What a load gives back: the model's facts and the values read back from llama.cpp."""

from __future__ import annotations

from dataclasses import dataclass, field

from kobold_gui.core.launch.resolve import ResolvedLaunch
from kobold_gui.core.models.gguf_info import GGUFInfo


@dataclass(frozen=True)
class LoadedModel:
    info: GGUFInfo
    launch: ResolvedLaunch
    n_ctx: int  # read back from the context
    n_batch: int
    n_ubatch: int
    load_seconds: float
    description: str
    log: tuple[str, ...] = field(repr=False, default=())
