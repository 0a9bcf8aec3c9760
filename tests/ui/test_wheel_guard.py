"""The mouse wheel changes no setting whose control lacks the focus: every spin box, combo box
and slider of the window (found by walking its widgets, so a new control cannot escape) gets
a real wheel turn without the focus and keeps its value; with the focus the wheel works."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractSlider,
    QAbstractSpinBox,
    QComboBox,
    QScrollBar,
    QWidget,
)
from pytestqt.qtbot import QtBot

from kobold_gui.core.launch.batching import BLAS_STOPS
from kobold_gui.ui.window.main_window import MainWindow
from tests.conftest import HANG_GUARD_MS
from tests.ui.test_first_ten_minutes import wheel


def wheel_sensitive(widget: QWidget) -> bool:
    """Whatever Qt lets the wheel change (a scroll bar only scrolls)."""
    kinds = (QAbstractSpinBox, QComboBox, QAbstractSlider)
    return isinstance(widget, kinds) and not isinstance(widget, QScrollBar)


def value(widget: QWidget) -> object:
    if isinstance(widget, QComboBox):
        return widget.currentIndex()
    if isinstance(widget, QAbstractSlider):
        return widget.value()
    assert isinstance(widget, QAbstractSpinBox)
    return widget.text()


def test_no_control_of_the_window_turns_under_the_wheel_without_focus(
    qtbot: QtBot, default_model: Path
) -> None:
    window = MainWindow(initial_model=default_model)
    qtbot.addWidget(window)
    window.resize(1366, 728)
    window.show()
    qtbot.waitUntil(window.load_button.isEnabled, timeout=HANG_GUARD_MS)
    window.launch.batch.set_blas(256)
    window.activateWindow()
    window.chat.input.setFocus()

    controls = [w for w in window.findChildren(QWidget) if wheel_sensitive(w)]
    assert window.launch.batch.slider in controls  # the one the user saw move
    assert len(controls) >= 10
    config = window.launch_config()
    moved = []
    for control in controls:
        before = value(control)
        for steps in (-3, 3):
            wheel(control, steps)
            if value(control) != before:
                moved.append((type(control).__name__, control.objectName(), before))
    assert moved == []
    # A wheel turn must not give a control the focus (Qt does so for WheelFocus).
    assert [c for c in controls if c.focusPolicy() == Qt.FocusPolicy.WheelFocus] == []
    assert window.launch_config() == config
    assert window.launch.batch.blas() == 256

    # With the focus, the wheel still moves the slider (the user chose it).
    window.launch.batch.slider.setFocus()
    qtbot.waitUntil(window.launch.batch.slider.hasFocus, timeout=HANG_GUARD_MS)
    wheel(window.launch.batch.slider, 1)
    assert window.launch.batch.blas() == BLAS_STOPS[BLAS_STOPS.index(256) + 1]
