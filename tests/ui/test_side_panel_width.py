"""The left tabs at a laptop's size: a tab that scrolls up and down is never narrower than
what it holds (its horizontal bar is off, so the overflow was cut off on the right, and a
focused field scrolled the left edge out of view)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QApplication, QScrollArea
from pytestqt.qtbot import QtBot

from kobold_gui.ui.window.main_window import MainWindow
from tests.conftest import HANG_GUARD_MS


def test_the_model_tab_shows_its_settings_whole_at_1366x768(
    qtbot: QtBot, default_model: Path
) -> None:
    window = MainWindow(initial_model=default_model)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(window.load_button.isEnabled, timeout=HANG_GUARD_MS)
    window.resize(1366, 728)
    QApplication.processEvents()
    assert window.width() <= 1366 and window.height() <= 728
    model_tab = next(a for a in window.findChildren(QScrollArea) if a.isAncestorOf(window.launch))
    assert model_tab.isVisible()
    inner = model_tab.widget()
    assert inner.width() <= model_tab.viewport().width(), (inner.width(), model_tab.viewport())
    assert model_tab.horizontalScrollBar().maximum() == 0
    # Typing in a field far down (Parallel requests) must not shift the form sideways.
    field = window.launch.widgets["parallel"]
    field.setFocus()
    model_tab.ensureWidgetVisible(field)
    QApplication.processEvents()
    assert model_tab.horizontalScrollBar().value() == 0
