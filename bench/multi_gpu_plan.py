"""Issue 14's run on a machine with two (or more) GPUs: does the split land where the user put
it, and does the plan hold per GPU? Needs no Qt. Every load runs in a fresh process, so that
each NVML reading starts from the same baseline.

1. CUDA contexts: NVML used per GPU after each start-up step of the app (backend, devices).
2. Order: split 3:1 with and without CUDA_VISIBLE_DEVICES=1,0: NVML rise per GPU vs plan.
3. The grid: split 1:1, 3:1, automatic, 3:1 with 20 layers, split mode none on GPU 1;
   n_ctx 8192 and 32768; n_ubatch 512 and 2048; flash attention on and off: per GPU the
   plan's weights / KV / compute against llama.cpp's buffers (target 5 % or 64 MiB each),
   its total against the NVML rise (target 5 % or 256 MiB), and llama.cpp's no-alloc estimate.
4. Row split: the message a user gets.
5. Import order: a load after importing each core module first.

    python3 -m bench.multi_gpu_plan MODEL.gguf [--small SMALL.gguf] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MiB = 1 << 20
SPLITS = {  # name: (tensor_split, gpulayers, splitmode, maingpu)
    "1:1": ("1,1", -1, "layer", -1),
    "3:1": ("3,1", -1, "layer", -1),
    "auto": ("", -1, "layer", -1),
    "3:1-20layers": ("3,1", 20, "layer", -1),
    "none-gpu1": ("", -1, "none", 1),
}
CONTEXTS = [
    (n_ctx, ub, fa) for n_ctx in (8192, 32768) for ub in (512, 2048) for fa in ("on", "off")
]


def nvml_used() -> list[int]:
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return []  # no driver: this run checks the script itself
    try:
        return [
            int(pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(i)).used)
            for i in range(pynvml.nvmlDeviceGetCount())
        ]
    finally:
        pynvml.nvmlShutdown()


def child(args: list[str], env: dict[str, str] | None = None, timeout: int = 300) -> Any:
    out = subprocess.run(
        [sys.executable, "-m", "bench.multi_gpu_plan", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
    lines = [x for x in out.stdout.splitlines() if x.startswith("{") or x.startswith("[")]
    if out.returncode != 0 or not lines:
        return {"rc": out.returncode, "stderr": out.stderr[-3000:]}
    return json.loads(lines[-1])


# -- children -------------------------------------------------------------------------------
def contexts_child() -> None:
    steps = {"start": nvml_used()}
    from kobold_gui.core.llama.library import backend_info

    backend_info()
    steps["backend_info"] = nvml_used()
    from kobold_gui.core.hardware.ggml_devices import backend_devices

    devices = backend_devices()
    steps["backend_devices"] = nvml_used()
    print(json.dumps({"steps": steps, "devices": [d.__dict__ for d in devices]}))


def _launch(model: Path, split: str, n_ctx: int, ub: int, fa: str) -> Any:
    from kobold_gui.core.hardware.nvml import GpuInventory
    from kobold_gui.core.hardware.probe import probe_hardware
    from kobold_gui.core.launch.options import LaunchConfig
    from kobold_gui.core.launch.resolve import resolve_launch
    from kobold_gui.core.models.gguf_info import read_gguf

    tensor_split, layers, mode, main = SPLITS[split]
    config = LaunchConfig(
        contextsize=n_ctx,
        blasbatchsize=ub,
        batchpolicy="tied",
        gpulayers=layers,
        splitmode=mode,
        maingpu=main,
        flashattention=fa,
        vrammargin=0,
    ).with_values(tensor_split=tensor_split)
    info = read_gguf(model)
    report = probe_hardware(GpuInventory().snapshot())
    return resolve_launch(config, model, info, report.gpu_offload, report), info


def _device_names(launch: Any) -> list[str]:
    """llama.cpp's name of each planned GPU, in the plan's order (the device list's)."""
    from kobold_gui.core.hardware.ggml_devices import backend_devices

    by_handle = {d.handle: d.name for d in backend_devices()}
    return [by_handle[h] for h in launch.device_handles or ()]


def plan_rows(launch: Any, gpus_only: bool = True) -> list[dict[str, float]]:
    """The plan per device in MiB (bench.rpc_gpu keeps the CPU's row too)."""
    return [
        {
            "name": d.name,
            "weights": d.weights / MiB,
            "kv": d.kv / MiB,
            "compute": d.compute / MiB,
            "overhead": d.overhead / MiB,
            "total": d.total / MiB,
        }
        for d in launch.plan.devices
        if d.is_gpu or not gpus_only
    ]


def load_child(model: Path, split: str, baseline: list[int], estimate: bool) -> None:
    """One model load (the split's first context setting), then each context setting in
    turn: llama.cpp's buffers, the NVML rise per GPU after one decode, the plan."""
    from dataclasses import replace

    import llama_cpp

    from kobold_gui.core.engine.local import LocalEngine
    from kobold_gui.core.llama.buffers import parse_buffer_sizes
    from kobold_gui.core.llama.log import llama_log_count, llama_log_since

    n_ctx0, ub0, fa0 = CONTEXTS[0]
    launch, info = _launch(model, split, n_ctx0, ub0, fa0)
    engine = LocalEngine()
    t = time.perf_counter()
    loaded = engine.load(launch, info=info)
    load_s = time.perf_counter() - t
    model_buffers = {
        dev: kinds.get("model", 0) / MiB for dev, kinds in parse_buffer_sizes(loaded.log).items()
    }
    # Only the grid's contexts count: the engine's own context goes.
    llama_cpp.llama_free(engine._ctx)
    engine._ctx = None
    names = _device_names(launch)
    rows = []
    for n_ctx, ub, fa in CONTEXTS:
        launch_c, _ = _launch(model, split, n_ctx, ub, fa)
        mark = llama_log_count()
        cparams = engine._context_params(replace(launch_c), ub, ub)
        ctx = llama_cpp.llama_init_from_model(engine._model, cparams)
        log = llama_log_since(mark)
        row: dict[str, Any] = {
            "n_ctx": n_ctx,
            "ubatch": ub,
            "fa": fa,
            "plan": plan_rows(launch_c),
            "plan_pipeline": launch_c.plan.pipeline,
            "devices": names,
        }
        row["pipeline"] = any("pipeline parallelism enabled" in x for x in log)
        row["sched_copies"] = next(
            (x.rsplit("=", 1)[1].strip() for x in log if "sched copies" in x), None
        )
        if not ctx:
            row["error"] = "context failed"
            rows.append(row)
            continue
        tokens = (llama_cpp.llama_token * ub)(*[(i * 7919 + 13) % 1000 + 1 for i in range(ub)])
        llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(tokens, ub))
        llama_cpp.llama_synchronize(ctx)
        used = nvml_used()
        row["nvml_rise"] = [(u - b) / MiB for u, b in zip(used, baseline, strict=False)]
        sizes = parse_buffer_sizes(log)
        row["llama"] = {
            dev: {
                "model": model_buffers.get(dev, 0.0),
                "kv": kinds.get("KV", 0) / MiB,
                "compute": kinds.get("compute", 0) / MiB,
            }
            for dev, kinds in sizes.items()
        }
        llama_cpp.llama_free(ctx)
        rows.append(row)
    engine.close()
    out: dict[str, Any] = {"split": split, "load_s": load_s, "rows": rows}
    if estimate:
        out["estimates"] = no_alloc_estimates(model, split)
    print(json.dumps(out))


