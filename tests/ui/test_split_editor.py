"""The memory-plan view: bars per GPU, red when over budget, shares that change the plan."""

from __future__ import annotations

from pathlib import Path

from pytestqt.qtbot import QtBot

from kobold_gui.core.launch.options import LaunchConfig
from kobold_gui.core.launch.resolve import resolve_launch
from kobold_gui.core.launch.state import LaunchState
from kobold_gui.core.models.gguf_info import read_gguf
from kobold_gui.core.plan.memory_plan import GiB, GpuBudget
from kobold_gui.ui.launch.plan_view import SplitEditor
from tests.conftest import HANG_GUARD_MS


def plan_for(model: Path, gpus: list[GpuBudget], **options: object) -> object:
    info = read_gguf(model)
    config = LaunchConfig().with_values(**options)
    return resolve_launch(config, info.path, info, False, None, gpus).plan


def test_bars_follow_the_plan_and_turn_red_over_budget(qtbot: QtBot, default_model: Path) -> None:
    editor = SplitEditor()
    qtbot.addWidget(editor)
    gpus = [GpuBudget("big", 24 * GiB, 20 * GiB), GpuBudget("small", 2 * GiB, 1 * GiB)]
    editor.set_plan(
        plan_for(default_model, gpus, gpulayers=99, tensor_split="1,1", contextsize=65536)
    )
    assert "OVER BUDGET" in editor.labels[1].text() and "OVER BUDGET" not in editor.labels[0].text()
    assert editor.bars[1].device is not None and not editor.bars[1].device.fits
    assert "needs" in editor.warnings.text() and "small" in editor.warnings.text()
    editor.set_plan(plan_for(default_model, gpus, gpulayers=-1, contextsize=65536))
    assert "OVER BUDGET" not in editor.labels[1].text() and not editor.warnings.text()


def test_editing_shares_asks_for_a_new_split(qtbot: QtBot, default_model: Path) -> None:
    editor = SplitEditor()
    qtbot.addWidget(editor)
    editor.show()
    gpus = [GpuBudget("a", 24 * GiB, 24 * GiB), GpuBudget("b", 24 * GiB, 24 * GiB)]
    editor.set_plan(plan_for(default_model, gpus))
    assert not editor.shares[0].isEnabled()  # automatic split
    with qtbot.waitSignal(editor.splitChanged) as sig:
        editor.auto_split.setChecked(False)
    assert sig.args[0] == (50.0, 50.0)
    with qtbot.waitSignal(editor.splitChanged) as sig:
        editor.shares[0].setValue(75)
    assert sig.args[0] == (75.0, 50.0)
    with qtbot.waitSignal(editor.splitChanged) as sig:
        editor.auto_split.setChecked(True)
    assert sig.args[0] == ()


def test_the_editor_follows_the_launch_state(qtbot: QtBot, default_model: Path) -> None:
    """The plan redraws on each change; a split set elsewhere (a model's saved settings)
    shows; shares typed here go into the launch and stay as typed."""
    state = LaunchState()
    editor = SplitEditor(state)
    qtbot.addWidget(editor)
    editor.show()
    what_if = (GpuBudget("a", 24 * GiB, 24 * GiB), GpuBudget("b", 24 * GiB, 24 * GiB))
    state.set_backend(False, None, what_if)
    info = read_gguf(default_model)
    state.set_model(info.path, info)
    assert editor.plan is not None and editor.summary.text().startswith("What-if")
    state.set_config(LaunchConfig().with_values(tensor_split="3,1"))
    assert not editor.auto_split.isChecked()
    assert [b.value() for b in editor.shares] == [75.0, 25.0]
    editor.shares[0].setValue(60)
    assert state.config.tensor_split == (60.0, 25.0)
    assert [b.value() for b in editor.shares] == [60.0, 25.0]  # not made 70.6 / 29.4
    state.edit(tensor_split=())  # the machines changed: automatic again
    assert editor.auto_split.isChecked() and not editor.shares[0].isEnabled()


def test_window_shows_the_cpu_plan_and_updates_it_live(qtbot: QtBot, tiny_model: Path) -> None:
    from kobold_gui.ui.window.main_window import MainWindow

    window = MainWindow(initial_model=tiny_model)
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.load_button.isEnabled(), timeout=HANG_GUARD_MS)
    before = window.split_editor.summary.text()
    assert "No GPU: everything in RAM" in before
    window.launch.context.setValue(32768)
    assert window.split_editor.summary.text() != before  # more KV cache for more context
    window.close()


def test_a_machine_without_gpus_plans_for_gpus_it_does_not_have(
    qtbot: QtBot, default_model: Path
) -> None:
    """No NVIDIA driver: the GPUs tab offers "Plan for GPUs I don't have…"; two simulated
    24 GiB GPUs give a per-GPU plan in the split editor, said to be simulated on the tab;
    "Back" returns to this machine (no GPU, everything in RAM)."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QDialog

    from kobold_gui.core.hardware.nvml import GpuInventory
    from kobold_gui.ui.hardware.what_if import WhatIfDialog
    from kobold_gui.ui.window.main_window import MainWindow
    from tests.fakes.nvml import FakeNvml

    no_driver = GpuInventory(FakeNvml([], driver_present=False))  # FAKE NVML: no GPU here
    window = MainWindow(initial_model=default_model, inventory=no_driver)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(window.load_button.isEnabled, timeout=HANG_GUARD_MS)
    editor, gpus = window.split_editor, window.gpus
    titles = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    window.tabs.setCurrentIndex(next(i for i, t in enumerate(titles) if "GPU" in t))
    qtbot.waitUntil(
        lambda: "No GPU: everything in RAM" in editor.summary.text(), timeout=HANG_GUARD_MS
    )
    assert gpus.what_if_button.isVisible() and "don't have" in gpus.what_if_button.text()

    qtbot.mouseClick(gpus.what_if_button, Qt.MouseButton.LeftButton)
    dialog = window.findChild(WhatIfDialog)
    assert isinstance(dialog, QDialog) and dialog.isVisible()
    dialog.count.setValue(2)
    dialog.vram.setValue(24)
    dialog.accept()
    qtbot.waitUntil(lambda: len(editor.rows) == 2, timeout=HANG_GUARD_MS)
    assert gpus.header.text().startswith("2 simulated GPU(s)\nSimulated GPUs")
    assert "not real" in gpus.header.text() and "driver" not in gpus.header.text()
    assert not gpus.build_note.isVisibleTo(gpus)  # no "build the CUDA backend" for these
    assert sorted(gpus.cards) == [0, 1]
    assert "Simulated 24 GiB GPU" in gpus.cards[0].use.text()
    assert "everything in RAM" not in editor.summary.text()
    assert gpus.what_if_button.text() == "Back to this machine's GPUs"

    qtbot.mouseClick(gpus.what_if_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: "No GPU: everything in RAM" in editor.summary.text(), timeout=HANG_GUARD_MS
    )
    assert gpus.cards == {} and "Simulated" not in gpus.header.text()
    window.close()
