"""The engine's child process, seen from the app: start it, call it, notice when it dies.

A load that uses remote devices runs in a child (core/engine/child_main.py): ggml's RPC client
aborts its whole process when a machine drops, and a registered remote device cannot be
removed again. The window and the API keep running; the child's end becomes an error.

Calls go over a socket pair as pickled tuples. The caller's thread waits for the answer and,
meanwhile, relays the child's events (load progress, streamed text) and its own cancel
event (Stop): a "cancel" message that the child's reader thread turns into llama.cpp's
abort callback, as in-process.

Nothing waits on the child forever. A machine that stops answering (a frozen process, a
stalled network: ggml's client waits on its socket without a limit) leaves the child's
engine stuck where Stop cannot reach it. So:
- Stop: a child that has not answered STOP_GRACE_S after "cancel" is ended (Unanswered).
- A stall: the child sends "beat" while its engine moves (core/engine/child_main.py: the
  looks at the cancel event, once per graph node of the CPU's part, per tensor loaded, per
  token); a call that hears nothing (no beat, text or progress) for its STALL_LIMITS_S is
  ended too. The limit is long enough for one ubatch of a long prompt on a slow machine
  (a remote split gives no sign of life until it returns) and short enough that the user
  hears within half a minute which machine stopped answering (ChildEngine asks each).
- No child outlives the app: every live one is ended at exit (atexit, end_children), and
  the child dies with the app anyway (PR_SET_PDEATHSIG, and a closed socket).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from kobold_gui.core.engine.types import EngineError, ModelLost

POLL_S = 0.02  # how often a waiting call looks at its cancel event
BEAT_S = 0.5  # how often a working child says that its engine moves
STOP_GRACE_S = 0.4  # how long Stop waits for the child before it is ended
# How long a call may go without any sign of life; loads send a tensor at a time, and one
# large tensor over a slow network can take a while.
STALL_LIMITS_S = {"load": 120.0, "generate": 30.0, "measure_batch": 30.0}
END_WAIT_S = 1.0  # how long an ended child gets after SIGTERM before SIGKILL
# Set for a process the window starts (the Share panel's RPC server): it ends with the window.
DIE_WITH_PARENT = "KOBOLD_GUI_DIE_WITH_PARENT"


class ChildDied(EngineError):
    """The child process ended in the middle of a call (or before it)."""


class Unanswered(ChildDied):
    """The child did not answer in time (Stop, or its time limit) and was ended."""

    def __init__(self, message: str, stopped: bool) -> None:
        super().__init__(message)
        self.stopped = stopped  # Stop was not answered (else: no sign of life in time)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.stopped))


_live: set[EngineProcess] = set()
_live_lock = threading.Lock()


def end_children() -> None:
    """End every engine child still running (the app quits; also registered with atexit)."""
    with _live_lock:
        children = list(_live)
    for child in children:
        child.end()


atexit.register(end_children)


def self_command(*args: str) -> list[str]:
    """This program with other arguments: the bundle's executable, or python -m kobold_gui."""
    if getattr(sys, "frozen", False):
        return [sys.executable, *args]
    return [sys.executable, "-m", "kobold_gui", *args]


