"""A sweep's results, without the engine: the pairs to measure, the rows measured, the
measured policy's choice, and the results kept per machine and model.

Each pair is measured several times, interleaved with the others (so that a burst of load
elsewhere hits every pair alike); a row holds the median and every run, and the measured
policy picks a pair only when its lead is larger than the spread of the runs."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kobold_gui.core.hardware.nvml import Inventory
from kobold_gui.core.launch.batching import BLAS_STOPS, DEFAULT_BLAS, KoboldRule, MeasuredChoice
from kobold_gui.core.launch.resolve import ResolvedLaunch
from kobold_gui.core.llama.types import BackendInfo
from kobold_gui.core.paths import cache_dir, write_json_atomic

DEFAULT_PROMPT_TOKENS = 2048
DEFAULT_GEN_TOKENS = 64
DEFAULT_SHARE = 0.9
DEFAULT_REPEATS = 3


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
    prompt_tps: float  # median of the runs
    gen_tps: float
    ttft_s: float
    compute_bytes: int  # all devices, from llama.cpp's log
    kv_bytes: int
    gpu_rise_bytes: tuple[int, ...] = ()  # NVML used-memory rise per GPU with the context
    error: str | None = None
    prompt_runs: tuple[float, ...] = ()  # every run, in the order measured
    gen_runs: tuple[float, ...] = ()

    @property
    def memory_bytes(self) -> int:
        return self.compute_bytes + self.kv_bytes

    @property
    def prompt_low(self) -> float:
        return min(self.prompt_runs, default=self.prompt_tps)

    @property
    def prompt_high(self) -> float:
        return max(self.prompt_runs, default=self.prompt_tps)

    @property
    def spread(self) -> float:
        """Highest minus lowest prompt speed of the runs, relative to the median."""
        return (self.prompt_high - self.prompt_low) / self.prompt_tps if self.prompt_tps else 0.0


def merge_runs(runs: Sequence[SweepRow]) -> SweepRow:
    """One row from several runs of the same pair: medians, every run kept; an error in
    any run makes the row an error (a pair that failed once is not safe to pick)."""
    first = runs[0]
    failed = next((r for r in runs if r.error), None)
    if failed is not None:
        return failed
    prompt = tuple(p for r in runs for p in (r.prompt_runs or (r.prompt_tps,)))
    gen = tuple(g for r in runs for g in (r.gen_runs or (r.gen_tps,)))
    rises = [r.gpu_rise_bytes for r in runs if r.gpu_rise_bytes]
    return SweepRow(
        first.n_batch,
        first.n_ubatch,
        first.kind,
        statistics.median(prompt),
        statistics.median(gen),
        statistics.median(r.ttft_s for r in runs),
        max(r.compute_bytes for r in runs),
        max(r.kv_bytes for r in runs),
        tuple(max(col) for col in zip(*rises, strict=True)) if rises else (),
        None,
        prompt,
        gen,
    )


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


def measured_choice(rows: Sequence[SweepRow], share: float = DEFAULT_SHARE) -> MeasuredChoice:
    """The measured policy, for the CLI and the window alike.

    Among pairs that keep `share` of the best generation speed, the fastest prompt wins;
    pairs whose runs overlap the winner's are as fast as far as the sweep can tell, and the
    one that needs the least memory is picked among them. When even that pick is not
    measurably faster than the seed rule's default pair (their runs overlap), there is no
    pick: the seed rule stays. Whether a pair fits the GPUs is the launch's question
    (core/launch/resolve.py steps down through `pairs`)."""
    ok = [r for r in rows if r.error is None and r.prompt_tps > 0]
    if not ok:
        return MeasuredChoice((), "no pair was measured")
    best_gen = max(r.gen_tps for r in ok)
    fast_enough = [r for r in ok if max(r.gen_runs, default=r.gen_tps) >= share * best_gen]
    if not fast_enough:
        return MeasuredChoice((), f"no pair keeps {share:.0%} of the best generation speed")
    best = max(fast_enough, key=lambda r: r.prompt_tps)
    tied = [r for r in fast_enough if r.prompt_high >= best.prompt_low]
    pick = min(tied, key=lambda r: (r.memory_bytes, r.n_ubatch, r.n_batch))
    seed = _seed_row(ok)
    if seed is not None and seed is not pick and pick.prompt_low <= seed.prompt_high:
        return MeasuredChoice((), _seed_stays(ok, seed, pick))
    rest = sorted((r for r in ok if r is not pick), key=lambda r: -r.prompt_tps)
    why = (
        f"n_batch {pick.n_batch}, n_ubatch {pick.n_ubatch}: best prompt speed "
        f"({pick.prompt_tps:.0f} t/s, median of {max(1, len(pick.prompt_runs))} runs)"
    )
    if pick is not best:
        why += f", as fast as {best.n_batch}:{best.n_ubatch} within the spread, less memory"
    why += f", generation ≥ {share:.0%} of the best"
    return MeasuredChoice(tuple((r.n_batch, r.n_ubatch) for r in (pick, *rest)), why)


def _seed_stays(ok: Sequence[SweepRow], seed: SweepRow, pick: SweepRow) -> str:
    """Why the seed rule stays; a pair called the fastest is the fastest measured."""
    fastest = max(ok, key=lambda r: r.prompt_tps)

    def text(r: SweepRow) -> str:
        return f"{r.n_batch}:{r.n_ubatch} ({r.prompt_tps:.0f} t/s)"

    if fastest is seed:
        return (
            f"no measurable difference: the seed rule's {text(seed)} is the fastest pair "
            "measured; KoboldCPP's rule stays"
        )
    if fastest.prompt_low <= seed.prompt_high:
        named = f"the fastest pair measured, {text(fastest)},"
    else:  # the fastest generates too slowly: the best that does not is the one compared
        named = f"the best pair that keeps the generation speed, {text(pick)},"
    return (
        f"no measurable difference: {named} is within the spread of the runs of the seed "
        f"rule's {text(seed)}; KoboldCPP's rule stays"
    )


def _seed_row(rows: Sequence[SweepRow]) -> SweepRow | None:
    """The seed rule's pair at the default BLAS size: what a user gets without measuring."""
    want = KoboldRule().pair(DEFAULT_BLAS)
    return next((r for r in rows if (r.n_batch, r.n_ubatch) == want), None)


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
    identity: dict[str, Any] = {
        "gpus": [g.name for g in inventory.gpus],
        "driver": inventory.driver_version,
        "llama_cpp_python": backend.llama_cpp_python,
        "backend": backend.name,
        "model": model_identity(launch.model_path),
        "n_ctx": launch.n_ctx_effective,
        "gpu_layers": launch.n_gpu_layers,
        "split": list(launch.tensor_split) if launch.tensor_split else None,
        "gpus_used": str(launch.config.gpus),
        "threads": launch.n_threads,
        "flash_attn": launch.config.flashattention,
        "kv_type": launch.config.kvtype,
    }
    if launch.rpc_servers:  # remote devices change every number (older keys stay valid)
        identity["machines"] = list(launch.rpc_servers)
    if launch.config.splitmode != "layer":  # likewise (core/benchmark/split_modes.py)
        identity["split_mode"] = launch.config.splitmode
    return identity


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
        return [_row_from_json(r) for r in data["rows"]]
    except (OSError, ValueError, TypeError, KeyError):
        return None  # missing, corrupt or from another version: measure again


def _row_from_json(data: dict[str, Any]) -> SweepRow:
    tuples = ("gpu_rise_bytes", "prompt_runs", "gen_runs")
    return SweepRow(**{**data, **{k: tuple(data.get(k, ())) for k in tuples}})


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
            "prompt_runs",
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
                " ".join(f"{p:.1f}" for p in r.prompt_runs),
                r.error or "",
            ]
        )
    return out.getvalue()
