"""The split mode in the launch settings: tensor split offered, its refusal shown beside it
with llama.cpp's reason (settings kept), flash attention said to be on, and a measured
comparison offering tensor split in one click; the split editor's words for it."""

from __future__ import annotations

from pathlib import Path

from pytestqt.qtbot import QtBot

from kobold_gui.core.benchmark.split_modes import SplitComparison, SplitResult
from kobold_gui.core.launch.state import LaunchState
from kobold_gui.core.models.gguf_info import read_gguf
from kobold_gui.core.plan.memory_plan import GiB, GpuBudget
from kobold_gui.ui.launch.launch_panel import LaunchPanel
from kobold_gui.ui.launch.plan_view import SplitEditor

GPU = GpuBudget("what-if 24 GiB", 24 * GiB, 24 * GiB)


def panel_with(qtbot: QtBot, model: Path, gpus: tuple[GpuBudget, ...]) -> LaunchPanel:
    state = LaunchState()
    panel = LaunchPanel(state)
    qtbot.addWidget(panel)
    panel.show()
    state.set_model(model, read_gguf(model))
    state.set_backend(True, None, gpus)
    return panel


def choose(panel: LaunchPanel, combo_name: str, value: str) -> None:
    combo = panel.widgets[combo_name]
    combo.setCurrentIndex(combo.findData(value))  # type: ignore[attr-defined]


def test_tensor_split_is_offered_and_turns_flash_attention_on(
    qtbot: QtBot, default_model: Path
) -> None:
    panel = panel_with(qtbot, default_model, (GPU, GPU))
    texts = [panel.splitmode.itemText(i) for i in range(panel.splitmode.count())]
    assert "by tensor (GPUs at once)" in texts and panel.splitmode.currentData() == "layer"
    assert not panel.split_note.isVisible()  # layer: nothing to say
    choose(panel, "splitmode", "tensor")
    assert panel.state.resolved is not None and panel.state.resolved.split_mode == 3
    assert "flash attention will be on" in panel.split_note.label.text()
    editor = SplitEditor(panel.state)
    qtbot.addWidget(editor)
    editor.set_plan(panel.state.resolved.plan)
    assert "a slice of each of 30 layers + output" in editor.labels[1].text()
    assert editor.auto_split.text() == "Automatic split (even)"


def test_refusals_show_beside_the_split_mode_and_keep_the_settings(
    qtbot: QtBot, default_model: Path
) -> None:
    panel = panel_with(qtbot, default_model, (GPU,))
    choose(panel, "splitmode", "tensor")
    note = panel.split_note.label.text()
    assert panel.split_note.isVisible() and "needs two or more devices" in note
    assert "this app refuses it" in note and panel.state.resolved is None
    assert panel.splitmode.currentData() == "tensor"  # the choice stays, the reason shows
    assert panel.gpu_layers_note.text() == ""  # said once, beside the split mode
    panel.state.set_backend(True, None, (GPU, GPU))
    choose(panel, "flashattention", "off")
    assert "SPLIT_MODE_TENSOR requires flash_attn" in panel.split_note.label.text()
    choose(panel, "flashattention", "auto")
    assert panel.state.resolved is not None and panel.state.error is None


def test_measured_faster_tensor_split_is_one_click_away(qtbot: QtBot, default_model: Path) -> None:
    panel = panel_with(qtbot, default_model, (GPU, GPU))
    layer = SplitResult("layer", 2048, 512, 260.0, 9000.0, 0.2, (255.0, 260.0, 262.0))
    tensor = SplitResult("tensor", 2048, 512, 410.0, 8000.0, 0.25, (405.0, 410.0, 415.0))
    panel.split_note.set_comparison(SplitComparison((layer, tensor)))
    assert panel.split_note.use_tensor.isVisible()
    assert "tensor 410 t/s generation" in panel.split_note.label.text()
    panel.split_note.use_tensor.click()
    assert panel.state.config.splitmode == "tensor" and not panel.split_note.use_tensor.isVisible()
    close = SplitResult("tensor", 2048, 512, 262.0, 8000.0, 0.25, (250.0, 262.0, 270.0))
    choose(panel, "splitmode", "layer")
    panel.split_note.set_comparison(SplitComparison((layer, close)))  # within the spread
    assert not panel.split_note.use_tensor.isVisible()
