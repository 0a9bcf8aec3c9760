"""The Benchmark tab's sweep, wired: it runs on the engine thread, its results are kept per
machine, model and settings, and the measured policy's choice goes to the launch state (the
one place the batch label and the load read it from). Whether a sweep may run, and that one
runs, is the window's session (core/session.py)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from kobold_gui.core.benchmark.estimate import SweepSize, default_sweep
from kobold_gui.core.benchmark.results import (
    SweepRow,
    candidates_from,
    load_sweep,
    measured_choice,
    save_sweep,
    sweep_identity,
)
from kobold_gui.core.benchmark.split_modes import best_result, load_comparison, save_comparison
from kobold_gui.core.engine.loaded_model import LoadedModel
from kobold_gui.core.hardware.nvml import Inventory
from kobold_gui.core.launch.state import LaunchState
from kobold_gui.core.llama.types import BackendInfo
from kobold_gui.core.session import Session
from kobold_gui.ui.benchmark.panel import BenchmarkPanel
from kobold_gui.ui.engine.controller import EngineController
from kobold_gui.ui.launch.batch_slider import BatchSlider


class SweepController(QObject):
    # The split modes measured for the loaded model (a SplitComparison, or None): for the
    # note beside the split mode (ui/launch/split_note.py).
    splitMeasured = Signal(object)

    def __init__(
        self,
        panel: BenchmarkPanel,
        engine: EngineController,
        state: LaunchState,
        slider: BatchSlider,
        session: Session,
        machine: Callable[[], tuple[Inventory, BackendInfo | None]],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.panel, self.engine_controller, self.state, self.slider = panel, engine, state, slider
        self.machine = machine  # the GPUs and llama.cpp build now: what results are kept by
        self.session = session
        self.loaded: LoadedModel | None = None
        panel.runRequested.connect(self.run)
        panel.cancelRequested.connect(engine.stop)
        panel.choiceChanged.connect(self._publish)
        engine.sweepRow.connect(panel.add_run)
        engine.sweepEstimate.connect(panel.estimated)
        engine.sweepFinished.connect(self._finished)
        session.subscribe(panel.show_session)

    def model_loaded(self, loaded: LoadedModel | None) -> None:
        """Show the results kept for this model and these settings (or none)."""
        self.loaded = loaded
        self.panel.set_model_ready(loaded is not None)
        if loaded is not None:  # a CPU-only launch: a shorter prompt (and fewer pairs)
            self.panel.prompt.setValue(self._size().prompt_tokens)
        identity = self._identity()
        self.panel.set_rows((load_sweep(identity) if identity else None) or [])
        self.splitMeasured.emit(load_comparison(identity) if identity else None)

    def run(self, prompt: int, gen: int, can_run: bool = True) -> None:
        loaded = self.loaded
        if loaded is None or not self.session.state.can_benchmark:
            self.panel.status.setText("Load a model first (and let a reply finish).")
            return
        prompt = min(prompt, loaded.n_ctx - gen - 2)
        inventory, _backend = self.machine()
        sizes = self._size().blas_sizes
        candidates = [
            c
            for c in candidates_from(sizes, n_gpus=len(inventory.gpus))
            if c.n_batch <= loaded.n_ctx
        ]
        if prompt < 16 or not candidates:
            self.panel.status.setText("The context is too small for a sweep.")
            return
        self.session.sweep_started()
        repeats = self.panel.repeats.value()
        self.panel.started(len(candidates), repeats)
        self.engine_controller.sweep(candidates, prompt, gen, repeats)

    def _size(self) -> SweepSize:
        launch = self.loaded.launch if self.loaded else None
        on_cpu = launch is None or (launch.n_gpu_layers == 0 and not launch.rpc_servers)
        return default_sweep(on_cpu)

    def _finished(self, rows: list[SweepRow]) -> None:
        self.session.sweep_ended()
        self.panel.finished(rows)
        identity = self._identity()
        if identity and rows and self.loaded is not None:
            save_sweep(identity, rows)
            best = best_result(self.loaded.launch.config.splitmode, rows)
            if best is not None:  # this mode's side of the split modes' comparison
                save_comparison(identity, [best])
                self.splitMeasured.emit(load_comparison(identity))

    def _identity(self) -> dict[str, object] | None:
        inventory, backend = self.machine()
        if self.loaded is None or backend is None:
            return None
        return sweep_identity(inventory, backend, self.loaded.launch)

    def _publish(self) -> None:
        """The panel's rows (kept or measured) and share, to the slider and the launch."""
        rows = self.panel.rows
        self.slider.set_measured(
            {
                r.n_batch: (r.prompt_tps, r.gen_tps)
                for r in rows
                if r.kind == "koboldcpp" and r.error is None
            }
        )
        self.state.set_measured(measured_choice(rows, self.panel.share_value()) if rows else None)
