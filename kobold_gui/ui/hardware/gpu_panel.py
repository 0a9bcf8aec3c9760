"""The GPU panel: one card per NVIDIA GPU with a VRAM bar (this app / others / free),
utilization, temperature, power and a 60-second graph; check boxes for the GPUs the model
may use and the main GPU. Fed by GpuMonitor snapshots; it never calls NVML itself. Given the
launch state, it follows it itself: the GPUs chosen elsewhere (a model's saved settings) and
the build's warnings show here, and the choice made here goes there."""

from __future__ import annotations

from collections import deque

import pyqtgraph as pg
from PySide6.QtCore import QRectF, Signal
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from kobold_gui.core.hardware.nvml import GpuSnapshot, Inventory
from kobold_gui.core.launch.state import LaunchState
from kobold_gui.core.launch.values import ALL_GPUS, GpuSelection
from kobold_gui.core.units import human_bytes

HISTORY_S = 60
COLORS = {"ours": QColor("#3584e4"), "others": QColor("#c0bfbc"), "free": QColor("#ffffff")}


class VramBar(QWidget):
    """A horizontal bar: memory used by this app, by other processes, and free."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.total = self.ours = self.others = 0
        self.setMinimumHeight(16)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_values(self, total: int, ours: int, others: int) -> None:
        self.total, self.ours, self.others = total, ours, others
        self.setToolTip(
            f"this app {human_bytes(ours)} · others {human_bytes(others)} · "
            f"free {human_bytes(max(0, total - ours - others))} of {human_bytes(total)}"
        )
        self.update()

    def paintEvent(self, _event: QPaintEvent) -> None:
        p = QPainter(self)
        r = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        p.fillRect(r, COLORS["free"])
        if self.total:
            x = r.left()
            for value, color in ((self.ours, COLORS["ours"]), (self.others, COLORS["others"])):
                w = r.width() * value / self.total
                p.fillRect(QRectF(x, r.top(), w, r.height()), color)
                x += w
        p.setPen(QColor("#77767b"))
        p.drawRect(r)
        p.end()


class GpuCard(QFrame):
    useChanged = Signal()

    def __init__(self, gpu: GpuSnapshot, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.index = gpu.index
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setObjectName(f"gpuCard{gpu.index}")
        self.use = QCheckBox(f"GPU {gpu.index}: {gpu.name}")
        self.use.setChecked(True)
        self.use.setToolTip("Let the model use this GPU")
        self.main = QRadioButton("main")
        self.main.setToolTip("The main GPU: small tensors and intermediate results")
        self.bar = VramBar()
        self.memory = QLabel()
        self.stats = QLabel()
        self.stats.setObjectName("gpuStats")
        self.error = QLabel()
        self.error.setStyleSheet("color: #b00020;")
        self.error.hide()
        self.plot = pg.PlotWidget()
        self.plot.setFixedHeight(70)
        self.plot.setBackground(None)
        self.plot.setYRange(-4, 112, padding=0)  # room for the "100" label at the top
        self.plot.setXRange(-HISTORY_S - 3, 3, padding=0)
        self.plot.setMouseEnabled(False, False)
        self.plot.hideButtons()
        left = self.plot.getPlotItem().getAxis("left")
        left.setWidth(30)
        left.setTicks([[(0, "0"), (50, "50"), (100, "100")]])
        self.plot.getPlotItem().getAxis("bottom").setTicks(
            [[(-60, "-60 s"), (-45, "-45"), (-30, "-30"), (-15, "-15"), (0, "now")]]
        )
        self.util_curve = self.plot.plot(pen=pg.mkPen("#e66100", width=1.5), name="use %")
        self.vram_curve = self.plot.plot(pen=pg.mkPen("#3584e4", width=1.5), name="VRAM %")
        self.history: deque[tuple[float, float, float]] = deque()
        top = QHBoxLayout()
        top.addWidget(self.use, 1)
        top.addWidget(self.main)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.bar)
        layout.addWidget(self.memory)
        layout.addWidget(self.stats)
        layout.addWidget(self.error)
        layout.addWidget(self.plot)
        layout.addWidget(
            QLabel(
                "<small><span style='color:#e66100'>━ use %</span> "
                "<span style='color:#3584e4'>━ VRAM %</span>, last 60 s</small>"
            )
        )
        self.use.toggled.connect(self.useChanged)

    def update_from(self, gpu: GpuSnapshot, t: float) -> None:
        self.error.setVisible(gpu.lost)
        if gpu.lost:
            self.error.setText(f"GPU lost: {gpu.error}. Other GPUs keep working.")
            self.stats.setText("—")
            return
        self.bar.set_values(gpu.memory_total, gpu.memory_used_by_us, gpu.memory_used_by_others)
        self.memory.setText(
            f"{human_bytes(gpu.memory_used)} used of {human_bytes(gpu.memory_total)} · "
            f"this app {human_bytes(gpu.memory_used_by_us)} · free {human_bytes(gpu.memory_free)}"
        )
        parts = [f"use {gpu.util_gpu} %" if gpu.util_gpu is not None else "use —"]
        if gpu.temperature_c is not None:
            parts.append(f"{gpu.temperature_c} °C")
        if gpu.power_w is not None:
            limit = f" / {gpu.power_limit_w:.0f}" if gpu.power_limit_w else ""
            parts.append(f"{gpu.power_w:.0f}{limit} W")
        parts.append(gpu.pci_bus_id)
        self.stats.setText(" · ".join(parts))
        vram = 100 * gpu.memory_used / gpu.memory_total if gpu.memory_total else 0.0
        self.history.append((t, float(gpu.util_gpu or 0), vram))
        while self.history and self.history[0][0] < t - HISTORY_S:
            self.history.popleft()
        xs = [h[0] - t for h in self.history]
        self.util_curve.setData(xs, [h[1] for h in self.history])
        self.vram_curve.setData(xs, [h[2] for h in self.history])


class GpuPanel(QWidget):
    selectionChanged = Signal(object, int)  # GpuSelection, main GPU (-1 = first)

    def __init__(self, state: LaunchState | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.cards: dict[int, GpuCard] = {}
        self.header = QLabel("Looking for GPUs…")
        self.header.setObjectName("gpuHeader")
        self.header.setWordWrap(True)
        self.build_note = QLabel()
        self.build_note.setObjectName("gpuBuildNote")
        self.build_note.setWordWrap(True)
        self.build_note.setStyleSheet("color: #9a6700;")
        self.build_note.hide()
        self.cards_layout = QVBoxLayout()
        self.what_if_button = QPushButton()  # the window's what-if plan (ui/hardware/what_if.py)
        self.what_if_button.setObjectName("whatIfButton")
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addWidget(self.what_if_button)
        layout.addWidget(self.build_note)
        layout.addLayout(self.cards_layout)
        layout.addStretch(1)
        self._t0: float | None = None
        self._selection: tuple[GpuSelection, int] = (ALL_GPUS, -1)
        self._emitting = False  # the choice is this panel's own edit
        self.simulated = False  # what-if GPUs (ui/hardware/what_if.py): no driver, no build note
        if state is not None:
            self._chosen = (state.config.gpus, state.config.maingpu)  # the state's, last seen
            state.subscribe(self._launch_changed)
            self.selectionChanged.connect(lambda gpus, main: state.edit(gpus=gpus, maingpu=main))

    def _launch_changed(self, state: LaunchState) -> None:
        chosen = (state.config.gpus, state.config.maingpu)
        if chosen != self._chosen:
            self._chosen = chosen
            if not self._emitting:
                self.set_selection(*chosen)
        self.set_build_note(" ".join(state.hardware.warnings) if state.hardware else "")

    def set_build_note(self, text: str) -> None:
        text = "" if self.simulated else text  # "build the CUDA backend" is for real GPUs
        self.build_note.setText(text)
        self.build_note.setVisible(bool(text))

    def update_inventory(self, inventory: Inventory) -> None:
        if self._t0 is None:
            self._t0 = inventory.timestamp
        t = inventory.timestamp - self._t0
        for index in set(self.cards) - {g.index for g in inventory.gpus}:  # other GPUs now
            self.cards.pop(index).deleteLater()
        if not inventory.gpus:
            self.header.setText(inventory.message or "No NVIDIA GPUs.")
            return
        text = (
            f"{len(inventory.gpus)} simulated GPU(s)"
            if self.simulated
            else f"{len(inventory.gpus)} NVIDIA GPU(s) · driver {inventory.driver_version} · "
            f"CUDA {inventory.cuda_driver_version}"
        )
        self.header.setText(f"{text}\n{inventory.message}" if inventory.message else text)
        for gpu in inventory.gpus:
            card = self.cards.get(gpu.index)
            if card is None:
                card = GpuCard(gpu)
                self.cards[gpu.index] = card
                self.cards_layout.addWidget(card)
                card.useChanged.connect(self._emit_selection)
                card.main.toggled.connect(lambda on, i=gpu.index: self._main_toggled(i, on))
                self._apply_selection()
            card.update_from(gpu, t)

    # -- selection ------------------------------------------------------------------------
    def selection(self) -> tuple[GpuSelection, int]:
        if not self.cards:
            return self._selection
        used = tuple(i for i, c in sorted(self.cards.items()) if c.use.isChecked())
        gpus = ALL_GPUS if len(used) == len(self.cards) else GpuSelection(used)
        main = next((i for i, c in self.cards.items() if c.main.isChecked()), -1)
        return gpus, main

    def set_selection(self, gpus: GpuSelection, maingpu: int) -> None:
        self._selection = (gpus, maingpu)
        self._apply_selection()

    def _apply_selection(self) -> None:
        gpus, main = self._selection
        for i, card in self.cards.items():
            for w in (card.use, card.main):
                w.blockSignals(True)
            card.use.setChecked(gpus.allows(i))
            card.main.setChecked(i == main)
            for w in (card.use, card.main):
                w.blockSignals(False)

    def _main_toggled(self, index: int, on: bool) -> None:
        """At most one main GPU, and none means the first one used (so no QButtonGroup)."""
        if on:
            for i, card in self.cards.items():
                if i != index:
                    card.main.blockSignals(True)
                    card.main.setChecked(False)
                    card.main.blockSignals(False)
            self.cards[index].use.setChecked(True)
        self._emit_selection()

    def _emit_selection(self) -> None:
        self._selection = self.selection()
        self._emitting = True
        try:
            self.selectionChanged.emit(*self._selection)
        finally:
            self._emitting = False
