"""Split modes measured side by side (`--benchmark --splitmodes layer,tensor`): the model is
loaded once per mode, the same pairs swept on each, and the best of each mode kept per
machine, model and settings (the split mode, its layers and shares left out), so that the
window can say which mode this machine measured faster for this model.

Tensor split is chosen for the speed of one reply's generation (layers no longer run one
GPU after another); it counts as faster only when all its generation runs beat all of the
layer split's (the runs' spread, as the measured policy judges pairs)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kobold_gui.core.benchmark.results import SweepRow, sweep_key
from kobold_gui.core.paths import cache_dir, write_json_atomic

SPLIT_MODE_KEYS = ("split_mode", "gpu_layers", "split")  # what differs between the modes


@dataclass(frozen=True)
class SplitResult:
    """A split mode's best measured pair (by generation speed) on this machine."""

    mode: str
    n_batch: int
    n_ubatch: int
    gen_tps: float
    prompt_tps: float
    ttft_s: float
    gen_runs: tuple[float, ...] = ()

    @property
    def gen_low(self) -> float:
        return min(self.gen_runs, default=self.gen_tps)

    @property
    def gen_high(self) -> float:
        return max(self.gen_runs, default=self.gen_tps)


@dataclass(frozen=True)
class SplitComparison:
    results: tuple[SplitResult, ...]

    def result(self, mode: str) -> SplitResult | None:
        return next((r for r in self.results if r.mode == mode), None)

    def faster(self) -> SplitResult | None:
        """Tensor split, when it measured faster than the layer split beyond the spread."""
        layer, tensor = self.result("layer"), self.result("tensor")
        if layer is None or tensor is None or tensor.gen_low <= layer.gen_high:
            return None
        return tensor

    def text(self) -> str:
        """Both modes' numbers, for the window and the CLI."""
        parts = [
            f"{r.mode} {r.gen_tps:.0f} t/s generation, {r.prompt_tps:.0f} t/s prompt "
            f"({r.n_batch}:{r.n_ubatch})"
            for r in self.results
        ]
        return "; ".join(parts)


def best_result(mode: str, rows: Sequence[SweepRow]) -> SplitResult | None:
    ok = [r for r in rows if r.error is None and r.gen_tps > 0]
    if not ok:
        return None
    best = max(ok, key=lambda r: (r.gen_tps, r.prompt_tps))
    return SplitResult(
        mode,
        best.n_batch,
        best.n_ubatch,
        best.gen_tps,
        best.prompt_tps,
        best.ttft_s,
        best.gen_runs,
    )


def base_identity(identity: dict[str, Any]) -> dict[str, Any]:
    """A sweep's identity without what the split mode changes: the modes' common key."""
    return {k: v for k, v in identity.items() if k not in SPLIT_MODE_KEYS}


def save_comparison(
    identity: dict[str, Any], results: Sequence[SplitResult], folder: Path | None = None
) -> Path:
    """Merged into what was kept for these settings: a mode measured alone later replaces
    only its own result."""
    base = base_identity(identity)
    folder = folder or cache_dir() / "split_modes"
    kept = load_comparison(base, folder)
    by_mode = {r.mode: r for r in (kept.results if kept else ())}
    by_mode.update({r.mode: r for r in results})
    path = folder / f"{sweep_key(base)}.json"
    data = {"version": 1, "identity": base, "results": [asdict(r) for r in by_mode.values()]}
    write_json_atomic(path, data)
    return path


def load_comparison(identity: dict[str, Any], folder: Path | None = None) -> SplitComparison | None:
    base = base_identity(identity)
    path = (folder or cache_dir() / "split_modes") / f"{sweep_key(base)}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("identity") != base:
            return None
        results = tuple(
            SplitResult(**{**r, "gen_runs": tuple(r.get("gen_runs", ()))}) for r in data["results"]
        )
    except (OSError, ValueError, TypeError, KeyError):
        return None  # missing, corrupt or from another version
    return SplitComparison(results) if results else None
