"""A remote machine that freezes mid-reply (a real llama.cpp RPC server stopped with SIGSTOP:
the connection stays open, nothing answers): Stop ends the reply within a second, a reply
left running is ended by its time limit, and both name the machine. The engine's child
process never outlives its parent, not even one killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kobold_gui.core.engine import child_process
from kobold_gui.core.engine.child import ChildEngine
from kobold_gui.core.engine.prompt_template import Message
from kobold_gui.core.engine.types import GenerationResult, ModelLost, SamplingParams
from kobold_gui.core.launch.options import LaunchConfig
from kobold_gui.core.launch.resolve import ResolvedLaunch, resolve_launch
from kobold_gui.core.models.gguf_info import read_gguf
from kobold_gui.core.remote.probe import probe
from tests.rpc_servers import RpcServer, rpc_servers

STORY = [Message("user", "Tell me a long story about a dragon.")]
ENDLESS = SamplingParams(max_tokens=5000, temperature=1.0, seed=3, ban_eos=True)
HANG_GUARD_S = 120  # far above any limit below: only a hang reaches it
# The issue asks for 1 s; a busy test machine gets more, a broken Stop (30 s, or never) fails.
STOP_BOUND_S = 3.0


def remote_launch(model: Path, endpoints: list[str]) -> ResolvedLaunch:
    """Every layer on the machines, split evenly: each token waits on all of them at once
    (a frozen machine stops the engine within the token, on a busy test machine too)."""
    split = ",".join("1" for _ in endpoints) if len(endpoints) > 1 else ""
    config = LaunchConfig().with_values(
        rpc=",".join(endpoints), gpulayers=99, tensor_split=split, contextsize=1024
    )
    remote = [d for e in endpoints for d in probe(e).devices]
    return resolve_launch(config, model, read_gguf(model), False, None, None, None, remote)


def pid_alive(pid: int) -> bool:
    """A process that exists and is not a zombie (an ended child not yet waited for)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_gone(pid: int, limit_s: float = 10.0) -> bool:
    end = time.monotonic() + limit_s
    while pid_alive(pid):
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


@contextmanager
def frozen_on_resume(server: RpcServer) -> Iterator[Callable[[], None]]:
    """freeze() stops the server's process (SIGSTOP); it is let go again at the end."""
    try:
        yield lambda: os.kill(server.proc.pid, signal.SIGSTOP)
    finally:
        if server.proc.poll() is None:
            os.kill(server.proc.pid, signal.SIGCONT)


def chat_in_thread(
    engine: ChildEngine, on_text: Callable[[str], None], cancel: threading.Event | None = None
) -> tuple[threading.Thread, list[GenerationResult | BaseException]]:
    """The reply on a thread of its own, so that a hang fails the test instead of hanging it."""
    out: list[GenerationResult | BaseException] = []

    def run() -> None:
        try:
            out.append(engine.chat(STORY, ENDLESS, on_text, cancel))
        except BaseException as e:
            out.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def end_stuck(engine: ChildEngine) -> None:
    """Cleanup for a broken engine that still waits: end its child so the thread returns."""
    if engine._child is not None and engine._child.alive():
        engine._child._proc.kill()


def test_stop_ends_a_reply_over_a_frozen_machine_within_a_second(
    default_model: Path, tmp_path: Path
) -> None:
    with rpc_servers(tmp_path, 2) as pair, frozen_on_resume(pair[1]) as freeze:
        engine = ChildEngine()
        engine.load(remote_launch(default_model, [s.endpoint for s in pair]))
        assert engine._child is not None
        child_pid = engine._child.pid
        cancel = threading.Event()
        frozen = threading.Event()
        pieces: list[str] = []

        def on_text(piece: str) -> None:
            pieces.append(piece)
            if not frozen.is_set():
                frozen.set()
                freeze()

        thread, out = chat_in_thread(engine, on_text, cancel)
        assert frozen.wait(HANG_GUARD_S), "no text came"
        time.sleep(1.0)  # the child is stuck in the frozen machine by now
        stopped_at = time.monotonic()
        cancel.set()  # Stop
        thread.join(HANG_GUARD_S)
        took = time.monotonic() - stopped_at
        if thread.is_alive():
            end_stuck(engine)
            pytest.fail("Stop did not end the reply")
        assert took < STOP_BOUND_S, f"Stop took {took:.1f} s"
        (lost,) = out
        assert isinstance(lost, ModelLost), lost
        message = str(lost)
        assert "did not answer Stop" in message and "chat is kept" in message
        assert f"{pair[1].endpoint} stopped answering" in message
        assert pair[0].endpoint not in message  # the healthy machine is not blamed
        assert pieces and engine.loaded is None  # the text so far came; the model is gone
        assert wait_gone(child_pid, 2.0)
        assert engine._child is None


