"""How many requests generate at once: the `parallel` launch option (llama.cpp's n_seq_max,
served by core/engine/slots.py), and what it costs.

`parallel` is not KoboldCPP's --multiuser N, which is how many requests may wait in the
queue; it is KoboldCPP 1.117's --parallelrequests N. 0 means automatic (auto_parallel).

What N slots cost, read from llama.cpp (llama-context.cpp, llama-kv-cache.cpp) and measured
with its buffer log (CPU, SmolLM2-135M, n_ctx 4096 and 8192, N = 1, 4, 16, flash attention
on and off; tests/core/test_parallel_plan.py keeps the check):
- KV cache: the same for any N. The app asks for llama.cpp's unified KV cache (one stream of
  n_ctx cells that every sequence shares); the other layout (one stream of n_ctx / N cells
  per sequence) holds the same bytes too, but caps every request at n_ctx / N tokens. Unified
  lets a lone long chat use the whole context, so `parallel` never shrinks what a client may
  send; the slots share the cells by reservation (core/engine/slot.py).
- Compute buffers: the same for any N (the worst-case graph is one ubatch of n_ubatch
  tokens whatever the number of sequences).
- Output buffer (in RAM, the logits llama.cpp hands back): one row of n_vocab floats per
  sequence, reserved at start: N x n_vocab x 4 bytes (0.19 MiB for one, 3 MiB for 16 with
  SmolLM2's 49152 tokens; 2 MiB for 4 with a 128k vocabulary): core/plan's
  output_bytes.
Not modelled: sliding-window (SWA) layers, whose unified cache grows with N (n_swa x N +
n_ubatch cells), and recurrent models' per-sequence state; the plan has neither yet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kobold_gui.core.plan.compute_buffers import output_bytes
from kobold_gui.core.units import human_bytes

AUTO = 0
MAX_PARALLEL = 256  # llama.cpp's LLAMA_MAX_SEQ
# Automatic on GPUs: the largest of these that fits, each slot keeping a fair share of at
# least MIN_SHARE tokens of context.
GPU_CHOICES = (8, 4, 2)
MIN_SHARE = 512


@dataclass(frozen=True)
class ParallelChoice:
    n: int  # sequences the context holds (1: the queue, one request at a time)
    why: str  # what the window and the CLI show
    reason: str = ""  # why the automatic rule chose n, without the number


def auto_parallel(
    placement: str, remote: bool, n_ctx: int, fits: Callable[[int], bool]
) -> ParallelChoice:
    """The automatic number of requests generated at once. `placement`: where the layers
    run, "cpu" (a CPU-only load, or a build that cannot offload), "partial" (some on the
    CPU) or "gpus" (every layer and the output on GPUs); `fits(n)`: the memory plan's word.

    - Any layer on the CPU: 1, the queue. Measured on this 2-core CPU with SmolLM2-135M
      (bench/results/slots_http-cpu-2core.txt): 16 slots gave 1.9x the queue's aggregate
      tokens/s with 16 clients, but each client's stream fell to 0.08x of a lone one (4.2
      t/s instead of 50): the CPU's decode is bound by compute, so batching mostly shares
      it out. One at a time keeps each reply fast.
    - All layers on GPUs: the largest of 8, 4, 2 that the memory plan says fits and that
      leaves every slot a fair share of at least 512 tokens of the context. A GPU's decode
      is bound by memory bandwidth, so more sequences per step come almost free: issue 26's
      raw decode of an 8B model on an H100 gave 320, 590, 917 and 1247 t/s in all for 1,
      2, 4 and 8 sequences (3.9x with 8, each stream still at 49 % of a lone one).
    - A load over other machines (RPC) runs in a child process that serves one request at
      a time (core/engine/slots.py): 1.
    """
    if remote:
        reason = "over other machines requests are served one at a time"
        return ParallelChoice(1, f"auto: 1 ({reason})", reason)
    if placement != "gpus":
        where = "some layers run on the CPU" if placement == "partial" else "on the CPU"
        reason = f"{where}, batching several requests splits the same speed between them"
        return ParallelChoice(1, f"auto: 1, requests queue ({reason})", reason)
    for n in GPU_CHOICES:
        if n_ctx // n >= MIN_SHARE and fits(n):
            return ParallelChoice(
                n,
                f"auto: {n} (every layer on the GPU, where generating {n} at once costs "
                "each little speed)",
            )
    reason = f"context {n_ctx} is too small to share, or more would not fit"
    return ParallelChoice(1, f"auto: 1 ({reason})", reason)


def chosen_parallel(requested: int, auto: Callable[[], ParallelChoice]) -> ParallelChoice:
    """The user's number, or the automatic one; a number over 1 where the automatic one
    would queue says why it would."""
    if requested == AUTO:
        return auto()
    if requested == 1:
        return ParallelChoice(1, "1: one request at a time, the others queue")
    automatic = auto()
    if automatic.n == 1:  # e.g. on the CPU: the user may not know each stream slows down
        return ParallelChoice(requested, f"{requested} (set; auto would queue: {automatic.reason})")
    return ParallelChoice(requested, f"{requested} (set)")


def sharing_note(n: int, n_ctx: int) -> str:
    """What sharing the context means, in one sentence."""
    if n <= 1:
        return f"One request at a time uses all {n_ctx} tokens of context."
    return (
        f"{n} requests at once share {n_ctx} tokens of context: one alone may use all of it, "
        f"{n} together are each sure of about {n_ctx // n}."
    )


def cost_note(n: int, n_vocab: int) -> str:
    """What N costs beyond one, in memory (the plan counts it in the CPU's compute)."""
    if n <= 1:
        return "KV cache and compute buffers as planned."
    extra = output_bytes(n_vocab, n) - output_bytes(n_vocab)
    return (
        f"Same KV cache and compute buffers as for one (unified KV cache); the output "
        f"buffer in RAM grows by {human_bytes(extra)} (a row of logits per request)."
    )
