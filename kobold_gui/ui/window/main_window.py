"""The main window: composes the model, launch, plan, GPU, benchmark, chats and chat panels
and wires them to the launch state and the engine thread. It holds no inference logic and
no launch values of its own: those live in the launch state (core/launch/state.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtGui import (
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QKeySequence,
    QShortcut,
)
from PySide6.QtWidgets import (
    QMainWindow,
)

from kobold_gui import __version__
from kobold_gui.core.chats.store import ChatStore
from kobold_gui.core.engine.loaded_model import LoadedModel
from kobold_gui.core.engine.types import BackendInfo, GenerationResult, SamplingParams
from kobold_gui.core.hardware.ggml_devices import BackendDevice
from kobold_gui.core.hardware.nvml import GpuInventory, Inventory
from kobold_gui.core.kcpps.files import SUFFIXES as KCPPS_SUFFIXES
from kobold_gui.core.kcpps.files import KcppsImport
from kobold_gui.core.launch.options import LaunchConfig, rpc_endpoints
from kobold_gui.core.launch.resolve import ResolvedLaunch
from kobold_gui.core.launch.state import LaunchState
from kobold_gui.core.llama.buffers import device_totals, parse_buffer_sizes
from kobold_gui.core.models.files import default_model_path
from kobold_gui.core.models.gguf_info import GGUFInfo
from kobold_gui.core.settings import SettingsStore
from kobold_gui.core.units import human_bytes
from kobold_gui.ui.benchmark.controller import SweepController
from kobold_gui.ui.benchmark.panel import BenchmarkPanel
from kobold_gui.ui.chat.chat_panel import ChatPanel
from kobold_gui.ui.chat.controller import ConversationController
from kobold_gui.ui.chat.conversation_list import ConversationList
from kobold_gui.ui.chat.sampling_panel import SamplingPanel
from kobold_gui.ui.common.background import wait_for_background_jobs
from kobold_gui.ui.engine.controller import EngineController
from kobold_gui.ui.hardware.feed import HardwareFeed
from kobold_gui.ui.hardware.gpu_panel import GpuPanel
from kobold_gui.ui.hardware.gpu_poller import GpuMonitor
from kobold_gui.ui.hub.hook import open_find_model
from kobold_gui.ui.launch.launch_panel import LaunchPanel
from kobold_gui.ui.launch.load_bar import LoadBar
from kobold_gui.ui.launch.plan_view import SplitEditor
from kobold_gui.ui.machines.panel import MachinesPanel
from kobold_gui.ui.models.model_panel import ModelPanel
from kobold_gui.ui.server.panel import ServerPanel
from kobold_gui.ui.text.plan_summary import plan_summary
from kobold_gui.ui.window.layout import build_layout, remember_geometry, restore_geometry

CUDA_HINT = (
    "NVIDIA GPUs need a CUDA build of kobold-gui (from a source checkout: "
    "KOBOLD_GUI_BACKEND=cuda bash tools/dev.sh setup)."
)


def _measured_text(loaded: LoadedModel) -> str:
    """llama.cpp's own buffer sizes per device, from its load log."""
    totals = device_totals(parse_buffer_sizes(loaded.log))
    return ", ".join(f"{name} {human_bytes(size)}" for name, size in totals.items()) or "—"


