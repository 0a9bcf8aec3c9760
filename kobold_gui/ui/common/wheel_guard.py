"""The mouse wheel changes a setting only when its control has the focus: scrolling a panel
must not change a setting on its way (Context 4096 -> 3584, the BLAS slider 256 -> 16).

One filter on the whole application (install_wheel_guard) covers every spin box, combo box
and slider, whenever and wherever it is made (a labeled slider's inner QSlider, a dialog's
spin box, a control added later): guarding widgets one by one let the BLAS slider escape.
Scroll bars keep the wheel, and a wheel turn over a guarded control scrolls the panel."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import (
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QScrollBar,
    QWidget,
)

WHEEL_SENSITIVE = (QAbstractSpinBox, QComboBox, QAbstractSlider)


def wheel_sensitive(widget: QObject) -> bool:
    """A control whose value the wheel changes (a scroll bar only scrolls)."""
    return isinstance(widget, WHEEL_SENSITIVE) and not isinstance(widget, QScrollBar)


class _WheelGuard(QObject):
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind == QEvent.Type.Polish and wheel_sensitive(watched):
            # Qt gives a WheelFocus control the focus on a wheel turn before any filter
            # sees the event: such a control must take the focus by click or Tab only.
            assert isinstance(watched, QWidget)
            if watched.focusPolicy() == Qt.FocusPolicy.WheelFocus:
                watched.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        elif kind == QEvent.Type.Wheel and wheel_sensitive(watched):
            assert isinstance(watched, QWidget)
            if not watched.hasFocus():
                event.ignore()  # passed on to the parent: the panel scrolls
                return True
        return False


_WHEEL_GUARD = _WheelGuard()


def install_wheel_guard() -> None:
    """Guard every wheel-sensitive control of the application (idempotent)."""
    app = QApplication.instance()
    if app is not None:
        app.removeEventFilter(_WHEEL_GUARD)
        app.installEventFilter(_WHEEL_GUARD)


def guard_wheel(widget: QWidget) -> None:
    """Guard one control now (install_wheel_guard covers those made later)."""
    if widget.focusPolicy() == Qt.FocusPolicy.WheelFocus:
        widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    widget.installEventFilter(_WHEEL_GUARD)
    install_wheel_guard()