class EngineProcess:
    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        # The child's output (ggml's abort message lands there); closed in close().
        self._log = tempfile.NamedTemporaryFile(prefix="kobold-engine-", suffix=".log")  # noqa: SIM115
        self._proc = subprocess.Popen(
            self_command("--engine-child", str(theirs.fileno())),
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        theirs.close()
        self._conn = Connection(ours.detach())
        self._lock = threading.Lock()  # one call at a time
        self.stop_grace_s = STOP_GRACE_S
        self.stall_limits_s = dict(STALL_LIMITS_S)
        with _live_lock:
            _live.add(self)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def alive(self) -> bool:
        return self._proc.poll() is None

    def call(
        self,
        name: str,
        *args: Any,
        on_event: Callable[[str, Any], Any] | None = None,
        cancel: threading.Event | None = None,
    ) -> Any:
        """Run `name(*args)` in the child; events go to on_event (whose return value, when
        not None, is sent back). Raises what the child raised, ChildDied, or Unanswered
        (the child was ended: Stop not answered, or no sign of life in time)."""
        with self._lock:
            try:
                self._conn.send((name, args))
            except OSError:
                raise self._died() from None
            watch = _Watch(cancel, self.stall_limits_s.get(name, max(STALL_LIMITS_S.values())))
            while True:
                self._keep_watch(watch)
                try:
                    if not self._conn.poll(POLL_S):
                        if not self.alive():
                            raise self._died()
                        continue
                    message = self._conn.recv()
                except (EOFError, OSError):
                    raise self._died() from None
                watch.last_sign = time.monotonic()
                kind = message[0]
                if kind == "done":
                    return message[1]
                if kind == "error":
                    raise message[1]
                if on_event is not None and kind != "beat":
                    reply = on_event(kind, message[1])
                    if reply is not None:
                        self._send(("reply", reply))

    def _keep_watch(self, watch: _Watch) -> None:
        """Pass Stop on; end the child when it does not answer it, or goes silent."""
        now = time.monotonic()
        if watch.cancel is not None and watch.cancel.is_set() and watch.cancelled_at is None:
            self._send(("cancel",))
            watch.cancelled_at = now
        if watch.cancelled_at is not None and now - watch.cancelled_at > self.stop_grace_s:
            self.end()
            raise Unanswered(
                f"the engine did not answer Stop within {self.stop_grace_s:g} s and was ended",
                stopped=True,
            )
        if now - watch.last_sign > watch.stall_limit_s:
            self.end()
            raise Unanswered(
                f"the engine made no progress for {watch.stall_limit_s:g} s and was ended",
                stopped=False,
            )

    def _send(self, message: tuple[Any, ...]) -> None:
        with contextlib.suppress(OSError):  # a dead child is noticed when receiving
            self._conn.send(message)

    def _died(self) -> ChildDied:
        try:
            code = self._proc.wait(5)
        except subprocess.TimeoutExpired:
            code = None
        how = "is not answering"
        if code is not None and code < 0:
            how = f"was ended by signal {signal.Signals(-code).name}"
        elif code is not None:
            how = f"exited with code {code}"
        return ChildDied(f"the engine process {how}")

    def output_tail(self, lines: int = 20) -> list[str]:
        """The child's last lines of stdout/stderr (ggml's abort message lands there)."""
        try:
            with open(self._log.name, "rb") as f:
                f.seek(max(0, os.path.getsize(self._log.name) - 16384))
                text = f.read().decode("utf-8", errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if line.strip()][-lines:]

    def end(self) -> None:
        """End the child now: SIGTERM, then SIGKILL when it has not gone in END_WAIT_S."""
        if self.alive():
            self._proc.terminate()
            try:
                self._proc.wait(END_WAIT_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        with _live_lock:
            _live.discard(self)

    def close(self, timeout: float = 2.0) -> None:
        """Ask the child to free the model and exit; end it when it does not."""
        if self.alive():
            self._send(("exit",))
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout)
        self.end()
        self._conn.close()
        self._log.close()


class _Watch:
    """What a waiting call keeps an eye on."""

    def __init__(self, cancel: threading.Event | None, stall_limit_s: float) -> None:
        self.cancel = cancel
        self.stall_limit_s = stall_limit_s
        self.last_sign = time.monotonic()  # the call's start, then the child's last message
        self.cancelled_at: float | None = None


def lost_model(
    e: ChildDied, endpoints: tuple[str, ...], child: EngineProcess, when: str
) -> ModelLost:
    """Say which machine stopped answering (each is asked again from Python, at once), or,
    when all answer, how the child ended and its last error line."""
    from kobold_gui.core.remote.probe import RpcSilent

    # After Stop the reply must end within a second: a machine gets less time to answer.
    timeout = 0.25 if isinstance(e, Unanswered) and e.stopped else 1.0
    down = _ask_machines(endpoints, timeout)
    silent = [err.endpoint for err in down if isinstance(err, RpcSilent)]
    unloaded = "" if when == "while loading" else "; the model was unloaded, the chat is kept"
    if isinstance(e, Unanswered):
        if silent:
            return ModelLost(f"{', '.join(silent)} stopped answering {when}: {e}{unloaded}")
        return ModelLost(f"{e} {when}{unloaded}")
    if down:
        what = f"lost the connection to a remote machine {when}: {'; '.join(map(str, down))}"
    else:
        tail = [line for line in child.output_tail() if "error" in line.lower()]
        what = f"{e} {when}" + (f" ({tail[-1].strip()})" if tail else "")
    return ModelLost(f"{what}{unloaded}")


def _ask_machines(endpoints: tuple[str, ...], timeout: float) -> list[Exception]:
    """Each machine's RpcError, in order; every machine is asked at the same time."""
    from concurrent.futures import ThreadPoolExecutor

    from kobold_gui.core.remote.probe import RpcError, probe

    def ask(endpoint: str) -> RpcError | None:
        try:
            probe(endpoint, timeout=timeout)
        except RpcError as err:
            return err
        return None

    if not endpoints:
        return []
    with ThreadPoolExecutor(len(endpoints), thread_name_prefix="ask-machine") as pool:
        return [err for err in pool.map(ask, endpoints) if err is not None]
