"""On a real NVIDIA GPU (device machine): the inventory and --list-gpus, then a model loaded
with every layer offloaded, comparing NVML's used-memory rise and process accounting with
llama.cpp's own buffer sizes. Qt-free (the device machine has no PySide6).

    python3 -m bench.gpu_check --out $OUT [--model PATH | --vocab VOCAB.gguf --shape 1b]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from kobold_gui.core.engine.local import LocalEngine
from kobold_gui.core.engine.prompt_template import Message
from kobold_gui.core.engine.types import SamplingParams
from kobold_gui.core.hardware.nvml import GpuInventory
from kobold_gui.core.hardware.probe import probe_hardware
from kobold_gui.core.launch.options import LaunchConfig
from kobold_gui.core.launch.resolve import resolve_launch
from kobold_gui.core.llama.buffers import device_totals, parse_buffer_sizes
from kobold_gui.core.llama.library import backend_info
from kobold_gui.core.models.gguf_info import read_gguf
from kobold_gui.dev.synthetic_gguf import Shape, write_model

SHAPES = {
    "1b": Shape(layers=16, embd=2048, ffn=8192, heads=32, kv_heads=8, context=131072),
    "8b": Shape(layers=32, embd=4096, ffn=14336, heads=32, kv_heads=8, context=131072),
}
MiB = 1 << 20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--vocab", type=Path)
    ap.add_argument("--shape", default="1b", choices=SHAPES)
    ap.add_argument("--contextsize", type=int, default=8192)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    inventory = GpuInventory()
    before = inventory.snapshot()  # before this process touches CUDA
    result: dict[str, object] = {"backend": backend_info().__dict__}

    listing = subprocess.run(
        [sys.executable, "-m", "kobold_gui", "--list-gpus", "--json"],
        capture_output=True,
        text=True,
    )
    (args.out / "list_gpus.json").write_text(listing.stdout)
    result["list_gpus_rc"] = listing.returncode
    result["list_gpus_stderr"] = listing.stderr

    model = args.model
    if model is None:
        t = time.perf_counter()
        model = write_model(
            Path(f"/tmp/synthetic-{args.shape}.gguf"), SHAPES[args.shape], "Q4_0", args.vocab
        )
        result["model_written_s"] = round(time.perf_counter() - t, 1)

    report = probe_hardware(inventory.snapshot())
    config = LaunchConfig(contextsize=args.contextsize, gpulayers=-1, flashattention="on")
    launch = resolve_launch(config, model, read_gguf(model), report.gpu_offload, report)
    engine = LocalEngine()
    loaded = engine.load(launch)
    reply = engine.chat(
        [Message("user", "Hello")], SamplingParams(max_tokens=32, temperature=0), lambda _t: None
    )
    time.sleep(0.5)
    after = inventory.snapshot()
    buffers = parse_buffer_sizes(loaded.log)
    totals = device_totals(buffers)
    gpus = []
    for b, a in zip(before.gpus, after.gpus, strict=True):
        device = report.device_for_gpu(a.index)
        llama_bytes = totals.get(device.name, 0) if device else 0
        rise = a.memory_used - b.memory_used
        gpus.append(
            {
                "index": a.index,
                "name": a.name,
                "pci": a.pci_bus_id,
                "llama_device": device.name if device else None,
                "nvml_used_rise_mib": round(rise / MiB, 1),
                "nvml_process_accounting_mib": round(a.memory_used_by_us / MiB, 1),
                "llama_buffers_mib": round(llama_bytes / MiB, 1),
                "rise_minus_buffers_mib (CUDA context etc.)": round((rise - llama_bytes) / MiB, 1),
                "util_now": a.util_gpu,
                "temp_now": a.temperature_c,
            }
        )
    result.update(
        model=str(model),
        n_ctx=loaded.n_ctx,
        n_batch=loaded.n_batch,
        n_ubatch=loaded.n_ubatch,
        load_s=round(loaded.load_seconds, 2),
        n_gpu_layers=launch.n_gpu_layers,
        reply_tokens=reply.generated_tokens,
        reply_tps=round(reply.tokens_per_s, 1),
        buffers_mib={
            d: {k: round(v / MiB, 2) for k, v in kinds.items()} for d, kinds in buffers.items()
        },
        gpus=gpus,
    )
    engine.close()
    time.sleep(0.5)
    freed = inventory.snapshot()
    result["after_unload_used_mib"] = [round(g.memory_used / MiB, 1) for g in freed.gpus]
    result["before_used_mib"] = [round(g.memory_used / MiB, 1) for g in before.gpus]
    (args.out / "gpu_check.json").write_text(json.dumps(result, indent=2))
    (args.out / "llama_load.log").write_text("\n".join(loaded.log))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
