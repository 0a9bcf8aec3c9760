"""The what-if plan from the GPUs tab: "Plan for GPUs I don't have…" picks a number of GPUs
and their VRAM, and the window's GPU monitor reads simulated GPUs (core/hardware/simulated.py,
the same ones KOBOLD_GUI_FAKE_GPUS gives) until "Back to this machine's GPUs". The plan and the
split editor then show a per-GPU plan; the GPUs tab says on every card that they are not real."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QSpinBox,
    QWidget,
)

from kobold_gui.core.hardware.nvml import GpuInventory
from kobold_gui.core.hardware.simulated import from_spec
from kobold_gui.ui.hardware.gpu_panel import GpuPanel

PLAN_TEXT = "Plan for GPUs I don't have…"
BACK_TEXT = "Back to this machine's GPUs"
LABEL = (
    "Simulated GPUs for a what-if plan: not real, nothing loads on them. "
    "The plan and the split editor show what each would hold."
)


def what_if_spec(count: int, vram_gib: int) -> str:
    """The simulated GPUs' spec (core/hardware/simulated.py's from_spec)."""
    return ",".join(f"Simulated {vram_gib} GiB GPU:{vram_gib}" for _ in range(count))


class WhatIfDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Plan for GPUs I don't have")
        self.count = QSpinBox()
        self.count.setRange(1, 8)
        self.count.setValue(1)
        self.vram = QSpinBox()
        self.vram.setRange(1, 192)
        self.vram.setValue(24)
        self.vram.setSuffix(" GiB")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Plan")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        note = QLabel("See how the model would split over GPUs this computer does not have.")
        note.setWordWrap(True)
        form.addRow(note)
        form.addRow("GPUs", self.count)
        form.addRow("VRAM each", self.vram)
        form.addRow(buttons)

    def spec(self) -> str:
        return what_if_spec(self.count.value(), self.vram.value())


class WhatIfGpus(QObject):
    """Swaps the window's GPU monitor between the real GPUs and simulated ones."""

    def __init__(
        self,
        panel: GpuPanel,
        swap: Callable[[GpuInventory], None],
        real: Callable[[], GpuInventory],
        parent: QWidget,
    ) -> None:
        super().__init__(parent)
        self.panel, self.swap, self.real = panel, swap, real
        self.button = button = panel.what_if_button
        self.window = parent
        self.active = False
        self.dialog: WhatIfDialog | None = None
        button.setText(PLAN_TEXT)
        button.clicked.connect(self.toggle)

    def toggle(self) -> None:
        if self.active:
            self.use(None)
            return
        self.dialog = WhatIfDialog(self.window)
        self.dialog.accepted.connect(lambda: self.use(self.dialog.spec() if self.dialog else None))
        self.dialog.open()  # window-modal, no nested event loop

    def use(self, spec: str | None) -> None:
        """Simulated GPUs of `spec`, or (None) this machine's own again."""
        self.active = spec is not None
        self.panel.simulated = self.active
        self.panel.set_build_note("")
        self.swap(GpuInventory(from_spec(spec), label=LABEL) if spec else self.real())
        self.button.setText(BACK_TEXT if self.active else PLAN_TEXT)
