from __future__ import annotations

import pytest

from kobold_gui.core.launch.batching import (
    BLAS_STOPS,
    DEFAULT_BLAS,
    effective_batch,
    get_policy,
    stop_at_or_below,
)


def test_stops_and_default_are_koboldcpps() -> None:
    assert BLAS_STOPS == (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
    assert DEFAULT_BLAS == 512


@pytest.mark.parametrize(
    ("blas", "ubatch"),
    [
        (16, 16),
        (32, 32),
        (64, 64),
        (128, 128),
        (256, 256),
        (512, 512),
        (1024, 1024),
        (2048, 1024),
        (4096, 1024),
    ],
)
def test_kobold_rule_on_every_stop(blas: int, ubatch: int) -> None:
    plan = effective_batch(blas, n_ctx=1 << 20)
    assert (plan.n_batch, plan.n_ubatch) == (blas, ubatch)


@pytest.mark.parametrize(
    ("blas", "ubatch"), [(1, 1), (100, 100), (1000, 1000), (1023, 1023), (1025, 1024), (3000, 1024)]
)
def test_kobold_rule_between_stops(blas: int, ubatch: int) -> None:
    plan = effective_batch(blas, n_ctx=1 << 20)
    assert (plan.n_batch, plan.n_ubatch) == (blas, ubatch)


def test_label_says_when_ubatch_is_capped() -> None:
    plan = effective_batch(2048, n_ctx=8192)
    assert plan.label() == "BLAS 2048 → n_batch 2048, n_ubatch 1024 (capped at 1024)"
    assert effective_batch(1024, n_ctx=8192).label() == "BLAS 1024 → n_batch 1024, n_ubatch 1024"


def test_context_smaller_than_batch_clamps_both_and_says_why() -> None:
    plan = effective_batch(2048, n_ctx=1024)
    assert (plan.n_batch, plan.n_ubatch) == (1024, 1024)
    assert "n_batch limited to the context size 1024" in plan.label()


def test_ubatch_follows_a_clamped_batch() -> None:
    plan = effective_batch(512, n_ctx=300)
    assert (plan.n_batch, plan.n_ubatch) == (300, 300)
    assert "n_ubatch limited to n_batch" in plan.reasons


def test_tied_policy_sets_ubatch_to_batch() -> None:
    plan = effective_batch(4096, n_ctx=8192, policy="tied")
    assert (plan.n_batch, plan.n_ubatch, plan.reasons) == (4096, 4096, ())


def test_unknown_policy_and_bad_values_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown batch policy"):
        get_policy("fastest")
    with pytest.raises(ValueError):
        effective_batch(0, 4096)
    with pytest.raises(ValueError):
        effective_batch(512, 0)


@pytest.mark.parametrize(
    ("value", "stop"),
    [(1, 16), (16, 16), (24, 16), (25, 16), (31, 16), (300, 256), (700, 512), (1023, 512),
     (1024, 1024), (5000, 4096)],
)  # fmt: skip
def test_a_value_between_stops_goes_to_the_stop_below(value: int, stop: int) -> None:
    """Never a larger batch (more compute memory) than the value asked for."""
    assert stop_at_or_below(value) == stop
