"""The memory plan against llama.cpp's own figures: each part per device (weights, KV cache,
compute buffer) vs the buffer sizes llama.cpp logs, and each GPU's total vs NVML's
used-memory rise. One process per model: the model is loaded once per GPU-layer count, and
one context is created per setting.

    python -m bench.plan_accuracy --model M.gguf [--layers all,half] [--decode] [--json OUT]
With --decode, each GPU's NVML reading is taken after a first full ubatch of a prompt has been
decoded (and synchronized): ggml-cuda's memory pool grows then, not when the context is made.
Targets: each part within 5 % or 64 MiB; each GPU total within 5 % or 256 MiB.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import llama_cpp

from kobold_gui.core.hardware.nvml import GpuInventory
from kobold_gui.core.launch.resolve import CTX_PAD
from kobold_gui.core.llama.buffers import parse_buffer_sizes
from kobold_gui.core.llama.library import init_backend
from kobold_gui.core.llama.log import llama_log_count, llama_log_since
from kobold_gui.core.models.gguf_info import read_gguf
from kobold_gui.core.plan.memory_plan import GpuBudget, PlanRequest, plan_memory

MiB = 1 << 20
PART_TOL = (0.05, 64 * MiB)
TOTAL_TOL = (0.05, 256 * MiB)


def within(plan: int, real: int, tol: tuple[float, int]) -> bool:
    return abs(plan - real) <= max(tol[0] * real, tol[1])


def measured_parts(buffers: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """llama.cpp's buffers grouped as the plan's devices: 'GPU i' and 'CPU'."""
    out: dict[str, dict[str, int]] = {}
    for name, kinds in buffers.items():
        index = name.removeprefix("CUDA").removeprefix("Vulkan")
        key = f"GPU {index}" if index != name and index.isdigit() else "CPU"
        dest = out.setdefault(key, {"weights": 0, "kv": 0, "compute": 0})
        dest["weights"] += kinds.get("model", 0)
        dest["kv"] += kinds.get("KV", 0)
        dest["compute"] += kinds.get("compute", 0) + kinds.get("output", 0)
    return out


def decode_one_ubatch(lctx: object, n: int, n_vocab: int) -> None:
    """A prompt of n tokens in one ubatch, finished on the device before returning."""
    tokens = (llama_cpp.llama_token * n)(*[(100 + i * 7) % n_vocab for i in range(n)])
    if llama_cpp.llama_decode(lctx, llama_cpp.llama_batch_get_one(tokens, n)) != 0:
        raise SystemExit(f"llama_decode failed for a ubatch of {n}")
    llama_cpp.llama_synchronize(lctx)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--layers", default="all", help="comma list: all, half, or numbers")
    ap.add_argument("--ctx", default="4096,32768")
    ap.add_argument("--ubatch", default="512,4096")
    ap.add_argument("--fa", default="1,0")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--decode", action="store_true", help="read NVML after a full ubatch")
    ap.add_argument(
        "--backend",
        default="CUDA",
        help="the GPUs' backend in the plan (Vulkan: run with KOBOLD_GUI_SKIP_BACKENDS=cuda)",
    )
    args = ap.parse_args()

    inventory = GpuInventory()
    before = inventory.snapshot()  # before CUDA is touched
    init_backend()
    info = read_gguf(args.model)
    gpus = [
        GpuBudget(g.name, g.memory_total, g.memory_free, backend=args.backend) for g in before.gpus
    ]
    gpu_offload = bool(llama_cpp.llama_supports_gpu_offload()) and bool(gpus)
    total_layers = info.n_layers + 1
    layer_counts = []
    for item in args.layers.split(","):
        if not gpu_offload:
            layer_counts = [0]
            break
        layer_counts.append({"all": total_layers, "half": total_layers // 2}.get(item) or int(item))
    rows = []
    for n_gpu in layer_counts:
        mp = llama_cpp.llama_model_default_params()
        mp.n_gpu_layers = n_gpu
        mark = llama_log_count()
        model = llama_cpp.llama_model_load_from_file(str(args.model).encode(), mp)
        model_buffers = parse_buffer_sizes(llama_log_since(mark))
        settings = itertools.product(
            [int(x) for x in args.ctx.split(",")],
            [int(x) for x in args.ubatch.split(",")],
            [int(x) for x in args.fa.split(",")],
        )
        for ctx, ub, fa in settings:
            if ub > ctx:
                continue
            cp = llama_cpp.llama_context_default_params()
            cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.flash_attn_type = ctx, ub, ub, fa
            mark = llama_log_count()
            lctx = llama_cpp.llama_init_from_model(model, cp)
            if not lctx:
                rows.append(
                    {
                        "n_gpu_layers": n_gpu,
                        "ctx": ctx,
                        "ubatch": ub,
                        "fa": fa,
                        "error": "context failed",
                    }
                )
                continue
            if args.decode:
                decode_one_ubatch(lctx, ub, info.n_vocab)
            time.sleep(0.2)
            after = inventory.snapshot()
            buffers = dict(model_buffers)
            for name, kinds in parse_buffer_sizes(llama_log_since(mark)).items():
                buffers[name] = {**buffers.get(name, {}), **kinds}
            real = measured_parts(buffers)
            n_ctx = -(-ctx // CTX_PAD) * CTX_PAD
            plan = plan_memory(
                info,
                PlanRequest(n_gpu_layers=n_gpu, n_ctx=n_ctx, n_ubatch=ub, flash_attn=bool(fa)),
                gpus,
            )
            row: dict[str, object] = {"n_gpu_layers": n_gpu, "ctx": ctx, "ubatch": ub, "fa": fa}
            row["decoded"] = args.decode
            ok = True
            for d in plan.devices:
                key = "CPU" if not d.is_gpu else d.name.split(" (")[0]
                m = real.get(key, {"weights": 0, "kv": 0, "compute": 0})
                for part in ("weights", "kv", "compute"):
                    p, r = getattr(d, part), m[part]
                    good = within(p, r, PART_TOL)
                    ok &= good
                    row[f"{key} {part} plan/real MiB"] = f"{p / MiB:.1f}/{r / MiB:.1f}"
                if d.is_gpu:
                    g = int(key.split()[1])
                    rise = after.gpus[g].memory_used - before.gpus[g].memory_used
                    good = within(d.total, rise, TOTAL_TOL)
                    ok &= good
                    row[f"{key} total plan/NVML rise MiB"] = f"{d.total / MiB:.0f}/{rise / MiB:.0f}"
            row["ok"] = ok
            row["llama_buffers_mib"] = {
                n: {k: round(v / MiB, 2) for k, v in kinds.items()} for n, kinds in buffers.items()
            }
            rows.append(row)
            llama_cpp.llama_free(lctx)
            time.sleep(0.2)
        llama_cpp.llama_model_free(model)
    for row in rows:
        print(json.dumps({k: v for k, v in row.items() if k != "llama_buffers_mib"}))
    good = sum(1 for r in rows if r.get("ok"))
    print(f"{good}/{len(rows)} settings within the targets")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
