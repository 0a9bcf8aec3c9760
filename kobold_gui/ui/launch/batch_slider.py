"""The BLAS batch slider: snaps to KoboldCPP's stops and shows, live while dragging, the
n_batch and n_ubatch that llama.cpp will really get. It computes nothing itself: the launch
state resolves the value it sends and hands back the BatchPlan to show."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from kobold_gui.core.launch.batching import BLAS_STOPS, DEFAULT_BLAS, BatchPlan, stop_at_or_below


class BatchSlider(QWidget):
    blasChanged = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._plan: BatchPlan | None = None
        self._measured: dict[int, tuple[float, float]] = {}  # n_batch -> prompt, gen t/s
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName("blasSlider")
        self.slider.setRange(0, len(BLAS_STOPS) - 1)
        self.slider.setPageStep(1)
        self.slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.slider.setTracking(True)  # valueChanged fires while dragging
        self.slider.setAccessibleName("BLAS batch size")
        self.value_label = QLabel()
        self.value_label.setMinimumWidth(40)
        self.value_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.effective_label = QLabel()
        self.effective_label.setObjectName("batchEffective")
        self.effective_label.setWordWrap(True)
        self.effective_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # Two lines kept whatever the text: a label that wraps at 2048 must not move the form.
        self.effective_label.setMinimumHeight(2 * self.effective_label.fontMetrics().lineSpacing())
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.slider, 1)
        row.addWidget(self.value_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.effective_label)
        self.slider.valueChanged.connect(self._on_index)
        self.setToolTip(
            "BLAS batch size B: prompt tokens per decode call (n_batch).\n"
            "n_ubatch (tokens per compute graph, which sizes the compute buffer) follows the "
            "batch policy: KoboldCPP's rule caps it at 1024.\n"
            "llama.cpp also clamps n_batch to the context size and n_ubatch to n_batch."
        )
        self.set_blas(DEFAULT_BLAS)

    def blas(self) -> int:
        return BLAS_STOPS[self.slider.value()]

    def set_blas(self, blas: int) -> None:
        self.slider.setValue(BLAS_STOPS.index(stop_at_or_below(blas)))
        self.value_label.setText(str(self.blas()))

    def show_batch(self, plan: BatchPlan) -> None:
        """What the launch will really use for the slider's value."""
        self._plan = plan
        self._refresh()

    def set_measured(self, measured: dict[int, tuple[float, float]]) -> None:
        """A sweep's numbers for the seed rule's pairs: shown for the position under the
        slider."""
        self._measured = dict(measured)
        self._refresh()

    def _on_index(self, _index: int) -> None:
        self.value_label.setText(str(self.blas()))
        self.blasChanged.emit(self.blas())

    def _refresh(self) -> None:
        plan = self._plan
        if plan is None:
            return
        text = plan.label()
        # The sweep's numbers are for the seed rule's pairs: shown under that policy only.
        measured = self._measured.get(plan.n_batch) if plan.policy == "koboldcpp" else None
        if measured is not None:
            text += f"\nmeasured: {measured[0]:,.0f} prompt t/s, {measured[1]:.1f} generation t/s"
        self.effective_label.setText(text)
