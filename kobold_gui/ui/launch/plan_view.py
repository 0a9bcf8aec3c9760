"""The memory plan, drawn: one bar per GPU stacked by weights / KV cache / compute / CUDA
context against its free memory (red when over budget), the CPU's share in RAM, and the
split between GPUs as editable shares. It redraws on every change of the launch settings,
before anything is loaded; after a load it shows the measured use beside the plan. Given the
launch state, it follows it itself: the plan, and a split set elsewhere (a model's saved
settings); edited shares go there."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Signal
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from kobold_gui.core.launch.state import LaunchState
from kobold_gui.core.plan.memory_plan import DevicePlan, MemoryPlan
from kobold_gui.core.units import human_bytes
from kobold_gui.ui.common.wheel_guard import guard_wheel
from kobold_gui.ui.text.plan_summary import plan_summary

PARTS = (
    ("weights", QColor("#3584e4")),
    ("kv", QColor("#2ec27e")),
    ("compute", QColor("#e66100")),
    ("overhead", QColor("#9a9996")),
)


class PlanBar(QWidget):
    """Stacked bar of one GPU's planned use, scaled to its free memory."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.device: DevicePlan | None = None
        self.setMinimumHeight(18)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_device(self, device: DevicePlan) -> None:
        self.device = device
        self.update()

    def paintEvent(self, _event: QPaintEvent) -> None:
        d = self.device
        p = QPainter(self)
        r = QRectF(self.rect()).adjusted(1, 1, -1, -1)
        p.fillRect(r, QColor("white"))
        if d is not None and d.free:
            scale = r.width() / max(d.free, d.total + d.margin)
            x = r.left()
            for name, color in PARTS:
                w = getattr(d, name) * scale
                p.fillRect(QRectF(x, r.top(), w, r.height()), color)
                x += w
            margin_w = d.margin * scale if d.total else 0.0
            p.fillRect(
                QRectF(x, r.top(), margin_w, r.height()),
                QColor(0, 0, 0, 40) if d.fits else QColor("#f66151"),
            )
            free_x = r.left() + d.free * scale
            p.setPen(QPen(QColor("#c01c28"), 2))
            p.drawLine(int(free_x), int(r.top()), int(free_x), int(r.bottom()))
        p.setPen(
            QPen(
                QColor("#c01c28") if d is not None and not d.fits else QColor("#77767b"),
                2 if d is not None and not d.fits else 1,
            )
        )
        p.drawRect(r)
        p.end()


def _legend(remote: bool) -> str:
    overhead = "GPU context / GPU pool" if remote else "GPU context (CUDA, Vulkan)"
    return (
        "<small><span style='color:#3584e4'>■ weights</span> "
        "<span style='color:#2ec27e'>■ KV cache</span> "
        "<span style='color:#e66100'>■ compute</span> "
        f"<span style='color:#9a9996'>■ {overhead}</span> ▨ margin │ free</small>"
    )


