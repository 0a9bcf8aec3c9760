"""The main window's parts, as its wiring modules (load_flow, chat_flow, wiring) use them:
a Protocol, so that they need not import the window (which imports them)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from PySide6.QtWidgets import QLabel, QStatusBar, QTabWidget, QWidget

from kobold_gui.core.engine.loaded_model import LoadedModel
from kobold_gui.core.hardware.ggml_devices import BackendDevice
from kobold_gui.core.hardware.nvml import Inventory
from kobold_gui.core.launch.options import LaunchConfig
from kobold_gui.core.launch.state import LaunchState
from kobold_gui.core.llama.types import BackendInfo
from kobold_gui.core.session import Session
from kobold_gui.core.settings import AppSettings
from kobold_gui.ui.benchmark.controller import SweepController
from kobold_gui.ui.chat.chat_panel import ChatPanel
from kobold_gui.ui.chat.controller import ConversationController
from kobold_gui.ui.chat.conversation_list import ConversationList
from kobold_gui.ui.engine.controller import EngineController
from kobold_gui.ui.hardware.gpu_panel import GpuPanel
from kobold_gui.ui.hardware.gpu_poller import GpuMonitor
from kobold_gui.ui.launch.load_bar import LoadBar
from kobold_gui.ui.launch.plan_view import SplitEditor
from kobold_gui.ui.machines.panel import MachinesPanel
from kobold_gui.ui.models.model_panel import ModelPanel
from kobold_gui.ui.server.panel import ServerPanel


class WindowParts(Protocol):
    settings: AppSettings
    session: Session
    launch_state: LaunchState
    engine_controller: EngineController
    models: ModelPanel
    chat: ChatPanel
    chat_list: ConversationList
    conversations: ConversationController
    gpus: GpuPanel
    gpu_monitor: GpuMonitor
    split_editor: SplitEditor
    sweeps: SweepController
    load_bar: LoadBar
    machines: MachinesPanel
    server_panel: ServerPanel
    tabs: QTabWidget
    chats_tab: QWidget
    backend_label: QLabel
    default_model: Path | None

    @property
    def loaded(self) -> LoadedModel | None: ...

    @property
    def backend(self) -> BackendInfo | None: ...

    @property
    def devices(self) -> list[BackendDevice]: ...

    @property
    def inventory(self) -> Inventory: ...

    def choose_model(self, path: Path, config: LaunchConfig | None = None) -> None: ...

    def refresh_recent(self) -> None: ...

    def load_when_ready(self) -> None: ...

    def save_settings(self) -> None: ...

    def statusBar(self) -> QStatusBar: ...

    def setWindowTitle(self, title: str) -> None: ...
