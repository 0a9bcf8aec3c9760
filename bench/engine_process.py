"""What running the engine in a child process costs, side by side in one run: the same model
and settings loaded in-process (LocalEngine) and in the child (ChildEngine, the path of loads
over other machines), then replies alternating between the two: time to first token, generation
tokens/s (each the engine's own figures, after llama_synchronize), the wall time of the whole
reply as the caller sees it (the child's relay included), and load time. Optionally the same
split over local RPC servers (--rpc HOST:PORT,...).

    .venv/bin/python -m bench.engine_process [--model PATH] [--rounds 5] [--gpulayers N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import kobold_gui  # noqa: F401  (libllama before numpy)
from kobold_gui.core.engine.child import ChildEngine
from kobold_gui.core.engine.local import LocalEngine
from kobold_gui.core.engine.prompt_template import Message
from kobold_gui.core.engine.protocol import Engine
from kobold_gui.core.engine.types import GenerationResult, SamplingParams
from kobold_gui.core.launch.options import LaunchConfig
from kobold_gui.core.launch.resolve import resolve_launch
from kobold_gui.core.llama.library import backend_info
from kobold_gui.core.models.files import default_model_path
from kobold_gui.core.models.gguf_info import read_gguf
from kobold_gui.core.remote.probe import probe

PROMPT = [Message("user", "Write a long story about a dragon who learns to count. " * 8)]
PARAMS = SamplingParams(max_tokens=128, temperature=0.0, ban_eos=True)


def reply(engine: Engine) -> tuple[GenerationResult, float]:
    t0 = time.perf_counter()
    result = engine.chat(PROMPT, PARAMS, lambda _t: None)
    return result, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--gpulayers", type=int, default=-1)
    ap.add_argument("--rpc", default="", help="also load over these RPC servers")
    args = ap.parse_args()
    path = args.model or default_model_path()
    assert path is not None
    info = read_gguf(path)
    backend = backend_info()
    print(f"backend {backend.name}, gpu offload {backend.gpu_offload}, model {path.name}")
    config = LaunchConfig(contextsize=args.ctx, gpulayers=args.gpulayers)
    launch = resolve_launch(config, path, info, backend.gpu_offload, None)
    engines: dict[str, Engine] = {"in-process": LocalEngine(), "child process": ChildEngine()}
    if args.rpc:
        rpc_config = config.with_values(rpc=args.rpc)
        remote = [d for e in rpc_config.rpc for d in probe(e).devices]
        rpc_launch = resolve_launch(
            rpc_config, path, info, backend.gpu_offload, None, None, None, remote
        )
    loads: dict[str, float] = {}
    for name, engine in engines.items():
        t0 = time.perf_counter()
        engine.load(launch)
        loads[name] = time.perf_counter() - t0
    if args.rpc:
        engines["over RPC"] = ChildEngine()
        t0 = time.perf_counter()
        engines["over RPC"].load(rpc_launch)
        loads["over RPC"] = time.perf_counter() - t0
    rows: dict[str, list[tuple[GenerationResult, float]]] = {n: [] for n in engines}
    for engine in engines.values():  # warm-up, untimed
        engine.chat(PROMPT, PARAMS, lambda _t: None)
        engine.chat([Message("user", "hi")], PARAMS, lambda _t: None)
    for _ in range(args.rounds):  # interleaved: drift hits every variant alike
        for name, engine in engines.items():
            engine.chat([Message("user", "hi")], PARAMS, lambda _t: None)  # evict the prompt
            rows[name].append(reply(engine))
    print(f"{'':14} {'load s':>7} {'TTFT ms':>8} {'prompt t/s':>10} {'gen t/s':>8} {'wall s':>7}")
    for name, runs in rows.items():
        ttft = statistics.median(r.time_to_first_token_s for r, _ in runs) * 1000
        pps = statistics.median(r.prompt_tokens_per_s for r, _ in runs)
        tps = statistics.median(r.tokens_per_s for r, _ in runs)
        wall = statistics.median(w for _, w in runs)
        print(f"{name:14} {loads[name]:7.2f} {ttft:8.1f} {pps:10.0f} {tps:8.1f} {wall:7.2f}")
    for engine in engines.values():
        engine.close()


if __name__ == "__main__":
    main()
