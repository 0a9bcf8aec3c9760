"""Launch settings beside the batch slider, built from the option table: each option with a
label there gets its widget (ranges, choices, texts and defaults from the table). Widgets
send edits to the launch state and redraw from its one resolved launch; settings without a
widget here (the GPU choice, the split) are edited in the GPUs tab and the plan."""

from __future__ import annotations

from typing import ClassVar

from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel, QSpinBox, QWidget

from kobold_gui.core.launch.options import OPTIONS, LaunchConfig, Option
from kobold_gui.core.launch.parallel import cost_note, sharing_note
from kobold_gui.core.launch.resolve import ResolvedLaunch
from kobold_gui.core.launch.state import LaunchState
from kobold_gui.ui.common.wheel_guard import guard_wheel
from kobold_gui.ui.launch.batch_slider import BatchSlider
from kobold_gui.ui.launch.split_note import SplitModeNote


def _spin(opt: Option) -> QSpinBox:
    box = QSpinBox()
    box.setRange(opt.minimum or 0, opt.maximum or 1_000_000)
    box.setValue(opt.default)
    box.setSingleStep(opt.step)
    box.setSuffix(opt.suffix)
    box.setKeyboardTracking(False)
    if opt.special:
        box.setSpecialValueText(opt.special)
    return box


def _combo(opt: Option) -> QComboBox:
    box = QComboBox()
    for value in opt.choices or ():
        box.addItem(opt.texts.get(value, value), value)
    box.setCurrentIndex(box.findData(opt.default))
    return box


class LaunchPanel(QWidget):
    # Attribute names of the widgets, for the window and tests (the rest use the option name).
    NAMES: ClassVar[dict[str, str]] = {
        "blasbatchsize": "batch",
        "batchpolicy": "policy",
        "contextsize": "context",
        "gpulayers": "gpu_layers",
        "flashattention": "flash",
        "vrammargin": "margin",
    }

    batch: BatchSlider
    policy: QComboBox
    ubatch: QSpinBox
    context: QSpinBox
    gpu_layers: QSpinBox
    splitmode: QComboBox
    kvtype: QComboBox
    kvoffload: QComboBox
    margin: QSpinBox
    threads: QSpinBox
    flash: QComboBox
    parallel: QSpinBox

    def __init__(self, state: LaunchState | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state or LaunchState()
        self.widgets: dict[str, QWidget] = {}
        self.rows: dict[str, tuple[QLabel, QWidget]] = {}
        self.gpu_layers_note = QLabel()
        self.gpu_layers_note.setObjectName("gpuLayersNote")
        self.gpu_layers_note.setWordWrap(True)
        self.parallel_note = QLabel()  # what `parallel` chose, why, and what sharing means
        self.parallel_note.setObjectName("parallelNote")
        self.parallel_note.setWordWrap(True)
        self.split_note = SplitModeNote(self.state)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        for opt in (o for o in OPTIONS if o.label):
            widget = self._make(opt)
            widget.setObjectName(opt.name)
            widget.setToolTip(opt.help)
            label = QLabel(opt.label)
            form.addRow(label, widget)
            self.rows[opt.name] = (label, widget)
            self.widgets[opt.name] = widget
            setattr(self, self.NAMES.get(opt.name, opt.name), widget)
            if opt.name == "gpulayers":
                form.addRow("", self.gpu_layers_note)
            if opt.name == "parallel":
                form.addRow("", self.parallel_note)
            if opt.name == "splitmode":
                form.addRow("", self.split_note)
        self.state.subscribe(self._show)
        self._show(self.state)

    def _make(self, opt: Option) -> QWidget:
        if opt.name == "blasbatchsize":
            slider = BatchSlider()
            slider.blasChanged.connect(lambda b: self.state.edit(blasbatchsize=b))
            return slider
        if opt.choices:
            combo = _combo(opt)
            combo.currentIndexChanged.connect(
                lambda _i, o=opt, c=combo: self.state.edit(**{o.name: c.currentData()})
            )
            guard_wheel(combo)
            return combo
        spin = _spin(opt)
        spin.valueChanged.connect(lambda v, o=opt: self.state.edit(**{o.name: v}))
        guard_wheel(spin)
        return spin

    # -- the state's values, shown ------------------------------------------------------------
    def config(self) -> LaunchConfig:
        return self.state.config

    def set_config(self, config: LaunchConfig) -> None:
        self.state.set_config(config)

    def _show_gpu_settings(self) -> None:
        """Settings that only matter with a GPU are hidden when nothing can be offloaded: a
        CPU-only build with no GPUs to plan for as a what-if (remote machines' devices count:
        layers can go there). Shown until the build is known."""
        state = self.state
        offload = state.gpu_offload is not False or bool(state.assumed_gpus)
        visible = offload or bool(state.remote)
        for opt in OPTIONS:
            if opt.gpu_only and opt.name in self.rows:
                for w in self.rows[opt.name]:
                    w.setVisible(visible)
        self.gpu_layers_note.setVisible(visible)
        if not visible:
            self.split_note.setVisible(False)

    def _show(self, state: LaunchState) -> None:
        config = state.config
        for name, widget in self.widgets.items():
            value = getattr(config, name)
            widget.blockSignals(True)
            try:
                if isinstance(widget, BatchSlider):
                    widget.set_blas(value)
                elif isinstance(widget, QComboBox):
                    widget.setCurrentIndex(max(0, widget.findData(value)))
                elif isinstance(widget, QSpinBox) and widget.value() != value:
                    widget.setValue(value)
            finally:
                widget.blockSignals(False)
        self.widgets["ubatch"].setEnabled(config.batchpolicy == "custom")
        self._show_gpu_settings()
        self.batch.show_batch(state.batch)
        launch = state.resolved
        error = "" if self.split_note.refused else state.error or ""  # said beside the split
        self.gpu_layers_note.setText(launch.gpu_layers_note if launch else error)
        self.parallel_note.setText(_parallel_text(launch, state.info.n_vocab if state.info else 0))


def _parallel_text(launch: ResolvedLaunch | None, n_vocab: int) -> str:
    if launch is None:
        return ""
    n = launch.n_seq_max
    cost = f" {cost_note(n, n_vocab)}" if n > 1 else ""
    return f"{launch.parallel_note}. {sharing_note(n, launch.n_ctx_effective)}{cost}"
