"""Spin boxes and combo boxes in a scrolling panel ignore the mouse wheel unless they have
the focus: scrolling the panel must not change a setting on its way (Context 4096 -> 3584)."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QWidget


class _WheelGuard(QObject):
    """Spin boxes and combo boxes in a scrolling panel ignore the mouse wheel unless they
    have the focus: scrolling the panel must not change a setting on its way."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        wheel = event.type() == QEvent.Type.Wheel
        if wheel and isinstance(watched, QWidget) and not watched.hasFocus():
            event.ignore()
            return True
        return False


_WHEEL_GUARD = _WheelGuard()


def guard_wheel(widget: QWidget) -> None:
    widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    widget.installEventFilter(_WHEEL_GUARD)
