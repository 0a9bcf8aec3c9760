"""The batch-size sweep: the measured policy as a pure function on recorded tables, a real
sweep of two candidates on the CPU, cancel, and kept results."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from kobold_gui.core.engine import Engine
from kobold_gui.core.launch import resolve_launch
from kobold_gui.core.options import LaunchConfig
from kobold_gui.core.sweep import (
    Candidate,
    SweepError,
    SweepRow,
    candidates_from,
    choose_pair,
    load_sweep,
    rows_to_csv,
    run_sweep,
    save_sweep,
)

MiB = 1 << 20


def row(
    nb: int, nu: int, prompt: float, gen: float, mem_mib: int, error: str | None = None
) -> SweepRow:
    return SweepRow(nb, nu, "pair", prompt, gen, 0.1, mem_mib * MiB, 0, (), error)


# An H100-like table: bigger ubatches are a little faster for prompts and cost memory.
TABLE = [
    row(512, 512, 10900, 272, 290),
    row(2048, 1024, 11500, 277, 581),
    row(2048, 2048, 11850, 276, 1162),
    row(4096, 4096, 11080, 271, 2324),
]


def test_best_prompt_speed_wins_when_everything_fits() -> None:
    pick, why = choose_pair(TABLE)
    assert (pick.n_batch, pick.n_ubatch) == (2048, 2048) and "best prompt speed" in why


def test_the_budget_excludes_pairs_that_need_too_much_memory() -> None:
    pick, _ = choose_pair(TABLE, budget_bytes=600 * MiB)
    assert (pick.n_batch, pick.n_ubatch) == (2048, 1024)


def test_generation_share_excludes_pairs_that_slow_generation() -> None:
    slow_gen = [*TABLE, row(8192, 8192, 20000, 100, 100)]
    pick, _ = choose_pair(slow_gen, share=0.9)
    assert pick.n_batch != 8192  # fastest prompt, but 100 < 0.9 x 277 tokens/s
    pick, _ = choose_pair(slow_gen, share=0.3)
    assert pick.n_batch == 8192


def test_ties_go_to_less_memory_and_failures_are_skipped() -> None:
    tied = [
        row(1024, 1024, 5000, 200, 500),
        row(2048, 1024, 5000, 200, 400),
        row(4096, 4096, 0, 0, 0, error="out of memory"),
    ]
    pick, _ = choose_pair(tied)
    assert (pick.n_batch, pick.n_ubatch) == (2048, 1024)


def test_nothing_fits_says_so() -> None:
    pick, why = choose_pair(TABLE, budget_bytes=100 * MiB)
    assert pick is None and "fits the memory budget" in why
    assert choose_pair([])[0] is None


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
    engine = Engine()
    engine.load(resolve_launch(LaunchConfig(contextsize=1024), default_model, None, False))
    rows = run_sweep(engine, candidates_from(pairs=[(128, 64), (512, 512)]), 256, 8)
    assert len(rows) == 2 and all(r.error is None for r in rows)
    assert all(r.prompt_tps > 0 and r.gen_tps > 0 and r.ttft_s > 0 for r in rows)
    assert rows[1].compute_bytes > rows[0].compute_bytes  # memory grows with n_ubatch
    cancel = threading.Event()
    cancel.set()
    assert run_sweep(engine, candidates_from([128]), 256, 8, cancel=cancel) == []
    from kobold_gui.core.chat_format import Message
    from kobold_gui.core.engine_types import SamplingParams

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
