"""Launch settings beside the batch slider. Ranges and defaults come from the option table."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel, QSpinBox, QWidget

from kobold_gui.core.batching import POLICIES
from kobold_gui.core.options import OPTIONS_BY_NAME, LaunchConfig
from kobold_gui.ui.batch_slider import BatchSlider


def _spin(name: str, special: str | None = None) -> QSpinBox:
    opt = OPTIONS_BY_NAME[name]
    box = QSpinBox()
    box.setObjectName(name)
    box.setRange(opt.minimum or 0, opt.maximum or 1_000_000)
    box.setValue(opt.default)
    box.setToolTip(opt.help)
    box.setKeyboardTracking(False)
    if special:
        box.setSpecialValueText(special)
    return box


class LaunchPanel(QWidget):
    configChanged = Signal(object)  # LaunchConfig

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.batch = BatchSlider()
        self.policy = QComboBox()
        self.policy.setObjectName("batchpolicy")
        for policy in POLICIES.values():
            self.policy.addItem(policy.title, policy.name)
        self.policy.setToolTip(OPTIONS_BY_NAME["batchpolicy"].help)
        self.context = _spin("contextsize")
        self.context.setSingleStep(256)
        self.gpu_layers = _spin("gpulayers", special="auto")
        self.gpu_layers_note = QLabel()
        self.gpu_layers_note.setObjectName("gpuLayersNote")
        self.gpu_layers_note.setWordWrap(True)
        self.threads = _spin("threads", special="auto")
        self.flash = QComboBox()
        self.flash.setObjectName("flashattention")
        for value, text in (("auto", "auto (llama.cpp decides)"), ("on", "on"), ("off", "off")):
            self.flash.addItem(text, value)
        self.flash.setToolTip(OPTIONS_BY_NAME["flashattention"].help)

        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("BLAS batch", self.batch)
        form.addRow("Batch policy", self.policy)
        form.addRow("Context size", self.context)
        form.addRow("GPU layers", self.gpu_layers)
        form.addRow("", self.gpu_layers_note)
        form.addRow("Threads", self.threads)
        form.addRow("Flash attention", self.flash)

        self.batch.blasChanged.connect(self._changed)
        self.policy.currentIndexChanged.connect(self._changed)
        self.context.valueChanged.connect(self._changed)
        self.gpu_layers.valueChanged.connect(self._changed)
        self.threads.valueChanged.connect(self._changed)
        self.flash.currentIndexChanged.connect(self._changed)
        self._changed()

    def config(self) -> LaunchConfig:
        return LaunchConfig(
            blasbatchsize=self.batch.blas(),
            batchpolicy=str(self.policy.currentData()),
            contextsize=self.context.value(),
            gpulayers=self.gpu_layers.value(),
            threads=self.threads.value(),
            flashattention=str(self.flash.currentData()),
        )

    def set_config(self, config: LaunchConfig) -> None:
        widgets = (
            self.batch.slider,
            self.policy,
            self.context,
            self.gpu_layers,
            self.threads,
            self.flash,
        )
        for w in widgets:
            w.blockSignals(True)
        try:
            self.batch.set_blas(config.blasbatchsize)
            self.policy.setCurrentIndex(max(0, self.policy.findData(config.batchpolicy)))
            self.context.setValue(config.contextsize)
            self.gpu_layers.setValue(config.gpulayers)
            self.threads.setValue(config.threads)
            self.flash.setCurrentIndex(max(0, self.flash.findData(config.flashattention)))
        finally:
            for w in widgets:
                w.blockSignals(False)
        self._changed()

    def set_gpu_layers_note(self, text: str) -> None:
        self.gpu_layers_note.setText(text)

    def _changed(self, *_args: object) -> None:
        self.batch.set_policy(str(self.policy.currentData()))
        self.batch.set_context(self.context.value())
        self.configChanged.emit(self.config())
