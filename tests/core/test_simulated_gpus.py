"""KOBOLD_GUI_FAKE_GPUS, the simulated GPUs for demos and screenshots: sizes with or without
a unit, and a spec it cannot read named instead of a crash at start."""

from __future__ import annotations

import pytest

from kobold_gui.core.hardware.simulated import GiB, from_spec, inventory_for_environment


def test_sizes_read_with_or_without_a_unit() -> None:
    gpus = from_spec("RTX 4090:24,80GiB,:12GB").gpus
    assert [g.total for g in gpus] == [24 * GiB, 80 * GiB, 12 * GiB]
    assert [g.name for g in gpus] == ["RTX 4090", "Simulated GPU 1", "Simulated GPU 2"]


def test_an_unreadable_spec_is_named_and_the_real_gpus_stay(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ValueError, match="'RTX 4090:lots' is not NAME:GiB"):
        from_spec("RTX 4090:lots")
    monkeypatch.setenv("KOBOLD_GUI_FAKE_GPUS", "RTX 4090:lots")
    inventory = inventory_for_environment()
    assert "Simulated" not in (inventory.snapshot().message or "")
    assert "'RTX 4090:lots' is not NAME:GiB" in caplog.text
    assert "the real GPUs are used instead" in caplog.text
