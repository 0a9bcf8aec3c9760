"""The engine's child process, seen from the app: start it, call it, notice when it dies.

A load that uses remote devices runs in a child (core/engine/child_main.py): ggml's RPC client
aborts its whole process when a machine drops, and a registered remote device cannot be
removed again. The window and the API keep running; the child's end becomes an error.

Calls go over a socket pair as pickled tuples. The caller's thread waits for the answer and,
meanwhile, relays the child's events (load progress, streamed text) and its own cancel
event (Stop): a "cancel" message that the child's reader thread turns into llama.cpp's
abort callback, as in-process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from kobold_gui.core.engine.types import EngineError, ModelLost

POLL_S = 0.02  # how often a waiting call looks at its cancel event
# Set for a process the window starts (the Share panel's RPC server): it ends with the window.
DIE_WITH_PARENT = "KOBOLD_GUI_DIE_WITH_PARENT"


class ChildDied(EngineError):
    """The child process ended in the middle of a call (or before it)."""


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
        not None, is sent back). Raises what the child raised, or ChildDied."""
        with self._lock:
            try:
                self._conn.send((name, args))
            except OSError:
                raise self._died() from None
            sent_cancel = False
            while True:
                if cancel is not None and cancel.is_set() and not sent_cancel:
                    self._send(("cancel",))
                    sent_cancel = True
                try:
                    if not self._conn.poll(POLL_S):
                        if not self.alive():
                            raise self._died()
                        continue
                    message = self._conn.recv()
                except (EOFError, OSError):
                    raise self._died() from None
                kind = message[0]
                if kind == "done":
                    return message[1]
                if kind == "error":
                    raise message[1]
                if on_event is not None:
                    reply = on_event(kind, message[1])
                    if reply is not None:
                        self._send(("reply", reply))

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

    def close(self, timeout: float = 5.0) -> None:
        """Ask the child to free the model and exit; kill it when it does not."""
        if self.alive():
            self._send(("exit",))
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._conn.close()
        self._log.close()


def lost_model(
    e: ChildDied, endpoints: tuple[str, ...], child: EngineProcess, when: str
) -> ModelLost:
    """Say which machine stopped answering (each is asked again from Python), or, when all
    answer, how the child ended and its last error line."""
    from kobold_gui.core.remote.probe import RpcError, probe

    down = []
    for endpoint in endpoints:
        try:
            probe(endpoint, timeout=1.0)
        except RpcError as err:
            down.append(str(err))
    if down:
        what = f"lost the connection to a remote machine {when}: {'; '.join(down)}"
    else:
        tail = [line for line in child.output_tail() if "error" in line.lower()]
        what = f"{e} {when}" + (f" ({tail[-1].strip()})" if tail else "")
    unloaded = "" if when == "while loading" else "; the model was unloaded, the chat is kept"
    return ModelLost(f"{what}{unloaded}")