class SplitEditor(QWidget):
    splitChanged = Signal(object)  # tuple of shares per device; () = automatic (free memory)

    def __init__(self, state: LaunchState | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plan: MemoryPlan | None = None
        self._emitting = False  # the split is this editor's own edit
        self.bars: list[PlanBar] = []
        self.labels: list[QLabel] = []
        self.shares: list[QDoubleSpinBox] = []
        self.rows: list[QWidget] = []
        self.auto_split = QCheckBox("Automatic split (by free memory)")
        self.auto_split.setChecked(True)
        self.summary = QLabel("Choose a model to see its memory plan.")
        self.summary.setObjectName("planSummary")
        self.summary.setWordWrap(True)
        self.measured = QLabel()
        self.measured.setObjectName("planMeasured")
        self.measured.setWordWrap(True)
        self.cpu = QLabel()
        self.cpu.setObjectName("planCpu")
        self.cpu.setWordWrap(True)
        self.warnings = QLabel()
        self.warnings.setObjectName("planWarnings")
        self.warnings.setWordWrap(True)
        self.warnings.setStyleSheet("color: #c01c28;")
        self.gpu_rows = QVBoxLayout()
        self.legend = legend = QLabel(_legend(remote=False))
        legend.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.summary)
        layout.addLayout(self.gpu_rows)
        layout.addWidget(self.auto_split)
        layout.addWidget(self.cpu)
        layout.addWidget(self.warnings)
        layout.addWidget(self.measured)
        layout.addWidget(legend)
        self.auto_split.toggled.connect(self._auto_toggled)
        if state is not None:
            self._split = state.config.tensor_split  # as the launch state had it last
            state.subscribe(self._launch_changed)
            self.splitChanged.connect(lambda split: state.edit(tensor_split=split))

    def _launch_changed(self, state: LaunchState) -> None:
        split = state.config.tensor_split
        if split != self._split:
            self._split = split
            if not self._emitting:  # set elsewhere; typed shares stay as typed
                self.show_split(split)
        launch = state.resolved
        self.set_plan(
            launch.plan if launch else None,
            plan_summary(launch, bool(state.assumed_gpus)) if launch else state.error or "",
        )

    def set_plan(self, plan: MemoryPlan | None, note: str = "") -> None:
        self.plan = plan
        if plan is None:
            self.summary.setText(note or "No plan yet.")
            self._ensure_rows(0)
            self.cpu.clear()
            self.warnings.clear()
            return
        gpus = [d for d in plan.devices if d.is_gpu]
        self._ensure_rows(len(gpus))
        self.legend.setVisible(bool(gpus))
        self.legend.setText(_legend(any(d.remote for d in gpus)))
        self.auto_split.setVisible(len(gpus) > 1)
        tensor = plan.request.split_mode == "tensor"  # every device: a slice of every layer
        self.auto_split.setText(f"Automatic split ({'even' if tensor else 'by free memory'})")
        # Automatic: the share each device gets of the offloaded layers (the output layer
        # counts), as the plan placed them.
        split = plan.request.tensor_split or tuple(float(len(d.layers)) for d in gpus)
        total_share = sum(split) or 1.0
        for i, device in enumerate(gpus):
            self.bars[i].set_device(device)
            layers = [x for x in device.layers if x < plan.n_layer]
            out = " + output" if plan.n_layer in device.layers else ""
            state = "" if device.fits else " — OVER BUDGET"
            held = f"a slice of each of {len(layers)} layers" if tensor else f"{len(layers)} layers"
            self.labels[i].setText(
                f"<b>{device.name}</b>: {held}{out}, "
                f"{human_bytes(device.total)} of {human_bytes(device.free or 0)} free{state}"
            )
            self.labels[i].setToolTip(device.describe())
            self.labels[i].setStyleSheet("" if device.fits else "color: #c01c28;")
            box = self.shares[i]
            if self.auto_split.isChecked():  # shows the automatic split; typed shares stay
                box.blockSignals(True)
                box.setValue(100 * split[i] / total_share if i < len(split) else 100.0)
                box.blockSignals(False)
            box.setEnabled(not self.auto_split.isChecked())
        cpu = plan.devices[-1]
        here = "This computer's CPU / RAM" if any(d.remote for d in gpus) else "CPU / RAM"
        self.cpu.setText(
            f"{here}: {len([x for x in cpu.layers if x < plan.n_layer])} layers, "
            f"{cpu.describe().split(': ', 1)[1]}"
        )
        self.summary.setText(note)
        self.warnings.setText("\n".join(plan.messages))

    def show_split(self, shares: tuple[float, ...]) -> None:
        """A saved split ((3.0, 1.0), or () for automatic) into the editor, without echoing
        it back as an edit."""
        self._ensure_rows(max(len(shares), len(self.shares)))
        self.auto_split.blockSignals(True)
        self.auto_split.setChecked(not shares)
        self.auto_split.blockSignals(False)
        total = sum(shares) or 1.0
        for box, share in zip(self.shares, shares, strict=False):
            box.blockSignals(True)
            box.setValue(100 * share / total)
            box.blockSignals(False)
            box.setEnabled(bool(shares))

    def set_measured(self, text: str) -> None:
        """llama.cpp's own sizes after a load, beside the plan ('' clears them)."""
        self.measured.setText(f"Measured after load: {text}" if text else "")

    def _ensure_rows(self, count: int) -> None:
        while len(self.bars) < count:
            i = len(self.bars)
            label, bar, box = QLabel(), PlanBar(), QDoubleSpinBox()
            label.setWordWrap(True)
            box.setRange(0, 100)
            box.setDecimals(1)
            box.setSuffix(" %")
            box.setToolTip("This device's share of the offloaded layers")
            guard_wheel(box)
            box.valueChanged.connect(self._shares_edited)
            row = QHBoxLayout()
            row.addWidget(bar, 1)
            row.addWidget(box)
            form = QFormLayout()
            form.addRow(label)
            form.addRow(row)
            holder = QWidget()
            holder.setObjectName(f"planGpu{i}")
            holder.setLayout(form)
            self.gpu_rows.addWidget(holder)
            self.bars.append(bar)
            self.labels.append(label)
            self.shares.append(box)
            self.rows.append(holder)
        for i, holder in enumerate(self.rows):
            holder.setVisible(i < count)

    def _auto_toggled(self, on: bool) -> None:
        for box in self.shares:
            box.setEnabled(not on)
        self._shares_edited()

    def _shares_edited(self, *_args: object) -> None:
        if self.auto_split.isChecked():
            self._emit_split(())
            return
        visible = tuple(
            b.value()
            for b, row in zip(self.shares, self.rows, strict=True)
            if row.isVisibleTo(self)
        )
        if any(visible):
            self._emit_split(visible)

    def _emit_split(self, split: tuple[float, ...]) -> None:
        self._emitting = True
        try:
            self.splitChanged.emit(split)
        finally:
            self._emitting = False
