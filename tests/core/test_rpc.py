"""Loads over other machines: two real llama.cpp RPC servers on localhost ports (each serving
this machine's CPU), the default model split over RPC0, RPC1 and the CPU, in the engine's
child process."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kobold_gui.core.engine.child import ChildEngine
from kobold_gui.core.engine.local import LocalEngine
from kobold_gui.core.engine.prompt_template import Message
from kobold_gui.core.engine.protocol import Engine
from kobold_gui.core.engine.types import EngineError, ModelLost, SamplingParams
from kobold_gui.core.launch.options import ConfigError, LaunchConfig
from kobold_gui.core.launch.resolve import ResolvedLaunch, resolve_launch
from kobold_gui.core.llama.buffers import parse_buffer_sizes, rpc_buffer_device
from kobold_gui.core.models.gguf_info import read_gguf
from kobold_gui.core.remote.probe import RPC_PROTO, RpcError, parse_endpoints, probe
from kobold_gui.core.units import MiB
from tests.rpc_servers import RpcServer, free_port, rpc_servers

GREEDY = SamplingParams(max_tokens=16, temperature=0.0, seed=1)
QUESTION = [Message("user", "Name three colors.")]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RpcServer]]:
    with rpc_servers(tmp_path_factory.mktemp("rpc")) as running:
        yield running


def split_launch(model: Path, servers: list[RpcServer], split: str = "1,1") -> ResolvedLaunch:
    """Layers 11-29 and the output over RPC0 and RPC1, the first 11 layers on the CPU."""
    config = LaunchConfig().with_values(
        rpc=",".join(s.endpoint for s in servers),
        gpulayers=20,
        tensor_split=split,
        contextsize=1024,
    )
    remote = [d for s in servers for d in probe(s.endpoint).devices]
    return resolve_launch(config, model, read_gguf(model), False, None, None, None, remote)


def test_probe_reads_version_devices_and_round_trip(servers: list[RpcServer]) -> None:
    machine = probe(servers[0].endpoint)
    assert machine.version[:2] == RPC_PROTO[:2]
    assert len(machine.devices) == 1
    device = machine.devices[0]
    assert device.kind == "CPU" and device.memory_total >= device.memory_free > 0
    assert 0 < machine.rtt_ms < 1000


def test_addresses_are_checked_and_normalized() -> None:
    assert parse_endpoints(" a:1, b:2,a:1 ") == (("a", 1), ("b", 2))  # host, port
    assert [str(e) for e in parse_endpoints("[::1]:50052,b:2")] == ["::1:50052", "b:2"]
    for bad in ("nohost", "host:", ":50052", "host:70000", "host:port"):
        with pytest.raises(RpcError, match="host:port"):
            parse_endpoints(bad)
    with pytest.raises(ConfigError, match="--rpc"):
        LaunchConfig().with_values(rpc="just-a-name")


def test_unreachable_refusing_and_silent_machines_are_told_apart() -> None:
    closed = f"127.0.0.1:{free_port()}"
    with pytest.raises(RpcError, match="refused"):
        probe(closed)
    with socket.socket() as silent:  # accepts, never answers: busy or not an RPC server
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        with pytest.raises(RpcError, match="did not answer the RPC hello"):
            probe(f"127.0.0.1:{silent.getsockname()[1]}", timeout=0.5)


def test_another_protocol_version_is_refused() -> None:
    """A server that answers the hello with version 6.1.0."""
    with socket.socket() as old:
        old.bind(("127.0.0.1", 0))
        old.listen()

        def answer() -> None:
            conn, _ = old.accept()
            with conn:
                conn.recv(1 + 8 + 24)
                conn.sendall((28).to_bytes(8, "little") + bytes([6, 1, 0, 0]) + bytes(24))
                time.sleep(0.5)

        threading.Thread(target=answer, daemon=True).start()
        with pytest.raises(RpcError, match=r"protocol 6\.1\.0"):
            probe(f"127.0.0.1:{old.getsockname()[1]}")


def test_plan_puts_remote_devices_first(default_model: Path, servers: list[RpcServer]) -> None:
    launch = split_launch(default_model, servers)
    assert launch.plan is not None
    names = [d.name for d in launch.plan.devices]
    assert names[0].startswith(f"RPC0 {servers[0].endpoint}")
    assert names[1].startswith(f"RPC1 {servers[1].endpoint}")
    assert names[2] == "CPU (RAM)"
    assert launch.device_names == ("RPC0", "RPC1")
    assert launch.rpc_servers == (servers[0].endpoint, servers[1].endpoint)
    rpc0, rpc1, cpu = launch.plan.devices
    assert rpc0.layers == tuple(range(11, 21)) and rpc1.layers == tuple(range(21, 31))
    assert len(cpu.layers) == 11 and rpc0.overhead == 0  # a remote CPU: no CUDA context


def test_a_machine_not_checked_is_a_config_error(default_model: Path) -> None:
    config = LaunchConfig().with_values(rpc="127.0.0.1:1")
    with pytest.raises(ConfigError, match="has not answered"):
        resolve_launch(config, default_model, read_gguf(default_model), False)


def test_unreachable_address_is_refused_before_loading(default_model: Path) -> None:
    launch = resolve_launch(LaunchConfig(contextsize=1024), default_model, None, False)
    from dataclasses import replace

    closed = f"127.0.0.1:{free_port()}"
    engine = ChildEngine()
    with pytest.raises(EngineError, match=f"{closed}.*refused"):
        engine.load(replace(launch, rpc_servers=(closed,)))
    assert engine.loaded is None and engine._child is None  # no child was started


@pytest.fixture(scope="module")
def over_rpc(default_model: Path, servers: list[RpcServer]) -> Iterator[ChildEngine]:
    engine = ChildEngine()
    engine.load(split_launch(default_model, servers))
    yield engine
    engine.close()


def test_load_over_two_machines_and_the_cpu_chats_like_a_local_load(
    default_model: Path, over_rpc: ChildEngine
) -> None:
    local = LocalEngine()
    local.load(resolve_launch(LaunchConfig(contextsize=1024), default_model, None, False))
    try:
        expected = local.chat(QUESTION, GREEDY, lambda _t: None).text
    finally:
        local.close()
    pieces: list[str] = []
    result = over_rpc.chat(QUESTION, GREEDY, pieces.append)
    assert result.generated_tokens > 0 and len(pieces) > 1  # streamed from the child
    assert result.text == "".join(pieces) == expected  # the same numbers, computed remotely


def test_plan_per_remote_device_matches_llama_cpp_buffers(over_rpc: ChildEngine) -> None:
    loaded = over_rpc.loaded
    assert loaded is not None and loaded.launch.plan is not None
    sizes = parse_buffer_sizes(loaded.log)
    endpoints = loaded.launch.rpc_servers
    measured = {
        f"RPC{endpoints.index(where[0])}": sum(kinds.values())
        for name, kinds in sizes.items()
        if (where := rpc_buffer_device(name))
    }
    assert set(measured) == {"RPC0", "RPC1"}
    for device in loaded.launch.plan.devices[:2]:
        real = measured[device.name.split()[0]]
        planned = device.weights + device.kv + device.compute
        assert abs(planned - real) <= max(0.05 * real, 64 * MiB), (device.name, planned, real)
        assert real > 10 * MiB  # the layers really went there


def test_stop_reaches_the_child_at_once(over_rpc: ChildEngine) -> None:
    cancel = threading.Event()
    long = SamplingParams(max_tokens=400, temperature=1.0, seed=3, ban_eos=True)

    def on_text(_piece: str) -> None:
        cancel.set()  # Stop as soon as the first text arrives

    result = over_rpc.chat(QUESTION, long, on_text, cancel)
    assert result.stop_reason == "stopped" and result.generated_tokens < 400
    assert over_rpc.loaded is not None  # stopping leaves the model loaded


def test_machine_killed_mid_generation_gives_a_clear_error(
    default_model: Path, tmp_path: Path
) -> None:
    with rpc_servers(tmp_path, 2) as pair:
        engine = ChildEngine()
        engine.load(split_launch(default_model, pair))
        victim = pair[1]
        started = threading.Event()

        def on_text(_piece: str) -> None:
            if not started.is_set():
                started.set()
                victim.kill()

        long = SamplingParams(max_tokens=2000, temperature=1.0, seed=3, ban_eos=True)
        with pytest.raises(ModelLost) as lost:
            engine.chat(QUESTION, long, on_text)
        message = str(lost.value)
        assert victim.endpoint in message and pair[0].endpoint not in message
        assert "chat is kept" in message
        assert engine.loaded is None  # the model counts as unloaded
        # The engine is still usable: a load over the machine that is left works.
        engine.load(split_launch(default_model, pair[:1], split=""))
        assert engine.chat(QUESTION, GREEDY, lambda _t: None).generated_tokens > 0
        engine.close()


def test_machine_killed_while_loading_names_it(default_model: Path, tmp_path: Path) -> None:
    with rpc_servers(tmp_path, 2) as pair:
        engine = ChildEngine()

        def on_progress(value: float) -> None:
            if value > 0.05:
                pair[0].kill()

        with pytest.raises(ModelLost, match=f"while loading.*{pair[0].endpoint}"):
            engine.load(split_launch(default_model, pair), on_progress)
        assert engine.loaded is None and engine._child is None


def test_cancel_while_loading_over_machines(default_model: Path, tmp_path: Path) -> None:
    from kobold_gui.core.engine.types import LoadCancelled

    with rpc_servers(tmp_path, 2) as pair:
        engine = ChildEngine()
        cancel = threading.Event()
        with pytest.raises(LoadCancelled):
            engine.load(split_launch(default_model, pair), lambda _v: cancel.set(), cancel)
        assert engine.loaded is None and engine._child is None
        for server in pair:  # the machines are free again for the next client
            assert probe(server.endpoint).devices


def test_a_machine_serving_another_client_is_busy(
    default_model: Path, over_rpc: ChildEngine, servers: list[RpcServer]
) -> None:
    """One client at a time: while a model is loaded over a machine, another load is
    refused before it starts, with the reason."""
    assert over_rpc.loaded is not None
    with pytest.raises(RpcError, match="busy serving another client"):
        probe(servers[0].endpoint, timeout=0.5)
    other = ChildEngine()
    with pytest.raises(EngineError, match="busy serving another client"):
        other.load(over_rpc.loaded.launch)
    assert other._child is None and over_rpc.loaded is not None  # the first is untouched


def test_a_server_the_window_started_ends_with_it(tmp_path: Path) -> None:
    """The Share panel's server gets DIE_WITH_PARENT: a window killed with -9 leaves no
    server behind (a terminal user's server, without it, stays)."""
    import os
    import signal
    import subprocess
    import sys

    from kobold_gui.core.engine.child_process import DIE_WITH_PARENT, self_command

    port = free_port()
    pid_file = tmp_path / "server.pid"
    server = self_command("--rpc-server", "-p", str(port), "-d", "CPU")
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time; "
            f"p = subprocess.Popen({server!r}); "
            f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(600)",
        ],
        env={**os.environ, DIE_WITH_PARENT: "1"},
    )
    try:
        deadline = time.monotonic() + 120
        while True:  # until the server answers (a hang guard, not a timing check)
            try:
                probe(f"127.0.0.1:{port}", timeout=1)
                break
            except RpcError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        server_pid = int(pid_file.read_text())
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        while Path(f"/proc/{server_pid}").exists() and "Z" not in _state(server_pid):
            assert time.monotonic() < deadline, "the server outlived its parent"
            time.sleep(0.1)
    finally:
        parent.kill()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def test_a_model_lost_by_any_client_is_told_to_the_worker_listeners(
    default_model: Path, tmp_path: Path
) -> None:
    """An API client's request that loses the model: the window's listener hears it too."""
    from kobold_gui.core.engine.worker import EngineWorker, Job

    with rpc_servers(tmp_path, 2) as pair:
        worker = EngineWorker()
        lost: list[ModelLost] = []
        worker.add_model_lost_listener(lost.append)
        launch = split_launch(default_model, pair)
        load = worker.load(launch)
        assert load.wait(120) and load.error is None
        assert isinstance(worker.engine, ChildEngine)  # the worker chose it for the launch

        def reply(engine: Engine, cancel: threading.Event) -> object:
            long = SamplingParams(max_tokens=2000, temperature=1.0, ban_eos=True)
            return engine.chat(QUESTION, long, lambda _t: pair[0].kill(), cancel)

        job = worker.submit(Job("completion", reply, client="api"))
        assert job.wait(120)
        assert isinstance(job.error, ModelLost) and lost == [job.error]
        assert worker.loaded is None
        worker.close()
