"""What the engine thread tells the window, one type per event. The controller posts them
through one queued signal and turns each into its public signal on the GUI thread
(ui/engine/controller.py); a type checker sees every field."""

from __future__ import annotations

from dataclasses import dataclass

from kobold_gui.core.benchmark.results import SweepRow
from kobold_gui.core.engine.loaded_model import LoadedModel
from kobold_gui.core.engine.types import GenerationResult


@dataclass(frozen=True)
class LoadProgress:
    value: float  # 0..1


@dataclass(frozen=True)
class Loaded:
    model: LoadedModel


@dataclass(frozen=True)
class LoadFailed:
    message: str
    cancelled: bool
    still_loaded: LoadedModel | None  # the model that stays loaded, if any


@dataclass(frozen=True)
class Unloaded:
    reason: str = ""  # why, when the model was lost (ModelLost's message)


@dataclass(frozen=True)
class Text:
    text: str  # streamed text, gathered (core/engine/text_batcher.py)


@dataclass(frozen=True)
class ReplyFinished:
    result: GenerationResult


@dataclass(frozen=True)
class ReplyFailed:
    message: str


@dataclass(frozen=True)
class SweepRowDone:
    index: int
    row: SweepRow


@dataclass(frozen=True)
class SweepEstimate:
    seconds: float  # the whole sweep at the warm-up's speeds


@dataclass(frozen=True)
class SweepFinished:
    rows: list[SweepRow]


EngineEvent = (
    LoadProgress
    | Loaded
    | LoadFailed
    | Unloaded
    | Text
    | ReplyFinished
    | ReplyFailed
    | SweepRowDone
    | SweepEstimate
    | SweepFinished
)
