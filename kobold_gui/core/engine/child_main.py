"""The engine's child process (started by core/engine/child_process.py for a ChildEngine): one
LocalEngine, driven by calls from the app over a socket. A reader thread takes the calls and
the app's "cancel" messages (which set the running call's cancel event, llama.cpp's abort
callback), so Stop works as in-process. The devices of remote machines are registered here,
never in the app.

Signs of life: the engine looks at its cancel event all the time (llama.cpp's abort callback
once per graph node of the CPU's part, the load's progress callback once per tensor, the
sampler once per token). Each call's event counts those looks, and a heartbeat thread sends
"beat" every BEAT_S while the count moves: a main thread stuck in a machine that stopped
answering stops the beats, and the app ends this process (core/engine/child_process.py).
The same thread hands on streamed text that waits in the batcher, so the app has every
piece the engine produced before it hung.

This process never outlives the app: the kernel kills it when the app dies (Linux:
PR_SET_PDEATHSIG), and a closed socket (the app gone) ends it after PARENT_GONE_S even when
the engine is stuck."""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import sys
import threading
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

from kobold_gui.core.engine.child_process import BEAT_S
from kobold_gui.core.engine.local import LocalEngine
from kobold_gui.core.engine.text_batcher import CHILD_TO_PARENT_S, TextBatcher
from kobold_gui.core.engine.types import EngineError
from kobold_gui.core.launch.resolve import ResolvedLaunch
from kobold_gui.core.llama.types import LlamaError

PARENT_GONE_S = 2.0  # the app's socket closed: the engine gets this long to end, then exit


class _Watched(threading.Event):
    """A call's cancel event that counts the engine's looks at it (its signs of life)."""

    def __init__(self, child: _Child) -> None:
        super().__init__()
        self._child = child

    def is_set(self) -> bool:
        self._child.looks += 1
        return super().is_set()


class _Child:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.engine = LocalEngine()
        self.calls: queue.Queue[tuple[str, tuple[Any, ...], threading.Event] | None] = queue.Queue()
        self.replies: queue.Queue[Any] = queue.Queue()
        self.looks = 0
        self.current: threading.Event = _Watched(self)
        self.send_lock = threading.Lock()
        self.batcher: TextBatcher | None = None  # the running reply's
        self.ended = threading.Event()

    def send(self, message: tuple[Any, ...]) -> None:
        with self.send_lock:
            self.conn.send(message)

    def read(self) -> None:
        """The reader thread: calls are queued in order, a cancel hits the latest call."""
        try:
            while True:
                message = self.conn.recv()
                kind = message[0]
                if kind == "cancel":
                    self.current.set()
                elif kind == "reply":
                    self.replies.put(message[1])
                elif kind == "exit":
                    break
                else:
                    self.current = _Watched(self)
                    self.calls.put((kind, message[1], self.current))
        except (EOFError, OSError):  # the app is gone: stop too, stuck or not
            ending = threading.Timer(PARENT_GONE_S, os._exit, (1,))
            ending.daemon = True
            ending.start()
        self.current.set()
        self.calls.put(None)

    def beat(self) -> None:
        """The heartbeat thread: "beat" while the engine's looks move, and due text."""
        seen = self.looks
        while not self.ended.wait(BEAT_S):
            try:
                if (batcher := self.batcher) is not None:
                    batcher.flush_if_due()
                if self.looks != seen:
                    seen = self.looks
                    self.send(("beat", None))
            except OSError:
                return  # the app is gone; the reader ends this process

    def serve(self) -> None:
        threading.Thread(target=self.read, name="engine-child-reader", daemon=True).start()
        threading.Thread(target=self.beat, name="engine-child-beat", daemon=True).start()
        while (call := self.calls.get()) is not None:
            name, args, cancel = call
            try:
                result = getattr(self, f"do_{name}")(cancel, *args)
            except BaseException as e:  # handed back; the app decides what to say
                self.send(("error", e if _picklable(e) else EngineError(str(e))))
            else:
                self.send(("done", result))
        self.ended.set()
        self.engine.close()

    # -- calls ----------------------------------------------------------------------------
    def do_load(self, cancel: threading.Event, launch: ResolvedLaunch, info: Any) -> Any:
        launch = replace(launch, device_handles=_device_handles(launch))
        return self.engine.load(launch, lambda v: self.send(("progress", v)), cancel, info)

    def do_generate(self, cancel: threading.Event, tokens: list[int], params: Any) -> Any:
        """Text is gathered for the app (core/engine/text_batcher.py: CHILD_TO_PARENT_S)."""
        with TextBatcher(self._send_text, CHILD_TO_PARENT_S) as text:
            self.batcher = text
            try:
                return self.engine.generate(tokens, params, text.add, cancel)
            finally:
                self.batcher = None

    def _send_text(self, text: str) -> None:
        self.send(("text", text))

    def do_measure_batch(
        self, cancel: threading.Event, n_batch: int, n_ubatch: int, prompt: int, gen: int
    ) -> Any:
        def gpu_used() -> tuple[int, ...]:
            self.send(("gpu_used", None))  # read by the app, which has NVML open
            return tuple(self.replies.get())

        return self.engine.measure_batch(n_batch, n_ubatch, prompt, gen, cancel, gpu_used)


def _device_handles(launch: ResolvedLaunch) -> tuple[int, ...] | None:
    """The launch names its devices (handles are this process's pointers): register the
    remote machines' devices, in the launch's order, and look every name up."""
    from kobold_gui.core.remote.rpc_backend import add_servers, device_handle

    try:
        if launch.rpc_servers:
            add_servers(launch.rpc_servers)
        if launch.device_names is None:
            return None
        return tuple(device_handle(name) for name in launch.device_names)
    except LlamaError as e:  # the RPC backend's refusal, as the engine's own error
        raise EngineError(str(e)) from e


def _picklable(e: BaseException) -> bool:
    import pickle

    try:
        pickle.loads(pickle.dumps(e))
    except Exception:
        return False
    return True


def _die_with_parent() -> None:
    """Linux: the kernel kills this process when the thread that started it ends (the
    app's engine thread lives as long as the app's engine)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


def main(fd: int) -> int:
    _die_with_parent()
    _Child(Connection(fd)).serve()
    return 0
