"""Measure, don't guess: a sweep of (n_batch, n_ubatch) pairs on the loaded model, the
"measured" batch policy's choice from it, and the results kept per machine and model.

Each candidate runs on a fresh context of the already loaded model (weights are not
reloaded): P prompt tokens, then G single-token steps, timed after llama_synchronize. The
memory of each pair is llama.cpp's own: its compute and KV buffer sizes at context creation,
and the NVML used-memory rise per GPU while the context exists (where there are GPUs)."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kobold_gui.core.batching import BLAS_STOPS, KoboldRule
from kobold_gui.core.engine import Engine
from kobold_gui.core.engine_types import BackendInfo, EngineError, Stopped
from kobold_gui.core.gpus import Inventory
from kobold_gui.core.launch import ResolvedLaunch
from kobold_gui.core.llama_buffers import parse_buffer_sizes
from kobold_gui.core.paths import cache_dir, write_json_atomic

DEFAULT_PROMPT_TOKENS = 2048
DEFAULT_GEN_TOKENS = 64
DEFAULT_SHARE = 0.9


class SweepError(ValueError):
    """Bad sweep input (a size of 0, a ubatch above its batch, too many tokens)."""


@dataclass(frozen=True)
class Candidate:
    n_batch: int
    n_ubatch: int
    kind: str  # "koboldcpp" (the seed rule's pair), "tied" (ubatch = batch), "pair"


@dataclass(frozen=True)
class SweepRow:
    n_batch: int
    n_ubatch: int
    kind: str
    prompt_tps: float
    gen_tps: float
    ttft_s: float
    compute_bytes: int  # all devices, from llama.cpp's log
    kv_bytes: int
    gpu_rise_bytes: tuple[int, ...] = ()  # NVML used-memory rise per GPU with the context
    error: str | None = None

    @property
    def memory_bytes(self) -> int:
        return self.compute_bytes + self.kv_bytes


def validate_pair(n_batch: int, n_ubatch: int) -> None:
    if n_batch < 1 or n_ubatch < 1:
        raise SweepError(f"batch sizes must be at least 1 (got {n_batch}:{n_ubatch})")
    if n_ubatch > n_batch:
        raise SweepError(f"n_ubatch {n_ubatch} is above its n_batch {n_batch}")


def candidates_from(
    blas_sizes: Sequence[int] = (), pairs: Sequence[tuple[int, int]] = (), n_gpus: int = 1
) -> list[Candidate]:
    """BLAS sizes each with the seed rule's ubatch and with ubatch = batch; pairs as given.
    Without either: the slider's stops from 128 up, plus batch > ubatch pairs for several
    GPUs (pipeline parallelism needs n_batch > n_ubatch)."""
    rule = KoboldRule()
    out: list[Candidate] = []
    sizes = list(blas_sizes) or ([] if pairs else [b for b in BLAS_STOPS if b >= 128])
    for b in sizes:
        if b < 1:
            raise SweepError(f"a BLAS size must be at least 1, not {b}")
        n_batch, n_ubatch = rule.pair(b)
        out.append(Candidate(n_batch, n_ubatch, "koboldcpp"))
        if n_ubatch != b:
            out.append(Candidate(b, b, "tied"))
    for n_batch, n_ubatch in pairs:
        validate_pair(n_batch, n_ubatch)
        out.append(Candidate(n_batch, n_ubatch, "pair"))
    if not blas_sizes and not pairs and n_gpus > 1:
        out += [Candidate(b, u, "pair") for b, u in ((2048, 512), (4096, 512), (4096, 2048))]
    seen: set[tuple[int, int]] = set()
    unique = []
    for c in out:
        if (c.n_batch, c.n_ubatch) not in seen:
            seen.add((c.n_batch, c.n_ubatch))
            unique.append(c)
    return unique


def run_sweep(
    engine: Engine,
    candidates: Sequence[Candidate],
    prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
    gen_tokens: int = DEFAULT_GEN_TOKENS,
    on_row: Callable[[int, SweepRow], None] | None = None,
    cancel: threading.Event | None = None,
    gpu_used: Callable[[], Sequence[int]] | None = None,
) -> list[SweepRow]:
    """Run the candidates in order; a pair that fails (out of memory) is recorded with its
    error and the sweep goes on. Cancel ends it between or inside pairs; the loaded model
    stays usable."""
    cancel = cancel or threading.Event()
    rows: list[SweepRow] = []
    if candidates:  # warm-up, not recorded: the first context of a process pays for loading
        first = candidates[0]  # kernels and allocating pools, which no candidate should carry
        with contextlib.suppress(EngineError, Stopped):
            engine.measure_batch(
                first.n_batch,
                first.n_ubatch,
                min(prompt_tokens, first.n_batch),
                min(gen_tokens, 4),
                cancel,
            )
    for i, c in enumerate(candidates):
        if cancel.is_set():
            break
        before = tuple(gpu_used()) if gpu_used else ()
        try:
            m = engine.measure_batch(
                c.n_batch, c.n_ubatch, prompt_tokens, gen_tokens, cancel, gpu_used
            )
        except Stopped:
            break
        except EngineError as e:
            row = SweepRow(c.n_batch, c.n_ubatch, c.kind, 0.0, 0.0, 0.0, 0, 0, (), str(e))
        else:
            sizes = parse_buffer_sizes(m.log)
            compute = sum(k.get("compute", 0) for k in sizes.values())
            kv = sum(k.get("KV", 0) for k in sizes.values())
            rise = tuple(
                max(0, a - b) for a, b in zip(m.gpu_used_peak or before, before, strict=False)
            )
            row = SweepRow(
                c.n_batch,
                c.n_ubatch,
                c.kind,
                m.prompt_tokens_per_s,
                m.gen_tokens_per_s,
                m.time_to_first_token_s,
                compute,
                kv,
                rise,
            )
        rows.append(row)
        if on_row:
            on_row(i, row)
    return rows


def choose_pair(
    rows: Sequence[SweepRow], budget_bytes: int | None = None, share: float = DEFAULT_SHARE
) -> tuple[SweepRow | None, str]:
    """The measured policy: the best prompt speed among pairs whose memory fits the budget
    and whose generation speed is within `share` of the best seen. Ties go to less memory."""
    ok = [r for r in rows if r.error is None and r.prompt_tps > 0]
    if not ok:
        return None, "no pair was measured"
    fitting = [r for r in ok if budget_bytes is None or r.memory_bytes <= budget_bytes]
    if not fitting:
        return None, "no measured pair fits the memory budget"
    best_gen = max(r.gen_tps for r in ok)
    fast_enough = [r for r in fitting if r.gen_tps >= share * best_gen]
    if not fast_enough:
        return None, f"no fitting pair keeps {share:.0%} of the best generation speed"
    pick = max(fast_enough, key=lambda r: (round(r.prompt_tps, 6), -r.memory_bytes))
    return pick, (
        f"n_batch {pick.n_batch}, n_ubatch {pick.n_ubatch}: best prompt speed "
        f"({pick.prompt_tps:.0f} t/s) with generation ≥ {share:.0%} of the best"
    )


def step_down_order(rows: Sequence[SweepRow], pick: SweepRow | None) -> list[tuple[int, int]]:
    """The measured policy's pick first, then the other measured pairs, fastest prompt first:
    where a launch steps down to when the pick does not fit (see core/launch.py)."""
    if pick is None:
        return []
    rest = sorted((r for r in rows if r.error is None and r != pick), key=lambda r: -r.prompt_tps)
    return [(r.n_batch, r.n_ubatch) for r in (pick, *rest)]


# -- kept results --------------------------------------------------------------------------
def sweep_key(identity: dict[str, Any]) -> str:
    """Results are kept per GPU names and driver, llama.cpp build and backend, model file
    identity, n_ctx, GPU layers, split, threads, flash attention and KV type."""
    text = json.dumps(identity, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def sweep_identity(
    inventory: Inventory, backend: BackendInfo, launch: ResolvedLaunch
) -> dict[str, Any]:
    """What a sweep's results depend on: the same key in the CLI and the window."""
    assert launch.model_path is not None
    return {
        "gpus": [g.name for g in inventory.gpus],
        "driver": inventory.driver_version,
        "llama_cpp_python": backend.llama_cpp_python,
        "backend": backend.name,
        "model": model_identity(launch.model_path),
        "n_ctx": launch.n_ctx_effective,
        "gpu_layers": launch.n_gpu_layers,
        "split": list(launch.tensor_split) if launch.tensor_split else None,
        "gpus_used": launch.config.gpus,
        "threads": launch.n_threads,
        "flash_attn": launch.config.flashattention,
        "kv_type": launch.config.kvtype,
    }


