"""Issue 28's run: llama.cpp's tensor split (each layer's matrices cut across the GPUs, which
work at once) against the layer split (whole layers per GPU, one GPU after another), side by
side in one run, on the same model and settings.

For each split mode: the memory plan per GPU, a real load, NVML's used memory per GPU after
the load and at its peak during the runs vs the plan (target: within 5 % or 256 MiB per
GPU), then for each (n_batch, n_ubatch) pair, `--repeats` interleaved runs of a P-token
prompt and G single-token generation steps, timed by the engine's own measure_batch
(core/engine/batch_timing.py: llama_synchronize before every clock reading): prompt t/s,
generation t/s, time to first token (medians). No Qt.

    python3 -m bench.tensor_split MODEL.gguf [--pairs 512:512,2048:512,2048:2048]
        [--prompt 4096] [--gen 128] [--repeats 3] [--contextsize 16384] [--gpus 0,1]
        [--rpc HOST:PORT,...] [--out DIR]

With --rpc (remote machines' devices, e.g. two local `kobold-gui --rpc-server -d CPU`) it
runs without GPUs too: that is how it was checked on a CPU machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from kobold_gui.core.engine.choice import engine_for
from kobold_gui.core.engine.types import EngineError
from kobold_gui.core.hardware.nvml import GpuInventory
from kobold_gui.core.hardware.probe import probe_hardware
from kobold_gui.core.launch.options import ConfigError, LaunchConfig
from kobold_gui.core.launch.resolve import ResolvedLaunch, resolve_launch
from kobold_gui.core.llama.library import backend_info
from kobold_gui.core.models.gguf_info import GGUFInfo, read_gguf
from kobold_gui.core.remote.probe import parse_endpoints, probe

MiB = 1 << 20
MODES = ("layer", "tensor")


def resolve(
    args: argparse.Namespace, info: GGUFInfo, mode: str, inv: GpuInventory
) -> ResolvedLaunch:
    config = LaunchConfig(contextsize=args.contextsize, flashattention="on").with_values(
        splitmode=mode, gpus=args.gpus, rpc=args.rpc or ""
    )
    remote = [d for e in config.rpc for d in probe(str(e)).devices]
    backend = backend_info()
    report = probe_hardware(inv.snapshot()) if backend.gpu_offload else None
    return resolve_launch(config, args.model, info, backend.gpu_offload, report, None, None, remote)


def run_mode(
    args: argparse.Namespace,
    info: GGUFInfo,
    mode: str,
    inv: GpuInventory,
    pairs: list[tuple[int, int]],
) -> dict[str, Any]:
    row: dict[str, Any] = {"split_mode": mode}
    try:
        launch = resolve(args, info, mode, inv)
    except ConfigError as e:
        return {**row, "refused": str(e)}
    plan = launch.plan
    gpus = [d for d in plan.devices if d.is_gpu] if plan else []
    row["plan_mib"] = {d.name: round(d.total / MiB) for d in gpus}
    base = [g.memory_used for g in inv.snapshot().gpus]
    engine = engine_for(launch)
    try:
        engine.load(launch, info=info)
    except EngineError as e:
        return {**row, "error": str(e)}
    try:
        loaded_used = [g.memory_used - b for g, b in zip(inv.snapshot().gpus, base, strict=False)]
        runs: dict[tuple[int, int], list[Any]] = {p: [] for p in pairs}
        peak = list(loaded_used)

        def used() -> list[int]:
            return [g.memory_used for g in inv.snapshot().gpus]

        for _ in range(args.repeats):  # interleaved: a burst elsewhere hits every pair alike
            for n_batch, n_ubatch in pairs:
                m = engine.measure_batch(n_batch, n_ubatch, args.prompt, args.gen, None, used)
                runs[(n_batch, n_ubatch)].append(m)
                rise = [u - b for u, b in zip(m.gpu_used_peak, base, strict=False)]
                peak = [max(a, b) for a, b in zip(peak, rise, strict=False)] or peak
    finally:
        engine.close()
    row["nvml_after_load_mib"] = [round(u / MiB) for u in loaded_used]
    row["nvml_peak_mib"] = [round(u / MiB) for u in peak]
    row["within_target"] = (
        all(abs(p.total - u) <= max(0.05 * u, 256 * MiB) for p, u in zip(gpus, peak, strict=False))
        if peak
        else None  # no NVML here (remote CPU devices): nothing to compare
    )
    row["pairs"] = {
        f"{b}:{u}": {
            "prompt_tps": round(statistics.median(m.prompt_tokens_per_s for m in ms), 1),
            "gen_tps": round(statistics.median(m.gen_tokens_per_s for m in ms), 1),
            "ttft_ms": round(1000 * statistics.median(m.time_to_first_token_s for m in ms), 1),
            "gen_runs": [round(m.gen_tokens_per_s, 1) for m in ms],
        }
        for (b, u), ms in runs.items()
    }
    return row


def side_by_side(rows: list[dict[str, Any]], pairs: list[tuple[int, int]]) -> None:
    measured = [r for r in rows if "pairs" in r]
    for r in rows:
        if "refused" in r or "error" in r:
            print(f"{r['split_mode']}: not measured: {r.get('refused') or r.get('error')}")
    if not measured:
        return
    head = "pair        " + "".join(
        f"{r['split_mode'] + ' ' + what:>18s}"
        for what in ("gen t/s", "prompt t/s", "TTFT ms")
        for r in measured
    )
    print(head)
    for b, u in pairs:
        key = f"{b}:{u}"
        fields = ("gen_tps", "prompt_tps", "ttft_ms")
        cells = [r["pairs"][key][field] for field in fields for r in measured]
        print(f"{key:12s}" + "".join(f"{c:18.1f}" for c in cells))
    for r in measured:
        plan = ", ".join(f"{n.split(' (')[0]} {mib}" for n, mib in r["plan_mib"].items())
        print(
            f"{r['split_mode']:6s} memory MiB: plan {plan}; NVML after load "
            f"{r['nvml_after_load_mib']}, peak {r['nvml_peak_mib']} "
            f"({ {True: 'within', False: 'OUTSIDE', None: 'no NVML:'}[r['within_target']] } "
            "5 % / 256 MiB)"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=Path)
    ap.add_argument("--pairs", default="512:512,2048:512,2048:2048")
    ap.add_argument("--prompt", type=int, default=4096)
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--contextsize", type=int, default=16384)
    ap.add_argument("--gpus", default="all")
    ap.add_argument("--rpc", default="")
    ap.add_argument("--out", type=Path, default=Path("."))
    args = ap.parse_args()
    if args.rpc:
        parse_endpoints(args.rpc)  # a bad address: said before anything loads
    pairs = [(int(b), int(u)) for b, u in (p.split(":") for p in args.pairs.split(","))]
    info = read_gguf(args.model)
    inv = GpuInventory()
    rows = []
    for mode in MODES:
        row = run_mode(args, info, mode, inv, pairs)
        print(json.dumps(row), flush=True)
        rows.append(row)
    side_by_side(rows, pairs)
    (args.out / "tensor_split.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