def no_alloc_estimates(model: Path, split: str) -> list[dict[str, Any]]:
    from kobold_gui.core.engine.estimate import estimate_buffers

    out = []
    for n_ctx, ub, fa in CONTEXTS:
        launch, _ = _launch(model, split, n_ctx, ub, fa)
        t = time.perf_counter()
        sizes = estimate_buffers(launch)
        out.append(
            {
                "n_ctx": n_ctx,
                "ubatch": ub,
                "fa": fa,
                "seconds": round(time.perf_counter() - t, 2),
                "compute": {d: k.get("compute", 0) / MiB for d, k in sizes.items()},
            }
        )
    return out


# -- the run ----------------------------------------------------------------------------------
def within(a: float, b: float, pct: float, abs_mib: float) -> bool:
    return abs(a - b) <= max(pct * abs(b), abs_mib)


def score(result: dict[str, Any]) -> tuple[int, int, int, int]:
    """(parts within target, parts, totals within target, totals) for one split's rows."""
    parts_ok = parts = totals_ok = totals = 0
    for row in result.get("rows", []):
        if "llama" not in row:
            continue
        for i, p in enumerate(row["plan"]):
            name = row["devices"][i] if i < len(row["devices"]) else f"CUDA{i}"
            dev = row["llama"].get(name, {"model": 0.0, "kv": 0.0, "compute": 0.0})
            for key, plan_key in (("model", "weights"), ("kv", "kv"), ("compute", "compute")):
                parts += 1
                parts_ok += within(p[plan_key], dev[key], 0.05, 64)
            totals += 1
            totals_ok += within(p["total"], row["nvml_rise"][i], 0.05, 256)
    return parts_ok, parts, totals_ok, totals


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=Path, nargs="?")
    ap.add_argument("--small", type=Path)
    ap.add_argument("--out", type=Path, default=Path("."))
    ap.add_argument("--child", nargs="*")
    args = ap.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "contexts":
            contexts_child()
        elif kind == "load":
            load_child(Path(rest[0]), rest[1], json.loads(rest[2]), rest[3] == "1")
        return
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"contexts": child(["--child", "contexts"])}
    print("contexts:", json.dumps(report["contexts"]), flush=True)
    grid = {}
    for name in SPLITS:
        base = nvml_used()
        grid[name] = child(
            ["--child", "load", str(args.model), name, json.dumps(base), "1"], timeout=600
        )
        ok = score(grid[name])
        print(f"{name}: parts {ok[0]}/{ok[1]}, totals {ok[2]}/{ok[3]}", flush=True)
    report["grid"] = grid
    base = nvml_used()
    swapped = child(
        ["--child", "load", str(args.model), "3:1", json.dumps(base), "0"],
        env={"CUDA_VISIBLE_DEVICES": "1,0"},
    )
    report["swapped_3_1"] = swapped
    ok = score(swapped)
    print(f"CUDA_VISIBLE_DEVICES=1,0, 3:1: parts {ok[0]}/{ok[1]}, totals {ok[2]}/{ok[3]}")
    if "rows" in swapped:
        first = swapped["rows"][0]
        print(
            "CUDA_VISIBLE_DEVICES=1,0, split 3:1: plan per GPU "
            f"{[round(p['total']) for p in first['plan']]} MiB, NVML rise "
            f"{[round(x) for x in first['nvml_rise']]} MiB",
            flush=True,
        )
    cli = [sys.executable, "-m", "kobold_gui", "--show-config", "--model", str(args.model)]
    row = subprocess.run(
        [*cli, "--splitmode", "row"],
        capture_output=True,
        text=True,
    )
    report["row_split"] = {"rc": row.returncode, "stderr": row.stderr.strip()}
    print("row split:", report["row_split"], flush=True)
    if args.small:
        from bench.import_order import run_all

        report["import_order"] = run_all(args.small)
        bad = {k: v for k, v in report["import_order"].items() if v != "ok"}
        print(f"import order: {len(report['import_order']) - len(bad)} ok, failed: {bad}")
    (args.out / "multi_gpu_plan.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