class MainWindow(QMainWindow):
    def __init__(
        self,
        store: SettingsStore | None = None,
        initial_model: Path | None = None,
        initial_config: LaunchConfig | None = None,
        inventory: GpuInventory | None = None,
        initial_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.setWindowTitle(f"kobold-gui {__version__}")
        self.setAcceptDrops(True)
        self.store = store or SettingsStore()
        self.settings, settings_warning = self.store.load()
        self.loaded: LoadedModel | None = None
        self.loading = False
        self._pending_load = False
        self._closing = False
        self._initial_options = dict(initial_options or {})
        self.engine = EngineController(self)
        self.launch_state = LaunchState()

        self.models = ModelPanel()
        self.launch = LaunchPanel(self.launch_state)
        self.chat = ChatPanel()
        self.gpus = GpuPanel()
        self.split_editor = SplitEditor()
        self.benchmark = BenchmarkPanel()
        self.load_bar = LoadBar()
        self.load_button = self.load_bar.load_button
        self.unload_button = self.load_bar.unload_button
        self.cancel_button = self.load_bar.cancel_button
        self.progress = self.load_bar.progress
        self.load_status = self.load_bar.status
        self.chats = ChatStore()
        self.chat_list = ConversationList()
        self.sampling_panel = SamplingPanel()
        self.server_panel = ServerPanel(self.engine.worker)  # the local API, on the same engine
        self.machines = MachinesPanel(self.launch_state, self.settings.machines)
        self.machines.want(rpc_endpoints(str(self._initial_options.get("rpc", ""))))
        self.conversations = ConversationController(
            self.chat,
            self.chat_list,
            self.sampling_panel,
            self.chats,
            say=lambda text: self.statusBar().showMessage(text, 10000),
            default_system_prompt=lambda: self.settings.system_prompt,
            parent=self,
        )
        self.sweeps = SweepController(
            self.benchmark,
            self.engine,
            self.launch_state,
            self.launch.batch,
            machine=lambda: (self.hardware.inventory, self.hardware.backend),
            parent=self,
        )
        self.chat.system_prompt.setText(self.settings.system_prompt)
        layout = build_layout(
            self,
            side=[
                ("Model", self.models),
                ("Launch settings", self.launch),
                ("Memory plan (before loading)", self.split_editor),
            ],
            chats=(self.chat_list, self.sampling_panel),
            tabs=[("GPUs", self.gpus), ("Machines", self.machines), ("Benchmark", self.benchmark)],
            plain_tabs=[("Server", self.server_panel)],
            load_bar=self.load_bar,
            chat=self.chat,
        )
        self.tabs, self.chats_tab = layout.tabs, layout.chats_tab
        self.splitter, self.backend_label = layout.splitter, layout.backend_label
        restore_geometry(self, self.splitter, self.settings)
        self._connect()
        self.launch_state.subscribe(self._launch_changed)
        self.hardware = HardwareFeed(
            self.launch_state, self.gpus, self.launch, paused=lambda: self.loading, parent=self
        )
        self.hardware.backendReady.connect(self._backend_ready)
        self.hardware.backendReady.connect(lambda _b: self.machines.share.set_devices(self.devices))
        self.hardware.backendFailed.connect(lambda e: self.backend_label.setText(f"Backend: {e}"))
        self.models.kcpps.launch_source = lambda: (self.launch_config(), self.models.current)

        self.default_model = default_model_path()
        self._refresh_recent()
        if self.settings.models_folder:
            self.models.set_folder(self.settings.models_folder)
        first = initial_model or self._first_model()
        if first is not None:
            self.choose_model(first, initial_config)
        else:
            self.models.show_notice(
                "No model yet. Open… a .gguf file you have (or drop it here), or Find a model "
                "on Hugging Face: it shows which ones fit this computer before you download."
            )
        if settings_warning:
            self.statusBar().showMessage(settings_warning, 15000)
        self.statusBar().addPermanentWidget(self.conversations.notice)
        self.conversations.library.open_last()
        self.gpu_monitor = GpuMonitor(inventory or GpuInventory(), parent=self)
        self.gpu_monitor.snapshot.connect(self.hardware.inventory_updated)

    # -- layout -----------------------------------------------------------------------
    def _connect(self) -> None:
        self.models.modelChosen.connect(self.choose_model)
        self.models.infoReady.connect(self._info_ready)
        self.models.infoFailed.connect(self._info_failed)
        self.models.folderChosen.connect(self._folder_chosen)
        self.models.kcppsImported.connect(self._kcpps_imported)
        self.gpus.selectionChanged.connect(
            lambda gpus, main: self.launch_state.edit(gpus=gpus, maingpu=main)
        )
        self.split_editor.splitChanged.connect(
            lambda split: self.launch_state.edit(tensor_split=split)
        )
        self.sweeps.busyChanged.connect(self._sweep_busy)
        self.machines.changed.connect(self._save_settings)
        self.machines.share.restore(self.settings.share)
        self.machines.share.settingsChanged.connect(self._save_settings)
        self.machines.devicesChanged.connect(self._remote_devices_changed)
        self.models.find_button.clicked.connect(lambda: open_find_model(self))
        self.engine.text.connect(self.conversations.reply_text)
        for keys, action in (
            ("Ctrl+R", self.conversations.regenerate),
            ("Esc", self.chat.stop),
            ("Ctrl+N", self.chat.new_chat),
            ("Ctrl+F", self._focus_search),
        ):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.activated.connect(action)
        self.load_button.clicked.connect(self.load_model)
        self.unload_button.clicked.connect(self.unload_model)
        self.cancel_button.clicked.connect(self.engine.cancel_load)
        w = self.engine
        w.loadProgress.connect(self.load_bar.set_progress)
        w.loaded.connect(self._loaded)
        w.loadFailed.connect(self._load_failed)
        w.unloaded.connect(self._unloaded)
        w.replyFinished.connect(self._reply_finished)
        w.replyFailed.connect(self._reply_failed)
        self.conversations.replyRequested.connect(self._send)
        self.chat.stopRequested.connect(self.engine.stop)

    # -- model choice -------------------------------------------------------------------
    def _first_model(self) -> Path | None:
        for recent in self.settings.recent:
            if Path(recent.path).is_file():
                return Path(recent.path)
        return self.default_model

    def _refresh_recent(self) -> None:
        self.models.set_recent([Path(r.path) for r in self.settings.recent], self.default_model)

    def choose_model(self, path: Path, config: LaunchConfig | None = None) -> None:
        """Show a model and its launch settings: those given, else the ones it was last
        loaded with; options from the command line apply on top, to the first model."""
        config = config or self.settings.launch_for(path)
        if self._initial_options:
            config = config.with_values(**self._initial_options)
            self._initial_options = {}
        self.split_editor.show_split(config.tensor_split)
        self.gpus.set_selection(config.gpus, config.maingpu)
        self.launch_state.set_model(Path(path), None)
        self.launch_state.set_config(config)
        self.models.show_model(Path(path))

    def _info_ready(self, info: GGUFInfo) -> None:
        self.launch_state.set_model(info.path, info)
        self.conversations.model_chosen(info)

    def _info_failed(self, message: str) -> None:
        self.launch_state.set_model(None, None)
        state = f" {self.loaded.info.path.name} stays loaded." if self.loaded else ""
        self.statusBar().showMessage(f"{message}.{state}", 15000)

    def _kcpps_imported(self, result: KcppsImport, path: Path) -> None:
        """A KoboldCPP settings file: its launch (and model); the panel lists what was left."""
        model = result.model or self.models.current
        if model is not None:
            self.choose_model(model, result.config)
        self.statusBar().showMessage(result.summary(path.name), 30000)

    def _folder_chosen(self, folder: str) -> None:
        self.settings.models_folder = folder
        self._save_settings()

    def launch_config(self) -> LaunchConfig:
        return self.launch_state.config

    def current_launch(self) -> ResolvedLaunch | None:
        """The launch for the chosen model and settings; None when there is nothing to load
        (the reason is shown beside the GPU layers)."""
        return self.launch_state.resolved

    def _launch_changed(self, state: LaunchState) -> None:
        launch = state.resolved
        self.split_editor.set_plan(
            launch.plan if launch else None,
            plan_summary(launch, bool(state.assumed_gpus)) if launch else state.error or "",
        )
        plan = launch.plan if launch else None
        over = list(plan.messages) if plan is not None and not plan.fits else None
        self.load_bar.show_loadable(launch is not None and not self._busy(), over)

    def _remote_devices_changed(self) -> None:
        """A machine came, went or dropped: a split typed for the old devices goes back to
        automatic (by free memory)."""
        if self.launch_state.config.tensor_split:
            self.split_editor.show_split("")
            self.launch_state.edit(tensor_split="")
            self.statusBar().showMessage("The devices changed: the split is automatic again.")

    def _busy(self) -> bool:
        busy = self.loading or self.chat.streaming or self.sweeps.running
        return busy or self.hardware.backend is None

    def _update_launch_preview(self) -> None:
        self._launch_changed(self.launch_state)

    # The machine, as the hardware feed knows it (other windows and tests read it here).
    @property
    def backend(self) -> BackendInfo | None:
        return self.hardware.backend

    @property
    def devices(self) -> list[BackendDevice]:
        return self.hardware.devices

    @property
    def inventory(self) -> Inventory:
        return self.hardware.inventory

    def _backend_ready(self, backend: BackendInfo) -> None:
        text = f"llama.cpp backend: {backend.name} (llama-cpp-python {backend.llama_cpp_python})"
        if not backend.gpu_offload:
            text += f". This build cannot offload to a GPU. {CUDA_HINT}"
        self.backend_label.setText(text)

    # -- dropping a file ------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        urls = event.mimeData().urls()
        if urls and urls[0].isLocalFile():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        urls = event.mimeData().urls()
        if urls and urls[0].isLocalFile():
            path = Path(urls[0].toLocalFile())
            if path.suffix.lower() in KCPPS_SUFFIXES:  # KoboldCPP settings, as KoboldCPP does
                self.models.kcpps.import_file(path)
            else:
                self.choose_model(path)
            event.acceptProposedAction()

    # -- loading ----------------------------------------------------------------------
    def load_model(self) -> None:
        launch = self.current_launch()
        if launch is None or self._busy():
            return
        self.loading = True
        self.chat.set_model_ready(False)
        self.load_bar.loading(launch.model_path.name if launch.model_path else "")
        self.machines.set_in_use(launch.rpc_servers)  # their servers serve only this load now
        self.engine.load(launch, self.models.info)

    def load_when_ready(self) -> None:
        """Load as soon as the model's header is read and the backend known (serving from
        the command line, as KoboldCPP does)."""

        def attempt(state: LaunchState) -> None:
            if self._pending_load and state.resolved is not None and not self._busy():
                self._pending_load = False
                self.load_model()

        self._pending_load = True
        self.launch_state.subscribe(attempt)
        attempt(self.launch_state)

    def _loaded(self, loaded: LoadedModel) -> None:
        self.loading = False
        self.loaded = loaded
        self.machines.set_in_use(loaded.launch.rpc_servers)
        self.load_bar.done(
            f"Loaded {loaded.info.path.name} in {loaded.load_seconds:.1f} s · "
            f"context {loaded.n_ctx} · n_batch {loaded.n_batch} · n_ubatch {loaded.n_ubatch} "
            f"(read back from llama.cpp) · {human_bytes(loaded.info.file_size)}"
            + (
                " · on the CPU: this build cannot use the GPUs"
                if self.launch_state.assumed_gpus
                else ""
            ),
            model_loaded=True,
        )
        self.chat.set_model_ready(True)
        self.setWindowTitle(f"{loaded.info.path.name} — kobold-gui {__version__}")
        self.settings.remember(loaded.info.path, loaded.launch.config)
        self.chat.n_ctx = loaded.n_ctx
        self.sweeps.model_loaded(loaded)
        self.split_editor.set_measured(_measured_text(loaded))
        self.gpu_monitor.poll_now()
        self._refresh_recent()
        self._save_settings()
        self._update_launch_preview()

    def _load_failed(self, message: str, cancelled: bool, still_loaded: LoadedModel | None) -> None:
        self.loading = False
        self.loaded = still_loaded
        self.machines.set_in_use(still_loaded.launch.rpc_servers if still_loaded else ())
        state = (
            f"{still_loaded.info.path.name} stays loaded." if still_loaded else "No model loaded."
        )
        self.load_bar.done(f"{message} {state}", model_loaded=still_loaded is not None)
        self.chat.set_model_ready(still_loaded is not None)
        self.sweeps.model_loaded(still_loaded)
        self._update_launch_preview()
        if not cancelled:
            self.models.show_notice(message)

    def unload_model(self) -> None:
        if self.chat.streaming:
            self.engine.stop()
        self.engine.unload()

    def _unloaded(self) -> None:
        self.loaded = None
        self.machines.set_in_use(())  # checked again: one may have dropped
        self.sweeps.model_loaded(None)
        self.split_editor.set_measured("")
        self.chat.set_model_ready(False)
        self.load_bar.done("No model loaded.", model_loaded=False)
        self.setWindowTitle(f"kobold-gui {__version__}")
        self._update_launch_preview()

    # -- chat -------------------------------------------------------------------------
    def _focus_search(self) -> None:
        self.tabs.setCurrentWidget(self.chats_tab)
        self.chat_list.search.setFocus()

    def _send(self, messages: list[object]) -> None:
        self.conversations.begin_turn(str(self.loaded.info.path) if self.loaded else None)
        self.load_button.setEnabled(False)
        self.unload_button.setEnabled(False)
        self.engine.send(messages, self.sampling)  # type: ignore[arg-type]

    @property
    def sampling(self) -> SamplingParams:
        """The open conversation's sampling, as replies are asked with."""
        return self.conversations.sampling

    @sampling.setter
    def sampling(self, params: SamplingParams) -> None:
        """Set from code (the panel shows it and the conversation keeps it)."""
        self.sampling_panel.set_params(params)
        self.conversations.set_sampling(params)

    def _reply_finished(self, result: GenerationResult) -> None:
        self.conversations.reply_finished(result)
        self.unload_button.setEnabled(self.loaded is not None)
        self._update_launch_preview()

    def _reply_failed(self, message: str) -> None:
        self.conversations.reply_failed(message)
        self.unload_button.setEnabled(self.loaded is not None)
        self._update_launch_preview()

    def _sweep_busy(self, running: bool) -> None:
        self.chat.set_model_ready(self.loaded is not None and not running)
        self.unload_button.setEnabled(self.loaded is not None and not running)
        self._update_launch_preview()

    # -- settings and closing ---------------------------------------------------------------
    def _save_settings(self) -> None:
        self.settings.system_prompt = self.chat.system_prompt.text()
        self.settings.machines = self.machines.saved()
        self.settings.share = self.machines.share.saved()
        remember_geometry(self, self.splitter, self.settings)
        try:
            self.store.save(self.settings)
        except OSError as e:
            self.statusBar().showMessage(f"Settings not saved: {e}", 10000)

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._closing:
            self._closing = True
            self._save_settings()
            self.gpu_monitor.stop()
            self.server_panel.shutdown()
            self.machines.shutdown()
            self.engine.shutdown()
            self.conversations.shutdown()
            wait_for_background_jobs()
        event.accept()
