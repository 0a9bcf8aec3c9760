"""Load, Cancel and Unload, wired: the load bar's buttons ask the engine; its answers become
the session's transitions (core/session.py: the buttons follow from there) and what the
window shows of the model that is in (the load bar's line, the title, the measured memory,
the machines in use, the benchmark's kept results)."""

from __future__ import annotations

from kobold_gui import __version__
from kobold_gui.core.engine.loaded_model import LoadedModel
from kobold_gui.core.llama.buffers import device_totals, parse_buffer_sizes
from kobold_gui.core.session import Activity, SessionState
from kobold_gui.core.units import human_bytes
from kobold_gui.ui.window.parts import WindowParts


def measured_text(loaded: LoadedModel) -> str:
    """llama.cpp's own buffer sizes per device, from its load log."""
    totals = device_totals(parse_buffer_sizes(loaded.log))
    return ", ".join(f"{name} {human_bytes(size)}" for name, size in totals.items()) or "—"


def loaded_text(loaded: LoadedModel, on_cpu: bool) -> str:
    return (
        f"Loaded {loaded.info.label} in {loaded.load_seconds:.1f} s · "
        f"context {loaded.n_ctx} · n_batch {loaded.n_batch} · n_ubatch {loaded.n_ubatch} "
        f"(read back from llama.cpp) · {human_bytes(loaded.info.file_size)}"
        + (" · on the CPU: this build cannot use the GPUs" if on_cpu else "")
    )


class LoadFlow:
    def __init__(self, window: WindowParts) -> None:
        self.window = window
        self.loaded: LoadedModel | None = None
        self._pending = False  # load as soon as the session allows
        session, engine, bar, launch = (
            window.session,
            window.engine_controller,
            window.load_bar,
            window.launch_state,
        )
        bar.follow(session, launch)
        launch.subscribe(lambda state: session.launch_changed(state.resolved is not None))
        bar.load_button.clicked.connect(self.load_model)
        bar.unload_button.clicked.connect(self.unload_model)
        bar.cancel_button.clicked.connect(engine.cancel_load)
        engine.loadProgress.connect(bar.set_progress)
        engine.loaded.connect(self._loaded)
        engine.loadFailed.connect(self._load_failed)
        engine.unloaded.connect(self._unloaded)
        engine.modelLost.connect(self._lost)

    def load_model(self) -> None:
        w = self.window
        launch = w.launch_state.resolved
        if launch is None or not w.session.load_started():
            return
        info = w.models.info  # this path's header, read off the GUI thread with its label
        w.load_bar.loading(info.label if info is not None else "")
        w.machines.set_in_use(launch.rpc_servers)  # their servers serve only this load now
        w.engine_controller.load(launch, w.models.info)

    def load_when_ready(self) -> None:
        """Load as soon as the model's header is read and the backend known (serving from
        the command line, as KoboldCPP does)."""
        self._pending = True
        self.window.session.subscribe(self._load_pending)

    def _load_pending(self, state: SessionState) -> None:
        if self._pending and state.can_load:
            self._pending = False
            self.window.session.unsubscribe(self._load_pending)
            self.load_model()

    def unload_model(self) -> None:
        if self.window.session.state.activity is Activity.REPLYING:
            self.window.engine_controller.stop()
        self.window.engine_controller.unload()

    # -- the engine's answers ---------------------------------------------------------------
    def _loaded(self, loaded: LoadedModel) -> None:
        w = self.window
        self.loaded = loaded
        w.session.load_finished()
        w.load_bar.done(loaded_text(loaded, bool(w.launch_state.assumed_gpus)))
        self._show_model(loaded)
        w.chat.n_ctx = loaded.n_ctx
        w.settings.remember(loaded.info.path, loaded.launch.config)
        w.gpu_monitor.poll_now()
        w.refresh_recent()
        w.save_settings()

    def _load_failed(self, message: str, cancelled: bool, still_loaded: LoadedModel | None) -> None:
        w = self.window
        self.loaded = still_loaded
        w.session.load_failed(still_loaded is not None)
        state = f"{still_loaded.info.label} stays loaded." if still_loaded else "No model loaded."
        w.load_bar.done(f"{message} {state}")
        self._show_model(still_loaded)
        if not cancelled:
            w.models.show_notice(message)

    def _unloaded(self) -> None:
        self.loaded = None
        self.window.session.unloaded()
        self.window.load_bar.done("No model loaded.")
        self._show_model(None)

    def _lost(self, reason: str) -> None:
        """The model went with its engine (a machine lost or frozen): the bar says why."""
        self.window.load_bar.done(f"No model loaded: {reason}.")

    def _show_model(self, loaded: LoadedModel | None) -> None:
        """The model that is in now (or none), wherever the window shows it."""
        w = self.window
        w.machines.set_in_use(loaded.launch.rpc_servers if loaded else ())  # checked again
        w.sweeps.model_loaded(loaded)
        w.split_editor.set_measured(measured_text(loaded) if loaded else "")
        name = f"{loaded.info.label} — " if loaded else ""
        w.setWindowTitle(f"{name}kobold-gui {__version__}")
