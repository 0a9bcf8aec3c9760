"""Tensor split (LLAMA_SPLIT_MODE_TENSOR) for real: the default model over two real llama.cpp
RPC servers on localhost (each serving this machine's CPU), loaded in the engine's child
process, the memory plan per device against llama.cpp's own buffer log.

llama.cpp logs one "Meta()" line per buffer kind for the devices under tensor split, with
the largest device's size (ggml-backend-meta.cpp: the buffer's size is the max of its
devices'); an uneven split (3,1) makes that the first device's, an even one either's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kobold_gui.core.engine.child import ChildEngine
from kobold_gui.core.engine.prompt_template import Message
from kobold_gui.core.engine.types import SamplingParams
from kobold_gui.core.launch.options import LaunchConfig
from kobold_gui.core.launch.resolve import FLASH_ATTN, ResolvedLaunch, resolve_launch
from kobold_gui.core.llama.buffers import parse_buffer_sizes
from kobold_gui.core.models.gguf_info import read_gguf
from kobold_gui.core.plan.types import DevicePlan
from kobold_gui.core.remote.probe import probe
from kobold_gui.core.units import MiB
from tests.rpc_servers import RpcServer, rpc_servers

KINDS = {"model": "weights", "KV": "kv", "compute": "compute"}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RpcServer]]:
    with rpc_servers(tmp_path_factory.mktemp("rpc")) as running:
        yield running


def tensor_launch(model: Path, servers: list[RpcServer], split: str, layers: int) -> ResolvedLaunch:
    config = LaunchConfig().with_values(
        rpc=",".join(s.endpoint for s in servers),
        splitmode="tensor",
        gpulayers=layers,
        tensor_split=split,
        contextsize=1024,
    )
    remote = [d for s in servers for d in probe(s.endpoint).devices]
    return resolve_launch(config, model, read_gguf(model), False, None, None, None, remote)


def close(planned: int, real: int, part: bool) -> bool:
    """Within 5 % or 64 MiB for a part (weights, KV, compute), 5 % or 256 MiB for a total."""
    return abs(planned - real) <= max(0.05 * real, (64 if part else 256) * MiB)


@pytest.mark.parametrize(
    ("split", "layers"),
    [("1,1", 99), ("3,1", 99), ("", 20)],
    ids=["even", "three-to-one", "partial-offload"],
)
def test_plan_per_device_matches_llama_cpp_under_tensor_split(
    default_model: Path, servers: list[RpcServer], split: str, layers: int
) -> None:
    launch = tensor_launch(default_model, servers, split, layers)
    assert launch.split_mode == 3 and launch.flash_attn_type == FLASH_ATTN["on"]
    assert launch.plan is not None
    engine = ChildEngine()
    try:
        engine.load(launch)
        loaded = engine.loaded
        assert loaded is not None
        sizes = parse_buffer_sizes(loaded.log)
        reply = engine.chat(
            [Message("user", "Name three colors.")],
            SamplingParams(max_tokens=8, temperature=0.0, seed=1),
            lambda _t: None,
        )
    finally:
        engine.close()
    assert any("flash_attn            = enabled" in line for line in loaded.log)
    assert [d for d in sizes if d.startswith("Meta(")] == ["Meta()"]  # one Meta device
    assert reply.generated_tokens > 0  # the split model computes
    meta = sizes["Meta()"]
    rpc0, rpc1, cpu = launch.plan.devices
    assert rpc0.layers == rpc1.layers  # every device holds a slice of every offloaded layer
    for kind, part in KINDS.items():
        # The largest device, as llama.cpp logs it (without the all-reduce buffers, which
        # ggml-backend-meta.cpp allocates at the first compute, unlogged).
        planned = max(_part(rpc0, part, launch), _part(rpc1, part, launch))
        assert close(planned, meta[kind], part=True), (kind, planned, meta[kind])
        if part != "compute":  # the split of weights and KV is llama.cpp's, to the byte
            assert abs(planned - meta[kind]) <= 0.01 * MiB, (kind, planned, meta[kind])
    big = max(rpc0, rpc1, key=lambda d: d.weights + d.kv + d.compute)
    assert close(_total(big, launch), sum(meta.values()), part=False)
    cpu_real = sizes["CPU_Mapped"]["model"] + sizes["CPU"].get("KV", 0)
    assert close(cpu.weights + cpu.kv, cpu_real, part=True), (cpu, cpu_real)
    if split == "3,1":  # the uneven split really is uneven, as planned
        assert rpc0.weights > 1.5 * rpc1.weights and rpc0.kv > 3 * rpc1.kv
    if layers == 20:
        assert len(cpu.layers) == 11 and cpu.kv > 0


def _part(device: DevicePlan, part: str, launch: ResolvedLaunch) -> int:
    value = int(getattr(device, part))
    if part == "compute":  # what llama.cpp logs: without the all-reduce buffer
        return value - launch.batch.n_ubatch * 576 * 4  # SmolLM2-135M: n_embd 576, 2 devices
    return value


def _total(device: DevicePlan, launch: ResolvedLaunch) -> int:
    return sum(_part(device, p, launch) for p in KINDS.values())


def test_benchmark_measures_layer_and_tensor_side_by_side(
    tiny_model: Path, servers: list[RpcServer]
) -> None:
    """`--benchmark --splitmodes layer,tensor`: the model loaded once per mode over the two
    servers, both measured, and the comparison kept where the window reads it."""
    import json
    import subprocess
    import sys

    from kobold_gui.core.benchmark.split_modes import SplitComparison, SplitResult

    args = ["--benchmark", "--splitmodes", "layer,tensor", "--model", str(tiny_model)]
    args += ["--rpc", ",".join(s.endpoint for s in servers), "--gpulayers", "99"]
    args += ["--sweep", "128", "--repeats", "2", "--prompt-tokens", "64", "--gen-tokens", "8"]
    result = subprocess.run(
        [sys.executable, "-m", "kobold_gui", *args, "--contextsize", "512"],
        capture_output=True,
        text=True,
        timeout=300,
    )  # kept under the test's own KOBOLD_GUI_HOME (tests/conftest.py)
    assert result.returncode == 0, result.stderr
    assert "== split mode layer" in result.stdout and "== split mode tensor" in result.stdout
    side = result.stdout.split("split modes side by side")[1]
    assert "  layer   gen" in side and "  tensor  gen" in side
    kept = Path(result.stderr.strip().splitlines()[-1].removeprefix("saved: "))
    assert kept.parent.name == "split_modes"
    data = json.loads(kept.read_text())
    results = tuple(SplitResult(**{**r, "gen_runs": tuple(r["gen_runs"])}) for r in data["results"])
    comparison = SplitComparison(results)
    assert {r.mode for r in results} == {"layer", "tensor"}
    assert all(r.gen_tps > 0 and len(r.gen_runs) == 2 for r in results)
    verdict = "measured faster" if comparison.faster() else "no measurable gain"
    assert verdict in side
    assert "split_mode" not in data["identity"]  # the modes' common key
