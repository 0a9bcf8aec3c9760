"""The main window: builds the model, launch, plan, GPU, benchmark, chats, chat, server and
machines panels, lays them out, and wires them. It holds no inference logic and no state of
its own: the launch values live in the launch state (core/launch/state.py), what the window
is doing with its model in the session (core/session.py); the panels follow those
themselves. The flows are wired in load_flow.py, chat_flow.py and wiring.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QMainWindow

from kobold_gui import __version__
from kobold_gui.core.chats.store import ChatStore
from kobold_gui.core.engine.loaded_model import LoadedModel
from kobold_gui.core.engine.types import SamplingParams
from kobold_gui.core.hardware.ggml_devices import BackendDevice
from kobold_gui.core.hardware.nvml import GpuInventory, Inventory
from kobold_gui.core.kcpps.files import SUFFIXES as KCPPS_SUFFIXES
from kobold_gui.core.launch.options import LaunchConfig
from kobold_gui.core.launch.resolve import ResolvedLaunch
from kobold_gui.core.launch.state import LaunchState
from kobold_gui.core.llama.types import BackendInfo
from kobold_gui.core.models.files import default_model_path
from kobold_gui.core.session import Session
from kobold_gui.core.settings import SettingsStore
from kobold_gui.ui.benchmark.controller import SweepController
from kobold_gui.ui.benchmark.panel import BenchmarkPanel
from kobold_gui.ui.chat.chat_panel import ChatPanel
from kobold_gui.ui.chat.controller import ConversationController
from kobold_gui.ui.chat.conversation_list import ConversationList
from kobold_gui.ui.chat.sampling_panel import SamplingPanel
from kobold_gui.ui.common.background import wait_for_background_jobs
from kobold_gui.ui.common.wheel_guard import install_wheel_guard
from kobold_gui.ui.engine.controller import EngineController
from kobold_gui.ui.hardware.gpu_panel import GpuPanel
from kobold_gui.ui.hardware.gpu_poller import GpuMonitor
from kobold_gui.ui.hardware.what_if import WhatIfGpus
from kobold_gui.ui.launch.launch_panel import LaunchPanel
from kobold_gui.ui.launch.load_bar import LoadBar
from kobold_gui.ui.launch.plan_view import SplitEditor
from kobold_gui.ui.machines.panel import MachinesPanel
from kobold_gui.ui.models.model_panel import ModelPanel
from kobold_gui.ui.server.panel import ServerPanel
from kobold_gui.ui.window.chat_flow import ChatFlow, add_shortcuts
from kobold_gui.ui.window.layout import build_layout, remember_geometry, restore_geometry
from kobold_gui.ui.window.load_flow import LoadFlow
from kobold_gui.ui.window.quit_guard import QuitGuard
from kobold_gui.ui.window.wiring import watch_hardware, wire_machines, wire_models, wire_server

NO_MODEL_NOTICE = (
    "No model yet. Open… a .gguf file you have (or drop it here), or Find a model "
    "on Hugging Face: it shows which ones fit this computer before you download."
)


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
        install_wheel_guard()  # before any control is made: every one is guarded
        self.setWindowTitle(f"kobold-gui {__version__}")
        self.setAcceptDrops(True)
        self.store = store or SettingsStore()
        self.settings, settings_warning = self.store.load()
        self._closing = False
        self._initial_options = dict(initial_options or {})
        self.session = Session()
        self.launch_state = LaunchState()
        self.engine_controller = EngineController(self)
        self._build_panels()
        self._build_controllers()
        self._lay_out()
        self.loads = LoadFlow(self)
        self.replies = ChatFlow(self)
        add_shortcuts(self, self)
        wire_models(self)
        wire_machines(self)
        wire_server(self)
        self.hardware = watch_hardware(self, self)
        self._show_first_model(initial_model, initial_config)
        if settings_warning:
            self.statusBar().showMessage(settings_warning, 15000)
        self.statusBar().addPermanentWidget(self.conversations.notice)
        self.statusBar().addPermanentWidget(self.conversations.edit_undo)
        self.conversations.library.open_last()
        real = inventory or GpuInventory()
        self.watch_gpus(real)
        self.what_if = WhatIfGpus(self.gpus, self.watch_gpus, lambda: real, self)
        self.quit_guard = QuitGuard(self, self.serving_others)

    # -- building -------------------------------------------------------------------------
    def _build_panels(self) -> None:
        state = self.launch_state
        self.models = ModelPanel()
        self.launch = LaunchPanel(state)
        self.chat = ChatPanel()
        self.chat.system_prompt.setText(self.settings.system_prompt)
        self.gpus = GpuPanel(state)
        self.split_editor = SplitEditor(state)
        self.benchmark = BenchmarkPanel()
        self.load_bar = bar = LoadBar()
        self.load_button, self.unload_button = bar.load_button, bar.unload_button
        self.cancel_button, self.progress, self.load_status = (
            bar.cancel_button,
            bar.progress,
            bar.status,
        )
        self.chat_list = ConversationList()
        self.sampling_panel = SamplingPanel()
        self.server_panel = ServerPanel(
            self.engine_controller.worker
        )  # the local API, on the same engine
        self.machines = MachinesPanel(state, self.settings.machines)
        self.machines.want(self._initial_options.get("rpc", ()))

    def _build_controllers(self) -> None:
        self.chats = ChatStore()
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
            self.engine_controller,
            self.launch_state,
            self.launch.batch,
            self.session,
            machine=lambda: (self.hardware.inventory, self.hardware.backend),
            parent=self,
        )
        self.sweeps.splitMeasured.connect(self.launch.split_note.set_comparison)

    def _lay_out(self) -> None:
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

    # -- the model ----------------------------------------------------------------------
    def _show_first_model(self, path: Path | None, config: LaunchConfig | None) -> None:
        """The one given, else the most recent one still there, else the built-in one."""
        self.default_model = default_model_path()
        self.refresh_recent()
        if self.settings.models_folder:
            self.models.set_folder(self.settings.models_folder)
        recent = (Path(r.path) for r in self.settings.recent)
        first = path or next((p for p in recent if p.is_file()), self.default_model)
        if first is not None:
            self.choose_model(first, config)
        else:
            self.models.show_notice(NO_MODEL_NOTICE)

    def refresh_recent(self) -> None:
        self.models.set_recent([Path(r.path) for r in self.settings.recent], self.default_model)

    def choose_model(self, path: Path, config: LaunchConfig | None = None) -> None:
        """Show a model and its launch settings: those given, else the ones it was last
        loaded with; options from the command line apply on top, to the first model. The
        GPU choice and the split editor follow the launch state."""
        config = config or self.settings.launch_for(path)
        if self._initial_options:
            config = config.with_values(**self._initial_options)
            self._initial_options = {}
        self.launch_state.set_model(Path(path), None)
        self.launch_state.set_config(config)
        self.models.show_model(Path(path))

    def launch_config(self) -> LaunchConfig:
        return self.launch_state.config

    def current_launch(self) -> ResolvedLaunch | None:
        """The launch for the chosen model and settings; None when there is nothing to load
        (the reason is shown beside the GPU layers)."""
        return self.launch_state.resolved

    # -- loading and chatting (load_flow.py, chat_flow.py) ---------------------------------------
    def load_model(self) -> None:
        self.loads.load_model()

    def load_when_ready(self) -> None:
        self.loads.load_when_ready()

    @property
    def loaded(self) -> LoadedModel | None:
        return self.loads.loaded

    @property
    def sampling(self) -> SamplingParams:
        """The open conversation's sampling, as replies are asked with."""
        return self.conversations.sampling

    @sampling.setter
    def sampling(self, params: SamplingParams) -> None:
        """Set from code (the panel shows it and the conversation keeps it)."""
        self.sampling_panel.set_params(params)
        self.conversations.set_sampling(params)

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

    # -- settings and closing ---------------------------------------------------------------
    def save_settings(self) -> None:
        self.settings.system_prompt = self.chat.system_prompt.text()
        self.settings.machines = self.machines.saved()
        self.settings.share = self.machines.share.saved()
        remember_geometry(self, self.splitter, self.settings)
        try:
            self.store.save(self.settings)
        except OSError as e:
            self.statusBar().showMessage(f"Settings not saved: {e}", 10000)

    def watch_gpus(self, inventory: GpuInventory) -> None:
        """The GPU monitor reads `inventory` (this machine's, or simulated ones)."""
        old = getattr(self, "gpu_monitor", None)
        if old is not None:
            old.stop()
        self.gpu_monitor = GpuMonitor(inventory, parent=self)
        self.gpu_monitor.snapshot.connect(self.gpus.update_inventory)
        self.gpu_monitor.snapshot.connect(self.hardware.inventory_updated)

    def serving_others(self) -> list[str]:
        """What runs for other programs or computers and stops when the window closes."""
        out = []
        if self.server_panel.server is not None:
            out.append(f"the API server at {self.server_panel.server.base_url()}")
        if self.machines.share.running:
            out.append(f"sharing this machine at {self.machines.share.endpoint()}")
        return out

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._closing and not self.quit_guard.allows_close():
            event.ignore()
            return
        if not self._closing:
            self._closing = True
            self.save_settings()
            self.gpu_monitor.stop()
            self.server_panel.shutdown()
            self.machines.shutdown()
            self.engine_controller.shutdown()
            self.conversations.shutdown()
            wait_for_background_jobs()
        event.accept()
