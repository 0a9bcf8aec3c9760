"""Launch settings beside the batch slider. Ranges, choices and defaults come from the option
table; settings without a widget here (the GPU choice, the split) are kept as they were set."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel, QSpinBox, QWidget

from kobold_gui.core.batching import (
    POLICIES,
    BatchPolicy,
    CustomPolicy,
    MeasuredPolicy,
    get_policy,
)
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


def _combo(name: str, texts: dict[str, str]) -> QComboBox:
    opt = OPTIONS_BY_NAME[name]
    box = QComboBox()
    box.setObjectName(name)
    for value in opt.choices or ():
        box.addItem(texts.get(value, value), value)
    box.setCurrentIndex(box.findData(opt.default))
    box.setToolTip(opt.help)
    return box


class LaunchPanel(QWidget):
    configChanged = Signal(object)  # LaunchConfig

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._base = LaunchConfig()
        self.batch = BatchSlider()
        self.policy = _combo("batchpolicy", {p.name: p.title for p in POLICIES.values()})
        self.ubatch = _spin("ubatch")
        self._measured_pair: tuple[int, int] | None = None
        self.context = _spin("contextsize")
        self.context.setSingleStep(256)
        self.gpu_layers = _spin("gpulayers", special="auto")
        self.gpu_layers_note = QLabel()
        self.gpu_layers_note.setObjectName("gpuLayersNote")
        self.gpu_layers_note.setWordWrap(True)
        self.threads = _spin("threads", special="auto")
        self.flash = _combo("flashattention", {"auto": "auto (llama.cpp decides)"})
        self.kvtype = _combo("kvtype", {"q8_0": "q8_0 (about half)", "q4_0": "q4_0 (a quarter)"})
        self.kvoffload = _combo("kvoffload", {"on": "on the GPU", "off": "in RAM (low VRAM)"})
        self.splitmode = _combo(
            "splitmode", {"layer": "by layer", "row": "by row", "none": "main GPU only"}
        )
        self.margin = _spin("vrammargin")
        self.margin.setSuffix(" MiB")
        self.margin.setSingleStep(256)

        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("BLAS batch", self.batch)
        form.addRow("Batch policy", self.policy)
        form.addRow("n_ubatch (custom)", self.ubatch)
        form.addRow("Context size", self.context)
        form.addRow("GPU layers", self.gpu_layers)
        form.addRow("", self.gpu_layers_note)
        form.addRow("Threads", self.threads)
        form.addRow("Flash attention", self.flash)
        form.addRow("KV cache", self.kvtype)
        form.addRow("KV cache place", self.kvoffload)
        form.addRow("Split mode", self.splitmode)
        form.addRow("VRAM margin", self.margin)

        self.batch.blasChanged.connect(self._changed)
        for spin in (self.context, self.gpu_layers, self.threads, self.margin, self.ubatch):
            spin.valueChanged.connect(self._changed)
        for combo in self._combos():
            combo.currentIndexChanged.connect(self._changed)
        self._changed()

    def _combos(self) -> tuple[QComboBox, ...]:
        return (self.policy, self.flash, self.kvtype, self.kvoffload, self.splitmode)

    def config(self) -> LaunchConfig:
        return replace(
            self._base,
            blasbatchsize=self.batch.blas(),
            batchpolicy=str(self.policy.currentData()),
            ubatch=self.ubatch.value(),
            contextsize=self.context.value(),
            gpulayers=self.gpu_layers.value(),
            threads=self.threads.value(),
            flashattention=str(self.flash.currentData()),
            kvtype=str(self.kvtype.currentData()),
            kvoffload=str(self.kvoffload.currentData()),
            splitmode=str(self.splitmode.currentData()),
            vrammargin=self.margin.value(),
        )

    def set_config(self, config: LaunchConfig) -> None:
        self._base = config
        widgets = (
            self.batch.slider,
            self.ubatch,
            self.context,
            self.gpu_layers,
            self.threads,
            self.margin,
            *self._combos(),
        )
        for w in widgets:
            w.blockSignals(True)
        try:
            self.batch.set_blas(config.blasbatchsize)
            self.ubatch.setValue(config.ubatch)
            self.context.setValue(config.contextsize)
            self.gpu_layers.setValue(config.gpulayers)
            self.threads.setValue(config.threads)
            self.margin.setValue(config.vrammargin)
            for combo, value in zip(
                self._combos(),
                (
                    config.batchpolicy,
                    config.flashattention,
                    config.kvtype,
                    config.kvoffload,
                    config.splitmode,
                ),
                strict=True,
            ):
                combo.setCurrentIndex(max(0, combo.findData(value)))
        finally:
            for w in widgets:
                w.blockSignals(False)
        self._changed()

    def set_gpu_layers_note(self, text: str) -> None:
        self.gpu_layers_note.setText(text)

    def set_measured_pair(self, pair: tuple[int, int] | None) -> None:
        """The benchmark's pick, for the measured policy (None: no sweep yet)."""
        self._measured_pair = pair
        self._changed()

    def _policy(self) -> BatchPolicy:
        name = str(self.policy.currentData())
        if name == "custom":
            return CustomPolicy(self.ubatch.value())
        if name == "measured" and self._measured_pair is not None:
            return MeasuredPolicy(*self._measured_pair)
        return get_policy(name)

    def _changed(self, *_args: object) -> None:
        self.ubatch.setEnabled(self.policy.currentData() == "custom")
        self.batch.set_policy(self._policy())
        self.batch.set_context(self.context.value())
        self.configChanged.emit(self.config())
