"""Does the API cost speed? Tokens/s and time to first token of one streamed client through
the KoboldAI API (kobold-gui --headless in a fresh process, httpx here) vs the engine called
directly (in a fresh process), interleaved, median and spread of N runs each; then the
aggregate tokens/s of 1, 4 and 8 concurrent streaming clients on one server.

Both sides are timed where the text arrives (the on_text callback, the client's SSE event):
TTFT from the request to the first text, tokens/s = (tokens - 1) / (last text - first text).
Greedy, EOS banned, so every run generates exactly the same tokens.

    .venv/bin/python -m bench.api_vs_engine [--runs 5] [--tokens 64] [--model PATH]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

THREADS = 0  # 0: the launch default (all cores)
PROMPT = (
    "Below is a short report about the weather in three cities, written for a newspaper. "
    "It gives the temperature, the wind and the chance of rain, then a forecast for the "
    "weekend.\n\nReport:"
)


def child_engine(model: str | None, tokens: int, ctx: int, threads: int) -> None:
    """Runs in a fresh process: load, warm up, one timed generation; prints JSON."""
    from pathlib import Path

    from kobold_gui.core.engine.local import LocalEngine
    from kobold_gui.core.engine.types import SamplingParams
    from kobold_gui.core.hardware.nvml import GpuInventory
    from kobold_gui.core.hardware.probe import probe_hardware
    from kobold_gui.core.launch.options import LaunchConfig
    from kobold_gui.core.launch.resolve import resolve_launch
    from kobold_gui.core.llama.library import backend_info
    from kobold_gui.core.models.files import default_model_path
    from kobold_gui.core.models.gguf_info import read_gguf

    path = Path(model) if model else default_model_path()
    assert path is not None
    engine = LocalEngine()
    config = LaunchConfig(contextsize=ctx, threads=threads)
    # Launched as the server launches it (GPU layers, devices): the same work on both sides.
    offload = backend_info().gpu_offload
    report = probe_hardware(GpuInventory().snapshot()) if offload else None
    engine.load(resolve_launch(config, path, read_gguf(path), offload, report))
    warm = SamplingParams(max_tokens=4, temperature=0, repeat_penalty=1.0, ban_eos=True)
    engine.generate(engine.tokenize("Hi"), warm, lambda _t: None)
    params = SamplingParams(max_tokens=tokens, temperature=0, repeat_penalty=1.0, ban_eos=True)
    stamps: list[float] = []
    t0 = time.perf_counter()
    result = engine.generate(
        engine.tokenize(PROMPT), params, lambda _t: stamps.append(time.perf_counter())
    )
    engine.close()
    print(json.dumps(_timing(t0, stamps, result.generated_tokens)))


def _timing(t0: float, stamps: list[float], n: int) -> dict[str, float]:
    span = stamps[-1] - stamps[0]
    return {"ttft_ms": (stamps[0] - t0) * 1000, "tps": (n - 1) / span if span else 0.0, "n": n}


def start_server(model: str | None, ctx: int) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "kobold_gui", "--headless", "--port", "0"]
    cmd += ["--contextsize", str(ctx)] + (["--model", model] if model else [])
    cmd += ["--threads", str(THREADS)] if THREADS else []
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if m := re.search(r"KoboldAI API: (http://\S+)", line):
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # drain
            return proc, m.group(1)
    raise SystemExit("the server did not start")


def stream(client: httpx.Client, url: str, prompt: str, tokens: int) -> dict[str, float]:
    body = {"prompt": prompt, "max_length": tokens, "temperature": 0, "rep_pen": 1.0}
    body["ban_eos_token"] = True
    stamps: list[float] = []
    t0 = time.perf_counter()
    with client.stream("POST", url + "/api/extra/generate/stream", json=body) as r:
        for line in r.iter_lines():
            if line.startswith("data:") and json.loads(line[5:])["token"]:
                stamps.append(time.perf_counter())
    return _timing(t0, stamps, tokens)  # EOS banned: exactly `tokens` were generated


def api_run(model: str | None, tokens: int, ctx: int) -> dict[str, float]:
    proc, url = start_server(model, ctx)
    try:
        with httpx.Client(timeout=600) as client:
            stream(client, url, "Hi", 4)  # the same warm-up as the engine's
            return stream(client, url, PROMPT, tokens)
    finally:
        proc.terminate()
        proc.wait(60)


def engine_run(model: str | None, tokens: int, ctx: int) -> dict[str, float]:
    cmd = [sys.executable, "-m", "bench.api_vs_engine", "--child-engine"]
    cmd += ["--tokens", str(tokens), "--ctx", str(ctx)] + (["--model", model] if model else [])
    cmd += ["--threads", str(THREADS)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def aggregate(model: str | None, tokens: int, ctx: int, clients: list[int]) -> None:
    proc, url = start_server(model, ctx)
    try:
        with httpx.Client(timeout=600) as warm:
            stream(warm, url, "Hi", 4)
        print(f"\naggregate over one server, {tokens} tokens per client (queue, FIFO)")
        print(f"{'clients':>8} {'tokens/s':>9} {'wall s':>8} {'TTFT median ms':>15} {'max':>8}")
        for k in clients:

            def one(i: int) -> dict[str, float]:
                with httpx.Client(timeout=600) as c:
                    return stream(c, url, f"{PROMPT} ({i})", tokens)

            t0 = time.perf_counter()
            with ThreadPoolExecutor(k) as pool:
                results = list(pool.map(one, range(k)))
            wall = time.perf_counter() - t0
            total = sum(r["n"] for r in results)
            ttfts = [r["ttft_ms"] for r in results]
            print(
                f"{k:>8} {total / wall:>9.1f} {wall:>8.1f} "
                f"{statistics.median(ttfts):>15.0f} {max(ttfts):>8.0f}"
            )
    finally:
        proc.terminate()
        proc.wait(60)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):8.1f}  [{min(values):.1f} … {max(values):.1f}]"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--ctx", type=int, default=1024)
    p.add_argument("--model")
    p.add_argument("--clients", default="1,4,8")
    p.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0: default)")
    p.add_argument("--child-engine", action="store_true")
    args = p.parse_args()
    global THREADS
    THREADS = args.threads
    if args.child_engine:
        child_engine(args.model, args.tokens, args.ctx, args.threads)
        return
    api: list[dict[str, float]] = []
    direct: list[dict[str, float]] = []
    for i in range(args.runs):  # interleaved: drifts of a shared machine hit both sides
        direct.append(engine_run(args.model, args.tokens, args.ctx))
        api.append(api_run(args.model, args.tokens, args.ctx))
        print(
            f"run {i + 1}: engine {direct[-1]['tps']:.1f} tok/s, TTFT {direct[-1]['ttft_ms']:.0f}"
            f" ms | API {api[-1]['tps']:.1f} tok/s, TTFT {api[-1]['ttft_ms']:.0f} ms",
            flush=True,
        )
    e_tps, a_tps = [r["tps"] for r in direct], [r["tps"] for r in api]
    e_ttft, a_ttft = [r["ttft_ms"] for r in direct], [r["ttft_ms"] for r in api]
    print(f"\n{args.tokens} tokens, greedy, {args.runs} fresh processes each, median [min … max]")
    print(f"{'':18} {'engine':>26} {'API (stream)':>26}")
    print(f"{'tokens/s':18} {spread(e_tps):>26} {spread(a_tps):>26}")
    print(f"{'TTFT ms':18} {spread(e_ttft):>26} {spread(a_ttft):>26}")
    ratio = statistics.median(a_tps) / statistics.median(e_tps)
    overhead = statistics.median(a_ttft) - statistics.median(e_ttft)
    print(f"ratio API/engine tokens/s: {ratio:.3f} (goal ≥ 0.95)")
    print(f"TTFT overhead: {overhead:+.1f} ms (goal < 15 ms)")
    aggregate(args.model, args.tokens, args.ctx, [int(k) for k in args.clients.split(",")])


if __name__ == "__main__":
    main()
