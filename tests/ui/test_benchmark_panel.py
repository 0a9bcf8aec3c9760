"""The sweep in the window: plots from recorded rows, a real sweep on the loaded model with
progress, Cancel, kept results and the slider's measured label."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from kobold_gui.core.benchmark.estimate import CPU_PROMPT_TOKENS, CPU_SIZES
from kobold_gui.core.benchmark.results import SweepRow
from kobold_gui.core.engine.types import SamplingParams
from kobold_gui.ui.benchmark.panel import BenchmarkPanel, _tip
from tests.conftest import HANG_GUARD_MS

MiB = 1 << 20
ROWS = [
    SweepRow(512, 512, "koboldcpp", 10900, 272, 0.7, 290 * MiB, 0),
    SweepRow(2048, 1024, "koboldcpp", 11500, 277, 0.7, 581 * MiB, 0),
    SweepRow(2048, 2048, "tied", 11850, 276, 0.7, 1162 * MiB, 0),
]


def test_plots_mark_the_policies_and_the_pick(qtbot: QtBot) -> None:
    panel = BenchmarkPanel()
    qtbot.addWidget(panel)
    panel.set_rows(ROWS)
    assert panel.pick is not None and (panel.pick.n_batch, panel.pick.n_ubatch) == (2048, 2048)
    assert "Measured policy: n_batch 2048, n_ubatch 2048" in panel.status.text()
    import pyqtgraph as pg

    items = panel.plots["prompt_tps"].getPlotItem().listDataItems()
    lines = [i for i in items if isinstance(i, pg.PlotDataItem)]
    stars = [i for i in items if isinstance(i, pg.ScatterPlotItem) and i.opts["symbol"] == "star"]
    assert len(lines) == 2 and len(stars) == 1  # a line per policy present, the pick marked
    assert panel.export_csv.isEnabled()
    assert "prompt 11850 t/s" in _tip(ROWS[2]) and "n_ubatch 2048 (tied)" in _tip(ROWS[2])
    panel.share.setValue(100)  # only pairs at the very best generation speed
    assert panel.pick is not None and panel.pick.n_ubatch == 1024


def test_sweep_on_the_loaded_model_with_cancel_and_kept_results(
    qtbot: QtBot, tiny_model: Path
) -> None:
    from kobold_gui.ui.window.main_window import MainWindow

    window = MainWindow(initial_model=tiny_model)
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.load_button.isEnabled(), timeout=HANG_GUARD_MS)
    assert not window.benchmark.run_button.isEnabled()  # nothing loaded yet
    with qtbot.waitSignal(window.engine_controller.loaded, timeout=HANG_GUARD_MS):
        window.load_model()
    bench = window.benchmark
    # A CPU-only launch gets a sweep that fits it: fewer pairs, a shorter prompt.
    assert bench.prompt.value() == CPU_PROMPT_TOKENS
    bench.prompt.setValue(256)
    bench.gen.setValue(4)
    bench.repeats.setValue(2)
    shown: list[tuple[int, str]] = []  # what the bar said when the estimate came
    window.engine_controller.sweepEstimate.connect(
        lambda _s: shown.append((bench.progress.value(), bench.progress.format()))
    )
    with qtbot.waitSignal(window.engine_controller.sweepFinished, timeout=HANG_GUARD_MS) as done:
        qtbot.mouseClick(bench.run_button, Qt.MouseButton.LeftButton)
        assert not window.chat.send_button.isEnabled() and bench.cancel_button.isEnabled()
    rows = done.args[0]
    # The warm-up's estimate is shown before the first run is measured.
    assert shown and shown[0][0] <= 0 and " in all" in shown[0][1], shown
    assert [r.n_batch for r in rows] == list(CPU_SIZES)
    assert all(r.prompt_tps > 0 and len(r.prompt_runs) == 2 for r in rows)
    assert "left" in bench.progress.format()  # the time left, from the runs so far
    assert "measured:" in window.launch.batch.effective_label.text()
    # The pick (or "no measurable difference") is what the launch state uses.
    assert window.launch_state.measured == bench.choice and bench.choice.why

    # Cancel part-way: fewer rows, and the model still answers.
    with qtbot.waitSignal(window.engine_controller.sweepFinished, timeout=HANG_GUARD_MS) as done:
        bench.prompt.setValue(3000)
        qtbot.mouseClick(bench.run_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: len(bench.rows) >= 1, timeout=HANG_GUARD_MS)
        qtbot.mouseClick(bench.cancel_button, Qt.MouseButton.LeftButton)
    assert len(done.args[0]) < len(CPU_SIZES) and "Cancelled" in bench.status.text()
    window.sampling = SamplingParams(max_tokens=4)
    with qtbot.waitSignal(window.engine_controller.replyFinished, timeout=HANG_GUARD_MS):
        window.chat.input.setPlainText("still there?")
        window.chat.send()
    window.close()

    # A new window finds the first sweep again for the same model and settings.
    again = MainWindow(initial_model=tiny_model)
    qtbot.addWidget(again)
    qtbot.waitUntil(lambda: again.load_button.isEnabled(), timeout=HANG_GUARD_MS)
    with qtbot.waitSignal(again.engine_controller.loaded, timeout=HANG_GUARD_MS):
        again.load_model()
    assert len(again.benchmark.rows) >= 1
    again.close()
