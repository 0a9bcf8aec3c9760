"""Issue 17's run on a machine with two GPUs: the 8B shape over two RPC servers (one per GPU,
each seeing only its own card) from a third process, against the same split loaded locally.

1. Local: both GPUs in this process, split 1:1, all layers: NVML rise per GPU vs the plan;
   prompt and generation tokens/s (the engine's measure_batch, synchronized).
2. RPC, no tensor cache: load time; the same measurements (the servers' NVML rise vs the
   plan's remote devices); bytes the RPC layer moves (loopback counters) per prompt token and
   per generated token, and what that means on 1 and 10 Gbit/s networks.
3. RPC with the tensor cache (-c): the first load fills it, the second reuses it: load times.

    python3 -m bench.rpc_gpu MODEL.gguf [--prompt 4096] [--gen 64] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import kobold_gui  # noqa: F401  (libllama first)
from bench.multi_gpu_plan import nvml_used, plan_rows
from kobold_gui.core.engine.child_process import self_command
from kobold_gui.core.engine.choice import engine_for
from kobold_gui.core.hardware.nvml import GpuInventory
from kobold_gui.core.hardware.probe import probe_hardware
from kobold_gui.core.launch.options import LaunchConfig
from kobold_gui.core.launch.resolve import ResolvedLaunch, resolve_launch
from kobold_gui.core.llama.buffers import parse_buffer_sizes
from kobold_gui.core.models.gguf_info import read_gguf
from kobold_gui.core.remote.probe import RpcError, probe

MiB = 1 << 20
CONFIG = LaunchConfig(
    contextsize=8192, gpulayers=99, tensor_split=(1.0, 1.0), flashattention="on", blasbatchsize=512
)


def lo_bytes() -> int:
    """Bytes received on the loopback interface (= sent: every byte goes both ways there)."""
    for line in Path("/proc/net/dev").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name.strip() == "lo":
            return int(rest.split()[0])
    raise RuntimeError("no loopback counters")


def start_servers(cache: str | None) -> list[subprocess.Popen[bytes]]:
    procs = []
    for gpu, port in ((0, 50052), (1, 50053)):
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": str(gpu), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
        args = ["--rpc-server", "-p", str(port), "-d", "CUDA0", "-t", "4"]
        if cache:
            env["LLAMA_CACHE"] = cache
            args.append("-c")
        log = open(f"/tmp/rpc-{port}.log", "ab")  # noqa: SIM115
        procs.append(subprocess.Popen(self_command(*args), env=env, stdout=log, stderr=log))
    for port in (50052, 50053):
        for _ in range(600):
            try:
                probe(f"127.0.0.1:{port}", timeout=2)
                break
            except RpcError:
                time.sleep(0.1)
    return procs


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.kill()
        p.wait()
    time.sleep(1)


def launch_for(model: Path, rpc: bool) -> ResolvedLaunch:
    info = read_gguf(model)
    report = probe_hardware(GpuInventory().snapshot())
    if not rpc:
        return resolve_launch(CONFIG, model, info, report.gpu_offload, report)
    # Only the remote devices (gpus none): no local GPU in this process's device list.
    config = CONFIG.with_values(rpc="127.0.0.1:50052,127.0.0.1:50053", gpus="none")
    remote = [d for e in ("127.0.0.1:50052", "127.0.0.1:50053") for d in probe(e).devices]
    return resolve_launch(config, model, info, report.gpu_offload, report, None, None, remote)


def run(model: Path, rpc: bool, prompt: int, gen: int) -> dict[str, Any]:
    launch = launch_for(model, rpc)
    before = nvml_used()
    engine = engine_for(launch)
    t0 = time.perf_counter()
    loaded = engine.load(launch)
    load_s = time.perf_counter() - t0
    out: dict[str, Any] = {
        "rpc": rpc,
        "load_s": load_s,
        "plan": plan_rows(launch, gpus_only=False),
        "pipeline_plan": bool(launch.plan and launch.plan.pipeline),
        "pipeline_llama": any("pipeline parallelism enabled" in x for x in loaded.log),
        "buffers": {
            dev: {k: v / MiB for k, v in kinds.items()}
            for dev, kinds in parse_buffer_sizes(loaded.log).items()
        },
    }
    engine.measure_batch(512, 512, 512, 4)  # warm-up: CUDA graphs, pools
    b0 = lo_bytes()
    m_prompt = engine.measure_batch(512, 512, prompt, 0)
    b1 = lo_bytes()
    m = engine.measure_batch(512, 512, prompt, gen)
    b2 = lo_bytes()
    out["nvml_rise"] = [(u - b) / MiB for u, b in zip(nvml_used(), before, strict=True)]
    out["prompt_tps"] = m.prompt_tokens_per_s
    out["gen_tps"] = m.gen_tokens_per_s
    out["ttft_s"] = m.time_to_first_token_s
    out["prompt_only_tps"] = m_prompt.prompt_tokens_per_s
    out["bytes_per_prompt_token"] = (b1 - b0) / prompt
    out["bytes_per_gen_token"] = ((b2 - b1) - (b1 - b0)) / (gen + 2)
    engine.close()
    return out


def network(row: dict[str, Any]) -> dict[str, float]:
    """Wire time per token on 1 and 10 Gbit/s links, from the bytes the RPC layer moved."""
    out = {}
    for gbit in (1, 10):
        rate = gbit * 1e9 / 8
        out[f"{gbit}G_gen_ms_per_token"] = row["bytes_per_gen_token"] / rate * 1000
        out[f"{gbit}G_prompt_tps_cap"] = rate / max(row["bytes_per_prompt_token"], 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=Path)
    ap.add_argument("--prompt", type=int, default=4096)
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp")))
    args = ap.parse_args()
    results: dict[str, Any] = {"baseline_nvml": [u / MiB for u in nvml_used()]}
    results["local"] = run(args.model, False, args.prompt, args.gen)
    print(json.dumps(results["local"], indent=1), flush=True)
    procs = start_servers(None)
    results["servers_nvml"] = [u / MiB for u in nvml_used()]
    try:
        results["rpc"] = run(args.model, True, args.prompt, args.gen)
        results["rpc"]["network"] = network(results["rpc"])
        print(json.dumps(results["rpc"], indent=1), flush=True)
    finally:
        stop(procs)
    cache = tempfile.mkdtemp(prefix="rpc-cache-")
    procs = start_servers(cache)
    try:
        loads = []
        for _ in range(2):
            launch = launch_for(args.model, True)
            engine = engine_for(launch)
            t0 = time.perf_counter()
            engine.load(launch)
            loads.append(time.perf_counter() - t0)
            engine.close()
        results["cache_loads_s"] = loads
        print(f"tensor cache: first load {loads[0]:.1f} s, second {loads[1]:.1f} s", flush=True)
    finally:
        stop(procs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rpc_gpu.json").write_text(json.dumps(results, indent=1))
    print(json.dumps({k: v for k, v in results.items() if k != "local" and k != "rpc"}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