def model_identity(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime": int(st.st_mtime)}


def save_sweep(
    identity: dict[str, Any], rows: Sequence[SweepRow], folder: Path | None = None
) -> Path:
    folder = folder or cache_dir() / "sweeps"
    path = folder / f"{sweep_key(identity)}.json"
    write_json_atomic(path, {"version": 1, "identity": identity, "rows": [asdict(r) for r in rows]})
    return path


def load_sweep(identity: dict[str, Any], folder: Path | None = None) -> list[SweepRow] | None:
    folder = folder or cache_dir() / "sweeps"
    path = folder / f"{sweep_key(identity)}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("identity") != identity:
            return None
        return [
            SweepRow(**{**r, "gpu_rise_bytes": tuple(r.get("gpu_rise_bytes", ()))})
            for r in data["rows"]
        ]
    except (OSError, ValueError, TypeError, KeyError):
        return None  # missing, corrupt or from another version: measure again


def rows_to_csv(rows: Sequence[SweepRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "n_batch",
            "n_ubatch",
            "kind",
            "prompt_tps",
            "gen_tps",
            "ttft_s",
            "compute_mib",
            "kv_mib",
            "gpu_rise_mib",
            "error",
        ]
    )
    for r in rows:
        writer.writerow(
            [
                r.n_batch,
                r.n_ubatch,
                r.kind,
                f"{r.prompt_tps:.1f}",
                f"{r.gen_tps:.1f}",
                f"{r.ttft_s:.4f}",
                f"{r.compute_bytes / 2**20:.1f}",
                f"{r.kv_bytes / 2**20:.1f}",
                " ".join(f"{b / 2**20:.0f}" for b in r.gpu_rise_bytes),
                r.error or "",
            ]
        )
    return out.getvalue()
