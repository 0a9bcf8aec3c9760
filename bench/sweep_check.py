"""Issue 9 on the GPU machine: the sweep through `kobold-gui --benchmark` against the
reference table (../shared/device/README.md, one H100, FA on, 8192-token prompt, n_ctx
16384), then, in fresh processes, the measured policy's pair and the sweep's best pair again.

    python3 -m bench.sweep_check MODEL.gguf 8b|1b
"""

from __future__ import annotations

import json
import subprocess
import sys

# prompt t/s, gen t/s by n_ubatch (= n_batch), from ../shared/device/README.md
REFERENCE = {
    "8b": {
        128: (6662, 281),
        256: (8863, 276),
        512: (10932, 278),
        1024: (11578, 282),
        2048: (11933, 274),
        4096: (11329, 283),
    },
    "1b": {
        256: (37417, 837),
        512: (48826, 840),
        1024: (56589, 833),
        2048: (54944, 854),
        4096: (41126, 861),
    },
}
COMMON = [
    "--json",
    "--prompt-tokens",
    "8192",
    "--contextsize",
    "16384",
    "--gen-tokens",
    "32",
    "--flashattention",
    "on",
    "--gpulayers",
    "99",
]


def bench(model: str, *extra: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "kobold_gui", "--benchmark", "--model", model, *COMMON, *extra],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def main() -> None:
    model, shape = sys.argv[1], sys.argv[2]
    sweep = bench(model)
    print(f"== {shape}: sweep (n_batch, n_ubatch): measured vs reference (tied pairs)")
    for r in sweep["rows"]:
        ref = REFERENCE[shape].get(r["n_ubatch"]) if r["n_batch"] == r["n_ubatch"] else None
        cmp = ""
        if ref:
            cmp = (
                f"  ref {ref[0]:6d} / {ref[1]:4d}  ratio {r['prompt_tps'] / ref[0]:.2f} / "
                f"{r['gen_tps'] / ref[1]:.2f}"
            )
        print(
            f"  {r['n_batch']:5d} {r['n_ubatch']:5d} {r['kind']:9s} prompt {r['prompt_tps']:8.0f}"
            f"  gen {r['gen_tps']:5.0f}  compute {r['compute_bytes'] / 2**20:7.1f} MiB{cmp}"
        )
    # The measured policy's pair; "no measurable difference" keeps the seed rule's 512:512.
    pick = tuple(sweep["measured_policy"] or (512, 512))
    best = max(sweep["rows"], key=lambda r: r["prompt_tps"])
    print(f"measured policy: {sweep['why']}")
    again = bench(
        model,
        "--pairs",
        f"{pick[0]}:{pick[1]},{best['n_batch']}:{best['n_ubatch']}",
    )
    rows = {(r["n_batch"], r["n_ubatch"]): r for r in again["rows"]}
    p = rows[pick]
    b = rows[(best["n_batch"], best["n_ubatch"])]
    seed = next(r for r in sweep["rows"] if r["kind"] == "koboldcpp" and r["n_batch"] == 512)
    print(
        f"fresh process: picked {p['n_batch']}:{p['n_ubatch']} prompt {p['prompt_tps']:.0f} "
        f"gen {p['gen_tps']:.0f}; best {b['n_batch']}:{b['n_ubatch']} prompt "
        f"{b['prompt_tps']:.0f} gen {b['gen_tps']:.0f}; picked/best prompt "
        f"{p['prompt_tps'] / b['prompt_tps']:.3f} (target >= 0.95), gen "
        f"{p['gen_tps'] / max(r['gen_tps'] for r in sweep['rows']):.3f} of the sweep's best"
    )
    print(
        f"seed rule at the default BLAS 512: prompt {seed['prompt_tps']:.0f} gen "
        f"{seed['gen_tps']:.0f}"
    )


if __name__ == "__main__":
    main()
