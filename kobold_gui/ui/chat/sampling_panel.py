"""Sampling and generation settings of the open conversation, with presets and a reset."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
    QWidget,
)

from kobold_gui.core.engine.types import SamplingParams
from kobold_gui.ui.common.wheel_guard import guard_wheel

PRESETS: dict[str, SamplingParams] = {
    "balanced": SamplingParams(),
    "precise": SamplingParams(temperature=0.2, top_p=0.9, top_k=40, min_p=0.05),
    "creative": SamplingParams(
        temperature=1.0, top_p=0.98, top_k=100, min_p=0.02, repeat_penalty=1.05
    ),
}


# llama.cpp's other samplers, as the API takes them (core/engine/sampler.py builds the chain
# from the same fields): (field, label, lowest, highest, step); a step of 1 is a whole number.
# Each default leaves its sampler out of the chain.
MORE_SAMPLERS: tuple[tuple[str, str, float, float, float], ...] = (
    ("typical_p", "Typical-p", 0, 1, 0.01),
    ("top_n_sigma", "Top-n-sigma", 0, 10, 0.1),
    ("presence_penalty", "Presence penalty", -2, 2, 0.05),
    ("frequency_penalty", "Frequency penalty", -2, 2, 0.05),
    ("repeat_last_n", "Penalty range (tokens)", -1, 1 << 16, 1),
    ("dry_multiplier", "DRY multiplier", 0, 5, 0.05),
    ("dry_base", "DRY base", 1, 4, 0.05),
    ("dry_allowed_length", "DRY allowed length", 0, 64, 1),
    ("xtc_probability", "XTC probability", 0, 1, 0.01),
    ("xtc_threshold", "XTC threshold", 0, 1, 0.01),
    ("dynatemp_range", "Dynamic temperature ±", 0, 5, 0.05),
    ("mirostat", "Mirostat (0 off, 1, 2)", 0, 2, 1),
    ("mirostat_tau", "Mirostat tau", 0, 20, 0.1),
    ("mirostat_eta", "Mirostat eta", 0, 1, 0.01),
)


def params_from_dict(values: dict[str, Any] | None) -> SamplingParams:
    """Saved settings back into SamplingParams; unknown or bad values fall back to defaults.
    JSON gives lists where the fields hold tuples (stop strings, DRY breakers, ...)."""
    if not values:
        return SamplingParams()
    tuples = {f.name for f in fields(SamplingParams) if isinstance(f.default, tuple)}
    known = {k: v for k, v in values.items() if k in SamplingParams.__dataclass_fields__}
    for name in tuples & known.keys():
        items = known[name] if isinstance(known[name], (list, tuple)) else ()
        known[name] = tuple(tuple(i) if isinstance(i, list) else i for i in items)
    try:
        return replace(SamplingParams(), **known)
    except TypeError:
        return SamplingParams()


class SamplingPanel(QWidget):
    changed = Signal(object)  # SamplingParams

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.preset = QComboBox()
        guard_wheel(self.preset)
        self.preset.addItem("custom", "")
        for name in PRESETS:
            self.preset.addItem(name, name)
        self.reset = QPushButton("Reset")
        self.temperature = self._double(0, 5, 0.05)  # front-ends send up to 5
        self.top_p = self._double(0, 1, 0.01)
        self.top_k = self._int(0, 1000)
        self.min_p = self._double(0, 1, 0.01)
        self.repeat_penalty = self._double(0.5, 2, 0.01)
        self.max_tokens = self._int(1, 1 << 20)
        self.seed = self._int(-1, 2**31 - 1)
        self.seed.setSpecialValueText("random")
        self.stop = QLineEdit()
        self.stop.setPlaceholderText("stop strings, separated by |")
        top = QHBoxLayout()
        top.addWidget(self.preset, 1)
        top.addWidget(self.reset)
        form = QFormLayout(self)
        form.addRow("Preset", top)
        self.more = self._more_samplers()
        self.more_button = QToolButton()
        self.more_button.setText("More samplers (DRY, XTC, mirostat, …)")
        self.more_button.setCheckable(True)
        self.more_button.toggled.connect(self.more.setVisible)
        self.more.hide()
        for label, widget in (
            ("Temperature", self.temperature),
            ("Top-p", self.top_p),
            ("Top-k", self.top_k),
            ("Min-p", self.min_p),
            ("Repeat penalty", self.repeat_penalty),
            ("Max tokens", self.max_tokens),
            ("Seed", self.seed),
            ("Stop", self.stop),
        ):
            form.addRow(label, widget)
        form.addRow(self.more_button)
        form.addRow(self.more)
        self._base = SamplingParams()  # what the fields shown here leave as it was
        self._loading = False
        self.set_params(SamplingParams())
        self.preset.activated.connect(self._preset_chosen)
        self.defaults = SamplingParams()
        self.reset.clicked.connect(lambda: self._apply(self.defaults))
        for w in (self.temperature, self.top_p, self.min_p, self.repeat_penalty):
            w.valueChanged.connect(self._edited)
        for s in (self.top_k, self.max_tokens, self.seed, *self.extra.values()):
            s.valueChanged.connect(self._edited)
        self.grammar.editingFinished.connect(self._edited)
        self.stop.editingFinished.connect(self._edited)

    def _more_samplers(self) -> QWidget:
        """llama.cpp's other samplers, folded away: their defaults leave them out."""
        box = QWidget()
        form = QFormLayout(box)
        form.setContentsMargins(0, 0, 0, 0)
        self.extra: dict[str, QSpinBox | QDoubleSpinBox] = {}
        for name, label, lo, hi, step in MORE_SAMPLERS:
            widget = self._int(int(lo), int(hi)) if step == 1 else self._double(lo, hi, step)
            self.extra[name] = widget
            form.addRow(label, widget)
        self.grammar = QLineEdit()
        self.grammar.setPlaceholderText("GBNF grammar the reply must match (empty: none)")
        form.addRow("Grammar", self.grammar)
        return box

    @staticmethod
    def _double(lo: float, hi: float, step: float) -> QDoubleSpinBox:
        box = QDoubleSpinBox()
        box.setRange(lo, hi)
        box.setSingleStep(step)
        box.setDecimals(2)
        guard_wheel(box)
        return box

    @staticmethod
    def _int(lo: int, hi: int) -> QSpinBox:
        box = QSpinBox()
        box.setRange(lo, hi)
        guard_wheel(box)
        return box

    def params(self) -> SamplingParams:
        stops = tuple(s for s in self.stop.text().split("|") if s)
        extra: dict[str, Any] = {name: w.value() for name, w in self.extra.items()}
        return replace(
            self._base,
            **extra,
            grammar=self.grammar.text().strip(),
            max_tokens=self.max_tokens.value(),
            temperature=self.temperature.value(),
            top_k=self.top_k.value(),
            top_p=self.top_p.value(),
            min_p=self.min_p.value(),
            repeat_penalty=self.repeat_penalty.value(),
            seed=self.seed.value(),
            stop=stops,
        )

    def set_params(self, params: SamplingParams) -> None:
        self._loading = True
        self._base = params
        try:
            for name, widget in self.extra.items():
                widget.setValue(getattr(params, name))
            self.grammar.setText(params.grammar)
            self.temperature.setValue(params.temperature)
            self.top_p.setValue(params.top_p)
            self.top_k.setValue(params.top_k)
            self.min_p.setValue(params.min_p)
            self.repeat_penalty.setValue(params.repeat_penalty)
            self.max_tokens.setValue(params.max_tokens)
            self.seed.setValue(params.seed)
            self.stop.setText("|".join(params.stop))
        finally:
            self._loading = False
        self._show_preset(params)

    def set_defaults(self, defaults: SamplingParams) -> None:
        """What Reset goes back to: the model's recommended sampling, where it has one."""
        self.defaults = defaults

    def _show_preset(self, params: SamplingParams) -> None:
        name = next(
            (
                n
                for n, p in PRESETS.items()
                if replace(p, max_tokens=params.max_tokens, seed=params.seed, stop=params.stop)
                == params
            ),
            "",
        )
        self.preset.setCurrentIndex(max(0, self.preset.findData(name)))

    def _apply(self, params: SamplingParams) -> None:
        self.set_params(params)
        self.changed.emit(params)

    def _preset_chosen(self, index: int) -> None:
        name = self.preset.itemData(index)
        if name:
            current = self.params()
            self._apply(
                replace(
                    PRESETS[name],
                    max_tokens=current.max_tokens,
                    seed=current.seed,
                    stop=current.stop,
                )
            )

    def _edited(self, *_args: object) -> None:
        if self._loading:
            return
        params = self.params()
        self._show_preset(params)
        self.changed.emit(params)
