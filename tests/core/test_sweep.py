"""The batch-size sweep: the measured policy as a pure function on recorded tables, a real
sweep of two candidates on the CPU, cancel, and kept results."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from kobold_gui.core.benchmark.estimate import default_sweep, duration_text, sweep_seconds
from kobold_gui.core.benchmark.results import (
    Candidate,
    SweepError,
    SweepRow,
    candidates_from,
    load_sweep,
    measured_choice,
    merge_runs,
    rows_to_csv,
    save_sweep,
)
from kobold_gui.core.benchmark.sweep import run_sweep
from kobold_gui.core.engine.local import LocalEngine
from kobold_gui.core.launch.options import LaunchConfig
from kobold_gui.core.launch.resolve import resolve_launch

MiB = 1 << 20


def row(
    nb: int,
    nu: int,
    prompt: float | tuple[float, ...],
    gen: float,
    mem_mib: int,
    error: str | None = None,
) -> SweepRow:
    runs = prompt if isinstance(prompt, tuple) else (prompt,)
    median = sorted(runs)[len(runs) // 2]
    kind = "koboldcpp" if (nb, nu) == (512, 512) else "pair"
    return SweepRow(nb, nu, kind, median, gen, 0.1, mem_mib * MiB, 0, (), error, runs, (gen,))


# An H100-like table: bigger ubatches are a little faster for prompts and cost memory.
TABLE = [
    row(512, 512, 10900, 272, 290),
    row(2048, 1024, 11500, 277, 581),
    row(2048, 2048, 11850, 276, 1162),
    row(4096, 4096, 11080, 271, 2324),
]


def test_best_prompt_speed_wins_and_the_rest_follow_fastest_first() -> None:
    choice = measured_choice(TABLE)
    assert choice.pick == (2048, 2048) and "best prompt speed" in choice.why
    assert choice.pairs == ((2048, 2048), (2048, 1024), (4096, 4096), (512, 512))


def test_generation_share_excludes_pairs_that_slow_generation() -> None:
    slow_gen = [*TABLE, row(8192, 8192, 20000, 100, 100)]
    assert measured_choice(slow_gen, share=0.9).pick != (8192, 8192)  # 100 < 0.9 x 277
    assert measured_choice(slow_gen, share=0.3).pick == (8192, 8192)


def test_pairs_within_the_spread_of_the_fastest_go_to_less_memory() -> None:
    noisy = [
        row(512, 512, (100, 101, 99), 20, 100),
        row(1024, 1024, (130, 150, 140), 20, 300),
        row(2048, 1024, (145, 125, 135), 20, 400),  # overlaps 1024:1024's runs
        row(4096, 4096, (0,), 0, 0, error="out of memory"),
    ]
    assert measured_choice(noisy).pick == (1024, 1024)
    noisy[1], noisy[2] = row(1024, 1024, (130, 150, 140), 20, 500), noisy[2]
    assert measured_choice(noisy).pick == (2048, 1024)  # now the one with less memory


def test_no_measurable_difference_keeps_the_seed_rule() -> None:
    """A busy CPU: every pair's runs overlap the seed rule's; no pick, and it says so."""
    flat = [
        row(512, 512, (80, 60, 84), 20, 100),
        row(128, 128, (58, 76, 70), 21, 50),
        row(4096, 4096, (83, 62, 79), 6, 900),
    ]
    choice = measured_choice(flat)
    assert choice.pick is None and "no measurable difference" in choice.why


def test_the_pair_called_fastest_is_the_fastest_measured() -> None:
    """The CLI said "the fastest pair (128:128, 154 t/s)" beside the seed rule's 512:512 at
    155 t/s: the pair it calls fastest must be the fastest measured."""
    seen = [
        row(128, 128, (150, 154, 158), 20, 50),
        row(512, 512, (151, 155, 159), 20, 100),
        row(1024, 1024, (149, 153, 157), 20, 200),
    ]
    why = measured_choice(seen).why
    assert "the seed rule's 512:512 (155 t/s) is the fastest pair measured" in why
    assert "128:128 (154 t/s)" not in why
    seen[2] = row(1024, 1024, (152, 156, 160), 20, 200)  # now 1024:1024 is the fastest
    why = measured_choice(seen).why
    assert "the fastest pair measured, 1024:1024 (156 t/s), is within the spread" in why
    for r in seen:  # whichever pair it names as fastest has the top prompt speed
        if f"fastest pair measured, {r.n_batch}:{r.n_ubatch}" in why:
            assert r.prompt_tps == max(x.prompt_tps for x in seen)


def test_the_sweep_is_estimated_and_smaller_on_a_cpu() -> None:
    cpu, gpu = default_sweep(on_cpu=True), default_sweep(on_cpu=False)
    cpu_pairs = candidates_from(cpu.blas_sizes)
    gpu_pairs = candidates_from(gpu.blas_sizes)
    assert len(cpu_pairs) < len(gpu_pairs) and cpu.prompt_tokens < gpu.prompt_tokens
    assert max(c.n_batch for c in cpu_pairs) <= cpu.prompt_tokens  # the prompt fills it
    # 2048 tokens at 150 t/s, 64 steps at 20 t/s: about 17.3 s a run (+0.1 for a context)
    seconds = sweep_seconds(gpu_pairs, 3, 2048, 64, 150.0, 20.0)
    assert seconds == pytest.approx(len(gpu_pairs) * 3 * (2048 / 150 + 64 / 20 + 0.1))
    assert duration_text(seconds) == f"about {round(seconds / 60)} min"
    assert sweep_seconds(cpu_pairs, 3, 1024, 64, 150.0, 20.0) < seconds / 3
    assert duration_text(42) == "about 40 s" and duration_text(4000) == "about 1 h 7 min"


def test_nothing_measured_says_so() -> None:
    assert measured_choice([]).pick is None
    assert "no pair was measured" in measured_choice([]).why


def test_runs_merge_into_medians_and_an_error_wins() -> None:
    a = row(512, 512, 90, 20, 100)
    b = row(512, 512, 110, 22, 100)
    c = row(512, 512, 100, 21, 100)
    merged = merge_runs([a, b, c])
    assert merged.prompt_tps == 100 and merged.prompt_runs == (90, 110, 100)
    assert merged.spread == pytest.approx(0.2)
    failed = row(512, 512, 0, 0, 0, error="out of memory")
    assert merge_runs([a, failed]).error == "out of memory"


def test_candidates_follow_the_rule_and_the_tied_scheme() -> None:
    pairs = [(c.n_batch, c.n_ubatch, c.kind) for c in candidates_from([512, 2048])]
    assert pairs == [(512, 512, "koboldcpp"), (2048, 1024, "koboldcpp"), (2048, 2048, "tied")]
    default = candidates_from()
    assert default[0] == Candidate(128, 128, "koboldcpp") and len(default) == 8
    assert (2048, 512) in [(c.n_batch, c.n_ubatch) for c in candidates_from(n_gpus=2)]


@pytest.mark.parametrize(
    ("sizes", "pairs", "words"), [([0], [], "at least 1"), ([], [(512, 1024)], "above its n_batch")]
)
def test_bad_candidates(sizes: list[int], pairs: list[tuple[int, int]], words: str) -> None:
    with pytest.raises(SweepError, match=words):
        candidates_from(sizes, pairs)


def test_real_sweep_of_two_candidates_then_cancel(default_model: Path) -> None:
    engine = LocalEngine()
    engine.load(resolve_launch(LaunchConfig(contextsize=1024), default_model, None, False))
    runs: list[SweepRow] = []
    estimates: list[tuple[float, int]] = []  # the estimate, and how many runs came before it
    started = time.monotonic()
    rows = run_sweep(
        engine,
        candidates_from(pairs=[(128, 64), (512, 512)]),
        256,
        8,
        lambda _i, run: runs.append(run),
        repeats=2,
        on_estimate=lambda s: estimates.append((s, len(runs))),
    )
    took = time.monotonic() - started
    assert len(rows) == 2 and all(r.error is None for r in rows)
    # Estimated once, before the first measured run, from the warm-up's speeds: the right
    # order of magnitude (a loaded 2-core machine: generous bounds, no timing goal).
    assert len(estimates) == 1 and estimates[0][1] == 0
    assert took / 20 < estimates[0][0] < took * 20, (estimates, took)
    # Interleaved: every pair once, then every pair again.
    assert [(r.n_batch, r.n_ubatch) for r in runs] == [(128, 64), (512, 512)] * 2
    assert all(len(r.prompt_runs) == 2 for r in rows)
    assert all(r.prompt_tps > 0 and r.gen_tps > 0 and r.ttft_s > 0 for r in rows)
    assert rows[1].compute_bytes > rows[0].compute_bytes  # memory grows with n_ubatch
    cancel = threading.Event()
    cancel.set()
    assert run_sweep(engine, candidates_from([128]), 256, 8, cancel=cancel) == []
    from kobold_gui.core.engine.prompt_template import Message
    from kobold_gui.core.engine.types import SamplingParams

    after = engine.chat([Message("user", "Hi")], SamplingParams(max_tokens=4), lambda _t: None)
    assert after.generated_tokens > 0  # the loaded model stays usable
    engine.close()


def test_results_are_kept_and_found_again(tmp_path: Path) -> None:
    identity = {"gpus": ["X"], "model": {"path": "/m.gguf", "size": 1}, "n_ctx": 4096}
    path = save_sweep(identity, TABLE, tmp_path)
    assert load_sweep(identity, tmp_path) == TABLE
    assert load_sweep({**identity, "n_ctx": 8192}, tmp_path) is None  # another setting
    path.write_text("{broken")
    assert load_sweep(identity, tmp_path) is None
    csv_text = rows_to_csv(TABLE)
    assert csv_text.splitlines()[0].startswith("n_batch,n_ubatch,kind,prompt_tps")
    assert "2048,2048,pair,11850.0" in csv_text