def test_a_frozen_machine_is_named_after_the_time_limit(
    default_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody presses Stop: the reply's time limit (30 s in the app, 4 s here) ends it."""
    monkeypatch.setitem(child_process.STALL_LIMITS_S, "generate", 4.0)
    with rpc_servers(tmp_path, 2) as pair, frozen_on_resume(pair[0]) as freeze:
        engine = ChildEngine()
        engine.load(remote_launch(default_model, [s.endpoint for s in pair]))
        frozen_at: list[float] = []

        def on_text(_piece: str) -> None:
            if not frozen_at:
                frozen_at.append(time.monotonic())
                freeze()

        thread, out = chat_in_thread(engine, on_text)
        thread.join(HANG_GUARD_S)
        if thread.is_alive():
            end_stuck(engine)
            pytest.fail("a reply over a frozen machine never ended")
        took = time.monotonic() - frozen_at[0]
        assert 4.0 <= took < 4.0 + 5.0, took  # the limit, then the machines asked
        (lost,) = out
        assert isinstance(lost, ModelLost), lost
        message = str(lost)
        assert f"{pair[0].endpoint} stopped answering during the reply" in message
        assert "no progress for 4 s" in message and pair[1].endpoint not in message
        assert engine.loaded is None


def test_a_reply_that_streams_no_text_is_not_cut_by_the_time_limit(
    default_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signs of life are the engine's own progress, not text: a reply of tokens that show
    nothing (a control token, pushed by a logit bias) runs past the limit and ends whole."""
    monkeypatch.setitem(child_process.STALL_LIMITS_S, "generate", 1.5)
    with rpc_servers(tmp_path, 1) as pair:
        engine = ChildEngine()
        engine.load(remote_launch(default_model, [pair[0].endpoint]))
        im_start = engine.tokenize("<|im_start|>", add_special=False)
        assert len(im_start) == 1
        params = SamplingParams(max_tokens=120, temperature=0.0, logit_bias=((im_start[0], 99.0),))
        pieces: list[str] = []
        started = time.monotonic()
        result = engine.chat(STORY, params, pieces.append)
        took = time.monotonic() - started
        assert result.generated_tokens == 120 and not pieces and engine.loaded is not None
        assert took > 1.5, took  # silent for longer than the limit
        engine.close()


def test_a_killed_parent_leaves_no_engine_child_even_when_it_is_stuck(
    default_model: Path, tmp_path: Path
) -> None:
    """The app's process is killed (SIGKILL: nothing of it runs) while its engine's child
    waits on a frozen machine: the child ends too (the kernel's parent-death signal, and
    the closed socket), and does not hold the healthy machine."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from tests.core.test_hung_machine import STORY, ENDLESS, remote_launch\n"
        "from kobold_gui.core.engine.child import ChildEngine\n"
        "engine = ChildEngine()\n"
        "engine.load(remote_launch(Path(sys.argv[1]), sys.argv[2:]))\n"
        "said = []\n"
        "def on_text(_t):\n"
        "    if not said:\n"
        "        said.append(print('PID', engine._child.pid, flush=True))\n"
        "engine.chat(STORY, ENDLESS, on_text)\n"
    )
    with rpc_servers(tmp_path, 2) as pair, frozen_on_resume(pair[1]) as freeze:
        app = subprocess.Popen(
            [sys.executable, "-c", script, str(default_model), *(s.endpoint for s in pair)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )
        child_pid = 0
        try:
            line = app.stdout.readline() if app.stdout else ""
            assert line.startswith("PID"), line
            child_pid = int(line.split()[1])
            freeze()
            time.sleep(1.0)  # the child is stuck in the frozen machine by now
            app.kill()
            app.wait()
            assert wait_gone(child_pid, 5.0), "the engine child outlived its parent"
        finally:
            app.kill()
            if child_pid and pid_alive(child_pid):
                os.kill(child_pid, signal.SIGKILL)


def children_of(pid: int) -> list[int]:
    """The processes `pid` started (Linux: each thread's list)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"]
)
def test_the_cli_ends_a_reply_over_a_frozen_machine_and_leaves_no_child(
    default_model: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    """`kobold-gui --prompt` over a machine that freezes mid-reply: Ctrl+C (or SIGTERM) ends
    it within seconds, naming the machine; a killed CLI leaves no engine process either."""
    with rpc_servers(tmp_path, 1) as (server,), frozen_on_resume(server) as freeze:
        err = tmp_path / "stderr.txt"
        launch = ["--rpc", server.endpoint, "--gpulayers", "99", "--contextsize", "1024"]
        ask = ["--prompt", "Tell me a long story about a dragon.", "--max-tokens", "2000"]
        ask += ["--temperature", "1", "--seed", "3"]
        with err.open("w") as err_file:
            cli = subprocess.Popen(
                [sys.executable, "-m", "kobold_gui", "--model", str(default_model), *launch, *ask],
                stdout=subprocess.PIPE,
                stderr=err_file,
            )
        child_pid = 0
        try:
            assert cli.stdout is not None and cli.stdout.read(1), err.read_text()  # text
            (child_pid,) = children_of(cli.pid)
            freeze()
            time.sleep(1.0)  # the engine is stuck in the frozen machine by now
            assert cli.poll() is None and pid_alive(child_pid)  # the reply had not ended
            signalled = time.monotonic()
            cli.send_signal(sig)
            try:
                code = cli.wait(20)
            except subprocess.TimeoutExpired:
                pytest.fail(f"the CLI did not end on {sig.name}")
            took = time.monotonic() - signalled
            assert wait_gone(child_pid, 5.0), "the engine child outlived the CLI"
        finally:
            cli.kill()
            if child_pid and pid_alive(child_pid):
                os.kill(child_pid, signal.SIGKILL)
    if sig != signal.SIGKILL:
        assert took < STOP_BOUND_S + 2.0, took  # the CLI frees the model (or ends) after
        assert code == 128 + sig, (code, err.read_text())
        last = err.read_text().strip().splitlines()[-1]
        assert f"{server.endpoint} stopped answering during the reply" in last, last
