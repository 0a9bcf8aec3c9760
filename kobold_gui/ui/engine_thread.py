"""The bridge between the window and the engine: one worker object in its own QThread owns
the Engine; the GUI talks to it only through queued signals (and a thread-safe stop flag)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from PySide6.QtCore import QObject, QThread, Signal, Slot

from kobold_gui.core.chat_format import Message
from kobold_gui.core.engine import Engine
from kobold_gui.core.engine_types import EngineError, LoadCancelled, SamplingParams
from kobold_gui.core.gguf_info import GGUFInfo, ModelFileError
from kobold_gui.core.launch import ResolvedLaunch
from kobold_gui.core.sweep import run_sweep
from kobold_gui.core.sweep_results import Candidate

# Streamed text reaches the GUI at most this often: a burst of 1000+ tokens/s becomes ~30
# updates/s, each appending a chunk, so the GUI thread never falls behind.
TEXT_FLUSH_S = 0.033


class EngineWorker(QObject):
    loadProgress = Signal(float)
    loaded = Signal(object)  # LoadedModel
    loadFailed = Signal(str, bool, object)  # message, cancelled, LoadedModel still loaded
    unloaded = Signal()
    text = Signal(str)
    replyFinished = Signal(object)  # GenerationResult
    replyFailed = Signal(str)
    sweepRow = Signal(int, object)  # index, SweepRow
    sweepFinished = Signal(object)  # list[SweepRow]

    def __init__(self) -> None:
        super().__init__()
        self.engine = Engine()

    @Slot(object, int, int, int, object)
    def sweep(
        self,
        candidates: list[Candidate],
        prompt: int,
        gen: int,
        repeats: int,
        cancel: threading.Event,
    ) -> None:
        rows = []
        try:
            rows = run_sweep(
                self.engine,
                candidates,
                prompt,
                gen,
                lambda i, row: self.sweepRow.emit(i, row),
                cancel,
                repeats=repeats,
            )
        except EngineError as e:  # no model loaded, say
            self.replyFailed.emit(str(e))
        except Exception as e:  # a bug: said, and the window gets its Load button back
            self.replyFailed.emit(f"unexpected error in the sweep: {type(e).__name__}: {e}")
        self.sweepFinished.emit(rows)

    @Slot(object, object, object)
    def load(self, launch: ResolvedLaunch, info: GGUFInfo | None, cancel: threading.Event) -> None:
        last = [-1.0]

        def progress(value: float) -> None:
            if value - last[0] >= 0.01 or value >= 1.0:
                last[0] = value
                self.loadProgress.emit(value)

        try:
            result = self.engine.load(launch, progress, cancel, info)
        except LoadCancelled:
            self.loadFailed.emit("Loading was cancelled.", True, self.engine.loaded)
        except (EngineError, ModelFileError) as e:
            self.loadFailed.emit(str(e), False, self.engine.loaded)
        except Exception as e:  # a bug: say it instead of dying silently
            message = f"unexpected error while loading: {type(e).__name__}: {e}"
            self.loadFailed.emit(message, False, self.engine.loaded)
        else:
            self.loaded.emit(result)

    @Slot()
    def unload(self) -> None:
        self.engine.close()
        self.unloaded.emit()

    @Slot(object, object, object)
    def generate(
        self, messages: Sequence[Message], params: SamplingParams, cancel: threading.Event
    ) -> None:
        buffer: list[str] = []
        last_flush = [time.perf_counter()]

        def on_text(piece: str) -> None:
            buffer.append(piece)
            now = time.perf_counter()
            if now - last_flush[0] >= TEXT_FLUSH_S:
                self.text.emit("".join(buffer))
                buffer.clear()
                last_flush[0] = now

        try:
            result = self.engine.chat(messages, params, on_text, cancel)
        except EngineError as e:
            self.replyFailed.emit(str(e))
            return
        except Exception as e:
            self.replyFailed.emit(f"unexpected error: {type(e).__name__}: {e}")
            return
        finally:
            if buffer:
                self.text.emit("".join(buffer))
        self.replyFinished.emit(result)


class EngineController(QObject):
    """Owned by the window (GUI thread). Starts the worker thread and forwards requests.

    The worker's signals are re-emitted by this object, which lives in the GUI thread: any
    Python callable connected here runs on the GUI thread (a callable connected straight to
    the worker's signals would run on the engine thread)."""

    loadProgress = Signal(float)
    loaded = Signal(object)
    loadFailed = Signal(str, bool, object)
    unloaded = Signal()
    text = Signal(str)
    replyFinished = Signal(object)
    replyFailed = Signal(str)

    _requestLoad = Signal(object, object, object)
    _requestUnload = Signal()
    _requestGenerate = Signal(object, object, object)
    _requestSweep = Signal(object, int, int, int, object)
    sweepRow = Signal(int, object)
    sweepFinished = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine_thread = QThread()
        self.engine_thread.setObjectName("engine")
        self.worker = EngineWorker()
        self.worker.moveToThread(self.engine_thread)
        self._requestLoad.connect(self.worker.load)
        self._requestUnload.connect(self.worker.unload)
        self._requestGenerate.connect(self.worker.generate)
        self._requestSweep.connect(self.worker.sweep)
        for name in (
            "loadProgress",
            "loaded",
            "loadFailed",
            "unloaded",
            "text",
            "replyFinished",
            "replyFailed",
            "sweepRow",
            "sweepFinished",
        ):
            getattr(self.worker, name).connect(getattr(self, name))
        self._load_cancel: threading.Event | None = None
        self._reply_cancel: threading.Event | None = None
        self.engine_thread.start()

    def load(self, launch: ResolvedLaunch, info: GGUFInfo | None = None) -> None:
        self._load_cancel = threading.Event()
        self._requestLoad.emit(launch, info, self._load_cancel)

    def cancel_load(self) -> None:
        if self._load_cancel is not None:
            self._load_cancel.set()

    def unload(self) -> None:
        self._requestUnload.emit()

    def send(self, messages: Sequence[Message], params: SamplingParams) -> None:
        self._reply_cancel = threading.Event()
        self._requestGenerate.emit(list(messages), params, self._reply_cancel)

    def sweep(self, candidates: list[Candidate], prompt: int, gen: int, repeats: int = 1) -> None:
        self._reply_cancel = threading.Event()  # Stop and close cancel a sweep as a reply
        self._requestSweep.emit(candidates, prompt, gen, repeats, self._reply_cancel)

    def stop(self) -> None:
        """Thread-safe and immediate: llama.cpp's abort callback reads this flag."""
        if self._reply_cancel is not None:
            self._reply_cancel.set()

    def shutdown(self, timeout_ms: int = 10000) -> bool:
        """Stop whatever runs, end the thread, free the model. True when it ended in time."""
        self.cancel_load()
        self.stop()
        self.engine_thread.quit()
        ended = self.engine_thread.wait(timeout_ms)
        if ended:
            self.worker.engine.close()
        return bool(ended)
