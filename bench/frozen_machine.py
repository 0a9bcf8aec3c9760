"""How long Stop takes over a remote machine: healthy (the engine answers Stop) vs frozen
(SIGSTOP mid-reply: the engine's child is ended after core/engine/child_process.py's
STOP_GRACE_S and the machines are asked which one stopped answering), and how long a reply
left running takes to be ended by its time limit (here set to --limit s). The default model
all on two local RPC servers (kobold-gui --rpc-server, the CPU): every token waits on both.

    python3 -m bench.frozen_machine [--repeats 3] [--limit 5]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time

import kobold_gui  # noqa: F401  (libllama first)
from kobold_gui.core.engine import child_process
from kobold_gui.core.engine.child import ChildEngine
from kobold_gui.core.engine.child_process import self_command
from kobold_gui.core.engine.prompt_template import Message
from kobold_gui.core.engine.types import ModelLost, SamplingParams
from kobold_gui.core.launch.options import LaunchConfig
from kobold_gui.core.launch.resolve import ResolvedLaunch, resolve_launch
from kobold_gui.core.models.files import default_model_path
from kobold_gui.core.models.gguf_info import read_gguf
from kobold_gui.core.remote.probe import RpcError, probe

STORY = [Message("user", "Tell me a long story about a dragon.")]
ENDLESS = SamplingParams(max_tokens=5000, temperature=1.0, seed=3, ban_eos=True)


def start_server(log: str) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with open(log, "ab") as out:
        args = ["--rpc-server", "-p", str(port), "-d", "CPU", "-t", "1"]
        proc = subprocess.Popen(self_command(*args), stdout=out, stderr=subprocess.STDOUT)
    endpoint = f"127.0.0.1:{port}"
    end = time.monotonic() + 120
    while True:
        try:
            probe(endpoint, timeout=2)
            return proc, endpoint
        except RpcError:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def launch_over(endpoints: list[str]) -> ResolvedLaunch:
    model = default_model_path()
    assert model is not None, "the default model is not installed"
    config = LaunchConfig().with_values(
        rpc=",".join(endpoints), gpulayers=99, tensor_split="1,1", contextsize=1024
    )
    remote = [d for e in endpoints for d in probe(e).devices]
    return resolve_launch(config, model, read_gguf(model), False, None, None, None, remote)


def one_round(
    victim: subprocess.Popen[bytes] | None, press_stop: bool, launch: ResolvedLaunch
) -> float:
    """Seconds from Stop (or from the freeze, without Stop) to the reply's end."""
    engine = ChildEngine()
    engine.load(launch)
    cancel = threading.Event()
    first = threading.Event()
    ended: list[float] = []

    def run() -> None:
        with contextlib.suppress(ModelLost):
            engine.chat(STORY, ENDLESS, lambda _t: first.set(), cancel)
        ended.append(time.monotonic())

    thread = threading.Thread(target=run)
    thread.start()
    first.wait(120)
    time.sleep(0.5)
    if victim is not None:
        os.kill(victim.pid, signal.SIGSTOP)
        time.sleep(1.0)  # stuck by now
    start = time.monotonic()
    if press_stop:
        cancel.set()
    thread.join()
    if victim is not None:
        os.kill(victim.pid, signal.SIGCONT)
    engine.close()
    return ended[0] - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=float, default=5.0, help="the reply's time limit here")
    args = parser.parse_args()
    child_process.STALL_LIMITS_S["generate"] = args.limit
    log = tempfile.mktemp(prefix="bench-rpc-", suffix=".log")
    servers = [start_server(log) for _ in range(2)]
    launch = launch_over([e for _p, e in servers])
    victim = servers[1][0]
    rows: dict[str, list[float]] = {
        "Stop, machines healthy": [],
        "Stop, a machine frozen": [],
        "no Stop, frozen": [],
    }
    try:
        for _ in range(args.repeats):
            rows["Stop, machines healthy"].append(one_round(None, True, launch))
            rows["Stop, a machine frozen"].append(one_round(victim, True, launch))
            rows["no Stop, frozen"].append(one_round(victim, False, launch))
    finally:
        for proc, _endpoint in servers:
            proc.kill()
    print(f"{'case':<26}{'median s':>10}{'max s':>10}   (limit here {args.limit:g} s)")
    for name, values in rows.items():
        print(f"{name:<26}{statistics.median(values):>10.2f}{max(values):>10.2f}")


if __name__ == "__main__":
    main()
