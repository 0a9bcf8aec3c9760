"""The batch-size sweep in the window: run it on the loaded model (worker thread, progress,
Cancel), see prompt speed, generation speed and memory against the batch size, one line per
policy, the seed rule's points marked and the measured policy's pick highlighted; hovering a
point shows its numbers. Results can be exported as CSV or JSON."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict

import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from kobold_gui.core.benchmark.estimate import duration_text
from kobold_gui.core.benchmark.results import (
    DEFAULT_GEN_TOKENS,
    DEFAULT_PROMPT_TOKENS,
    DEFAULT_REPEATS,
    DEFAULT_SHARE,
    SweepRow,
    measured_choice,
    merge_runs,
    rows_to_csv,
)
from kobold_gui.core.launch.batching import BLAS_STOPS, MeasuredChoice
from kobold_gui.core.session import SessionState
from kobold_gui.ui.common.wheel_guard import guard_wheel

STYLES = {  # kind -> (pen colour, symbol, legend name)
    "koboldcpp": ("#1a5fb4", "o", "KoboldCPP rule (seed)"),
    "tied": ("#e66100", "t", "tied (ubatch = batch)"),
    "pair": ("#613583", "s", "other pairs"),
}
PLOTS = (
    ("prompt_tps", "prompt tokens/s"),
    ("gen_tps", "generation tokens/s"),
    ("memory_mib", "compute + KV MiB"),
)


def _value(row: SweepRow, key: str) -> float:
    return row.memory_bytes / 2**20 if key == "memory_mib" else float(getattr(row, key))


class BenchmarkPanel(QWidget):
    runRequested = Signal(int, int)  # prompt tokens, generation steps
    cancelRequested = Signal()
    choiceChanged = Signal()  # the rows or the share changed: the measured choice with them

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[SweepRow] = []
        self.pick: SweepRow | None = None
        self.choice = MeasuredChoice((), "")
        self.expected = 0
        self._runs: dict[tuple[int, int], list[SweepRow]] = {}
        self._build_settings()
        self._build_controls()
        self._build_layout()
        self._connect()

    def _build_settings(self) -> None:
        """The sweep's settings: prompt length, steps, runs per pair, the share kept."""
        self.prompt = QSpinBox()
        self.prompt.setRange(16, 1 << 20)
        self.prompt.setValue(DEFAULT_PROMPT_TOKENS)
        self.gen = QSpinBox()
        self.gen.setRange(1, 4096)
        self.gen.setValue(DEFAULT_GEN_TOKENS)
        self.share = QDoubleSpinBox()
        self.share.setRange(10, 100)
        self.share.setValue(DEFAULT_SHARE * 100)
        self.share.setSuffix(" % of the best generation speed")
        self.repeats = QSpinBox()
        self.repeats.setRange(1, 20)
        self.repeats.setValue(DEFAULT_REPEATS)
        self.repeats.setToolTip(
            "Each pair is measured this many times, interleaved with the others; a pair is "
            "picked only when it is faster than the spread of its runs."
        )

    def _build_controls(self) -> None:
        """Run and Cancel, the progress and status lines, the export buttons."""
        self.run_button = QPushButton("Run sweep")
        self.run_button.setObjectName("runSweep")
        self.run_button.setEnabled(False)  # until a model is loaded
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.hide()
        self.status = QLabel(
            "Load a model, then run the sweep: each pair runs on a fresh "
            "context of the loaded model."
        )
        self.status.setObjectName("sweepStatus")
        self.status.setWordWrap(True)
        self.export_csv = QPushButton("Export CSV…")
        self.export_json = QPushButton("Export JSON…")
        for b in (self.export_csv, self.export_json):
            b.setEnabled(False)

    def _build_layout(self) -> None:
        form = QFormLayout()
        form.addRow("Prompt tokens", self.prompt)
        form.addRow("Generation steps", self.gen)
        form.addRow("Runs per pair", self.repeats)
        form.addRow("Measured policy keeps", self.share)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        exports = QHBoxLayout()
        exports.addWidget(self.export_csv)
        exports.addWidget(self.export_json)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        # The key sits above the plots, not on them: inside a plot it covered the points.
        self.legend = QLabel(
            "<small>"
            + " &nbsp; ".join(
                f"<span style='color:{color}'>● {name}</span>"
                for color, _s, name in STYLES.values()
            )
            + " &nbsp; ★ the measured policy's pick</small>"
        )
        self.legend.setWordWrap(True)
        layout.addWidget(self.legend)
        self._build_plots(layout)
        layout.addLayout(exports)
        layout.addStretch(1)

    def _build_plots(self, layout: QVBoxLayout) -> None:
        """One plot per measure, against n_batch on a log axis."""
        self.plots: dict[str, pg.PlotWidget] = {}
        for key, title in PLOTS:
            plot = pg.PlotWidget(title=title)
            plot.setBackground(None)
            plot.setFixedHeight(150)
            plot.setLogMode(x=True, y=False)
            plot.setLabel("bottom", "n_batch")
            plot.showGrid(x=True, y=True, alpha=0.2)
            # Ticks at the slider's stops (the log axis would label 2·10², 3·10², ...).
            ticks = [(math.log10(b), str(b)) for b in BLAS_STOPS if b >= 64]
            plot.getPlotItem().getAxis("bottom").setTicks([ticks, []])
            self.plots[key] = plot
            layout.addWidget(plot)

    def _connect(self) -> None:
        self.run_button.clicked.connect(
            lambda: self.runRequested.emit(self.prompt.value(), self.gen.value())
        )
        self.cancel_button.clicked.connect(self.cancelRequested)
        self.share.valueChanged.connect(lambda _v: self.set_rows(self.rows))
        for spin in (self.prompt, self.gen, self.share, self.repeats):
            guard_wheel(spin)
        self.export_csv.clicked.connect(self._export_csv)
        self.export_json.clicked.connect(self._export_json)

    # -- running --------------------------------------------------------------------------
    def started(self, count: int, repeats: int = 1) -> None:
        self.expected = count * repeats
        self._runs = {}
        self.progress.setRange(0, self.expected)
        self.progress.setValue(0)
        self.progress.setFormat("%v of %m runs · estimating the time…")
        self.progress.show()
        self._started = time.monotonic()
        self.status.setText(
            f"Measuring {count} (n_batch, n_ubatch) pairs, {repeats} runs each, interleaved; "
            "the model answers no chat until it ends (Cancel stops it)…"
        )
        self.set_rows([], running=True)

    def estimated(self, seconds: float) -> None:
        """The warm-up's estimate, before the first measured run."""
        if self.progress.value() <= 0:
            self.progress.setFormat(f"%v of %m runs · {duration_text(seconds)} in all")

    def add_run(self, index: int, run: SweepRow) -> None:
        """One run of one pair: plotted with the pair's runs so far; no pick until the end."""
        self.progress.setValue(index + 1)
        left = (time.monotonic() - self._started) / (index + 1) * (self.expected - index - 1)
        self.progress.setFormat(f"%v of %m runs · {duration_text(left)} left")
        self._runs.setdefault((run.n_batch, run.n_ubatch), []).append(run)
        self.set_rows([merge_runs(r) for r in self._runs.values()], running=True)

    def finished(self, rows: list[SweepRow]) -> None:
        self.progress.hide()
        self.set_rows(rows)
        done = sum(max(1, len(r.prompt_runs)) for r in rows)
        if done < self.expected:
            self.status.setText(
                f"Cancelled after {done} of {self.expected} runs. " + self.status.text()
            )

    def show_session(self, state: SessionState) -> None:
        """Run sweep while a model is loaded and nothing else runs on it; Cancel while a
        sweep runs (the window's session: core/session.py)."""
        self.run_button.setEnabled(state.can_benchmark)
        self.cancel_button.setEnabled(state.can_cancel_sweep)

    def set_model_ready(self, ready: bool) -> None:
        if not self.rows:
            self.status.setText(
                "Run the sweep: each pair runs several times, interleaved, on fresh contexts "
                "of the loaded model."
                if ready
                else "Load a model, then run the sweep: each pair runs on a fresh context of "
                "the loaded model."
            )

    # -- drawing ----------------------------------------------------------------------
    def share_value(self) -> float:
        return self.share.value() / 100

    def set_rows(self, rows: list[SweepRow], running: bool = False) -> None:
        self.rows = list(rows)
        self.choice = measured_choice(self.rows, self.share_value())
        pick = self.choice.pick
        self.pick = next((r for r in self.rows if (r.n_batch, r.n_ubatch) == pick), None)
        if running:
            self.pick = None
        else:
            if self.rows:
                self.status.setText(f"Measured policy: {self.choice.why}.")
            self.choiceChanged.emit()
        for b in (self.export_csv, self.export_json):
            b.setEnabled(bool(self.rows))
        for key, plot in self.plots.items():
            plot.clear()
            for kind, (color, symbol, name) in STYLES.items():
                points = sorted(
                    (r for r in self.rows if r.kind == kind and r.error is None),
                    key=lambda r: r.n_batch,
                )
                if not points:
                    continue
                xs = [r.n_batch for r in points]
                ys = [_value(r, key) for r in points]
                plot.plot(xs, ys, pen=pg.mkPen(color, width=1.5), name=name)
                plot.addItem(
                    pg.ScatterPlotItem(
                        x=[math.log10(x) for x in xs],
                        y=ys,
                        symbol=symbol,
                        size=8,
                        brush=pg.mkBrush(color),
                        hoverable=True,
                        data=points,
                        tip=lambda x, y, data: _tip(data),
                    )
                )
            if self.pick is not None:
                plot.addItem(
                    pg.ScatterPlotItem(
                        x=[math.log10(self.pick.n_batch)],
                        y=[_value(self.pick, key)],
                        symbol="star",
                        size=18,
                        brush=pg.mkBrush("#f6d32d"),
                        pen=pg.mkPen("#000"),
                        hoverable=True,
                        data=[self.pick],
                        tip=lambda x, y, data: "chosen: " + _tip(data),
                    )
                )

    # -- export -----------------------------------------------------------------------
    def _export_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export sweep", "sweep.csv", "CSV (*.csv)")
        if path:
            with open(path, "w", encoding="utf-8") as f:
                f.write(rows_to_csv(self.rows))

    def _export_json(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export sweep", "sweep.json", "JSON (*.json)")
        if path:
            with open(path, "w", encoding="utf-8") as f:
                json.dump(
                    {
                        "rows": [asdict(r) for r in self.rows],
                        "measured_policy": asdict(self.pick) if self.pick else None,
                        "why": self.choice.why,
                    },
                    f,
                    indent=2,
                )


def _tip(row: SweepRow) -> str:
    return (
        f"n_batch {row.n_batch}, n_ubatch {row.n_ubatch} ({row.kind})\n"
        f"prompt {row.prompt_tps:.0f} t/s, generation {row.gen_tps:.1f} t/s\n"
        f"first token {row.ttft_s * 1000:.0f} ms, compute + KV "
        f"{row.memory_bytes / 2**20:.0f} MiB"
    )
