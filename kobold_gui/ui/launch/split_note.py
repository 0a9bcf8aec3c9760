"""Beside the split mode: why tensor split cannot be used here (llama.cpp's reason, or the
app's on one device), that it turns flash attention on, and, when a benchmark on this
machine measured tensor split faster for the loaded model (`--benchmark --splitmodes
layer,tensor`, or the Benchmark tab once per mode), the numbers and one click to use it.
The layer split stays the default until then."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from kobold_gui.core.benchmark.split_modes import SplitComparison
from kobold_gui.core.launch.split_rules import FLASH_ATTN_NOTE
from kobold_gui.core.launch.state import LaunchState


class SplitModeNote(QWidget):
    def __init__(self, state: LaunchState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.comparison: SplitComparison | None = None
        self.refused = False  # the launch's error is tensor split's, shown here
        self.label = QLabel()
        self.label.setObjectName("splitModeNote")
        self.label.setWordWrap(True)
        self.use_tensor = QPushButton("Use tensor split")
        self.use_tensor.setObjectName("useTensorSplit")
        self.use_tensor.setToolTip("Measured faster on this machine for this model")
        self.use_tensor.clicked.connect(lambda: self.state.edit(splitmode="tensor"))
        self.use_tensor.hide()
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.label, 1)
        row.addWidget(self.use_tensor)
        state.subscribe(self._show)
        self._show(state)

    def set_comparison(self, comparison: SplitComparison | None) -> None:
        """What was measured for the loaded model (None: nothing, or no model)."""
        self.comparison = comparison
        self._show(self.state)

    def _show(self, state: LaunchState) -> None:
        config = state.config
        error = state.error or ""
        self.refused = refused = config.splitmode == "tensor" and "tensor" in error
        text = ""
        if refused:
            text = error
        elif config.splitmode == "tensor" and state.resolved and config.flashattention == "auto":
            text = FLASH_ATTN_NOTE
        faster = self.comparison.faster() if self.comparison else None
        offer = faster is not None and config.splitmode != "tensor"
        if offer and self.comparison is not None:
            text = f"Measured here, tensor split is faster for this model: {self.comparison.text()}"
        self.label.setText(text)
        self.label.setStyleSheet("color: #c01c28;" if refused else "")
        self.use_tensor.setVisible(offer)
        self.setVisible(bool(text))
