"""Parallel slots vs the queue, through the HTTP API: k concurrent streaming clients (k = 1,
2, 4, 8, 16) against `kobold-gui --headless --parallel N` and against `--parallel 1` (the
FIFO queue), each a server of its own, one after the other, in the same run. Every client
streams one /v1/completions reply of exactly --tokens tokens (greedy, EOS ignored), each with
its own prompt.

Printed side by side: aggregate tokens/s (all clients' tokens over the wall time from the
first request to the last token), per-client tokens/s (a client's tokens after its first,
over the time from its first token to its last: its stream's speed), the median time to
first token, and how the slots compare (aggregate ×, per-client stream vs a lone client's).

    .venv/bin/python -m bench.slots_http [--parallel 16] [--clients 1,2,4,8,16]
        [--tokens 32] [--runs 1] [--model PATH] [-- extra kobold-gui launch flags, e.g.
        --contextsize 8192 --gpulayers 99 --flashattention]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx

PROMPTS = [
    "Write a story about a lighthouse keeper.",
    "Explain how bread rises.",
    "List facts about the planet Mars.",
    "Describe a walk through a forest in autumn.",
    "Tell me about the history of bicycles.",
    "Write a letter to a friend about a trip.",
    "Explain what a prime number is.",
    "Describe the rules of chess.",
]


@dataclass
class Reply:
    start: float
    first: float
    end: float
    tokens: int
    text: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    parallel: int, model: str | None, extra: list[str]
) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "kobold_gui", "--headless", "--port", str(port)]
    cmd += ["--parallel", str(parallel), *(["--model", model] if model else []), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise SystemExit(f"the server (--parallel {parallel}) ended: {err[-2000:]}")
        try:
            if httpx.get(url + "/api/v1/model", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("the server did not start in 10 minutes")


async def stream_one(client: httpx.AsyncClient, url: str, prompt: str, tokens: int) -> Reply:
    body = {
        "prompt": prompt,
        "max_tokens": tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
    }
    start = time.perf_counter()
    first = 0.0
    parts: list[str] = []
    async with client.stream("POST", url + "/v1/completions", json=body, timeout=600) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data:") or line.strip() == "data: [DONE]":
                continue
            chunk = json.loads(line[5:])
            text = chunk["choices"][0].get("text") or ""
            if text and not first:
                first = time.perf_counter()
            parts.append(text)
    end = time.perf_counter()
    return Reply(start, first or end, end, tokens, "".join(parts))


def _prompt(i: int) -> str:
    return f"{PROMPTS[i % len(PROMPTS)]} ({i})"


async def run_clients(url: str, k: int, tokens: int) -> tuple[dict[str, float], list[str]]:
    """The figures of k concurrent clients, and each client's text (client i sends _prompt(i))."""
    limits = httpx.Limits(max_connections=k + 4)
    async with httpx.AsyncClient(limits=limits) as client:
        t0 = time.perf_counter()
        replies = await asyncio.gather(
            *(stream_one(client, url, _prompt(i), tokens) for i in range(k))
        )
        wall = max(r.end for r in replies) - t0
    per_client = [(r.tokens - 1) / (r.end - r.first) for r in replies if r.end > r.first]
    figures = {
        "aggregate": sum(r.tokens for r in replies) / wall,
        "per_client": statistics.median(per_client) if per_client else 0.0,
        "ttft": statistics.median(r.first - r.start for r in replies),
    }
    return figures, [r.text for r in replies]


Results = dict[int, dict[str, float]]
Texts = dict[int, list[str]]


def measure(
    parallel: int, model: str | None, extra: list[str], clients: list[int], tokens: int, runs: int
) -> tuple[Results, Texts]:
    """Each figure: the median of `runs` runs; the texts of the last run."""
    proc, url = start_server(parallel, model, extra)
    try:
        asyncio.run(run_clients(url, 1, 4))  # warm up
        out: Results = {}
        texts: Texts = {}
        for k in clients:
            done = [asyncio.run(run_clients(url, k, tokens)) for _ in range(runs)]
            out[k] = {key: statistics.median(d[0][key] for d in done) for key in done[0][0]}
            texts[k] = done[-1][1]
        return out, texts
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--parallel", type=int, default=16, help="slots of the parallel server")
    p.add_argument("--clients", default="1,2,4,8,16")
    p.add_argument("--tokens", type=int, default=32, help="tokens each client streams")
    p.add_argument("--runs", type=int, default=1, help="runs per figure (the median)")
    p.add_argument("--model")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="-- then kobold-gui launch flags")
    args = p.parse_args()
    extra = [a for a in args.extra if a != "--"]
    clients = [int(c) for c in args.clients.split(",")]
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    queue, queue_texts = measure(1, args.model, extra, clients, args.tokens, args.runs)
    slots, slot_texts = measure(args.parallel, args.model, extra, clients, args.tokens, args.runs)
    lone = slots[clients[0]]["per_client"] if clients[0] == 1 else 0.0
    print(
        f"{args.tokens} tokens per client; queue = --parallel 1, slots = --parallel {args.parallel}"
    )
    print(
        f"{'clients':>7} | {'aggregate t/s':>21} | {'per-client t/s':>21} | {'TTFT median s':>17} |"
        f" {'slots vs queue':>14} | {'stream vs lone':>14} | differs"
    )
    qs = f"{'queue':>10} {'slots':>10}"
    print(f"{'':>7} | {qs} | {qs} | {'queue':>8} {'slots':>8} |")
    for k in clients:
        q, s = queue[k], slots[k]
        ratio = s["aggregate"] / q["aggregate"] if q["aggregate"] else 0.0
        vs_lone = s["per_client"] / lone if lone else 0.0
        print(
            f"{k:>7} | {q['aggregate']:>10.1f} {s['aggregate']:>10.1f} | {q['per_client']:>10.1f}"
            f" {s['per_client']:>10.1f} | {q['ttft']:>8.2f} {s['ttft']:>8.2f} | {ratio:>13.2f}x |"
            f" {vs_lone:>13.2f}x | {_differing(queue_texts[k], slot_texts[k])}/{k}"
        )
    print(
        "differs: greedy answers of the slots that are not the same text as the same request"
        " served alone (the queue), out of the clients"
    )


def _differing(alone: list[str], together: list[str]) -> int:
    """How many answers differ from the same prompt's answer when it ran alone. An empty or
    cut answer counts as differing too."""
    return sum(1 for a, b in zip(alone, together, strict=True) if a != b or not b)


if __name__ == "__main__":
    main()
