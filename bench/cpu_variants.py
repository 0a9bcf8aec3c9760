"""The CPU build with run-time variants (ggml picks one for this processor) against the
portable AVX2 build it replaced, side by side in one run: the app's own --benchmark (prompt
and generation tokens/s, synchronized) on the same model and threads, runs alternating so that
a busy machine slows both alike.

    python -m bench.cpu_variants --avx2-site DIR --model M.gguf [--runs 3] [--threads 2]

DIR holds the AVX2 wheel unpacked (its llama_cpp/ package); the variants build is the one
installed. A model larger than the default (the 1B shape of bench.write_shapes) shows the
difference; SmolLM2-135M is too small on 2 cores."""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path


def run(site: Path | None, model: Path, threads: int) -> tuple[float, float, str]:
    env = dict(os.environ)
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    args = [sys.executable, "-m", "kobold_gui", "--model", str(model), "--threads", str(threads)]
    args += ["--benchmark", "--pairs", "512:512", "--prompt-tokens", "512", "--gen-tokens", "64"]
    args += ["--repeats", "1"]
    out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=1800).stdout
    prompt = re.search(r"prompt\s+([\d.]+)\s*t/s", out) or re.search(r"([\d.]+) t/s", out)
    gen = re.search(r"gen(?:eration)?\s+([\d.]+)\s*t/s", out)
    if prompt is None or gen is None:
        raise SystemExit(f"no speeds in the benchmark's output:\n{out}")
    return float(prompt.group(1)), float(gen.group(1)), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--avx2-site", type=Path, required=True)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    builds = {"variants": None, "avx2": a.avx2_site}
    speeds: dict[str, list[tuple[float, float]]] = {name: [] for name in builds}
    for i in range(a.runs):
        for name, site in builds.items():
            prompt, gen, _ = run(site, a.model, a.threads)
            speeds[name].append((prompt, gen))
            print(f"run {i + 1} {name:9} prompt {prompt:8.1f} t/s  gen {gen:6.1f} t/s", flush=True)
    med = {n: (statistics.median(p for p, _ in s), statistics.median(g for _, g in s))
           for n, s in speeds.items()}  # fmt: skip
    for name, (p, g) in med.items():
        print(f"median {name:9} prompt {p:8.1f} t/s  gen {g:6.1f} t/s")
    (vp, vg), (ap_, ag) = med["variants"], med["avx2"]
    print(f"variants / avx2: prompt {vp / ap_:.3f}, generation {vg / ag:.3f}")


if __name__ == "__main__":
    main()
