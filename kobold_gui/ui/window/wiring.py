"""The window's smaller wiring: the model panel's choices into the launch state, the machines
and the hardware feed, the API server into the session, and the settings saved when they
change. Each function connects what one part of the window needs; none keeps state."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject

from kobold_gui.core.kcpps.files import KcppsImport
from kobold_gui.core.llama.types import BackendInfo
from kobold_gui.core.session import Activity
from kobold_gui.ui.hardware.feed import HardwareFeed
from kobold_gui.ui.hub.hook import open_find_model
from kobold_gui.ui.kcpps.follow_up import KcppsFollowUp
from kobold_gui.ui.text.backend import backend_line
from kobold_gui.ui.window.parts import WindowParts


# -- the model panel ----------------------------------------------------------------------------
def wire_models(window: WindowParts) -> None:
    models, state = window.models, window.launch_state
    models.modelChosen.connect(window.choose_model)
    models.infoReady.connect(lambda info: state.set_model(info.path, info))
    models.infoReady.connect(window.conversations.model_chosen)
    models.infoFailed.connect(lambda message: _info_failed(window, message))
    models.folderChosen.connect(lambda folder: _folder_chosen(window, folder))
    models.kcppsImported.connect(lambda result, path: _kcpps_imported(window, result, path))
    models.find_button.clicked.connect(lambda: open_find_model(window))
    models.kcpps.launch_source = lambda: (state.config, models.current)
    models.kcpps.follow_up = KcppsFollowUp(
        window.models,
        window.choose_model,
        reload=window.load_when_ready,  # once the header is read again
        is_loaded=lambda: window.loaded is not None,
        use_server_settings=window.server_panel.use_file_settings,
    )


def _info_failed(window: WindowParts, message: str) -> None:
    window.launch_state.set_model(None, None)
    loaded = window.loaded
    state = f" {loaded.info.label} stays loaded." if loaded else ""
    window.statusBar().showMessage(f"{message}.{state}", 15000)


def _kcpps_imported(window: WindowParts, result: KcppsImport, path: Path) -> None:
    """A KoboldCPP settings file: its launch (and model); the panel lists what was left."""
    model = result.model or window.models.current
    if model is not None:
        window.choose_model(model, result.config)
    follow_up = window.models.kcpps.follow_up
    said = follow_up.handle(result, path) if follow_up is not None else ""
    window.statusBar().showMessage(result.summary(path.name) + said, 30000)


def _folder_chosen(window: WindowParts, folder: str) -> None:
    window.settings.models_folder = folder
    window.save_settings()


# -- machines, hardware, the API server -----------------------------------------------------------
def wire_machines(window: WindowParts) -> None:
    machines = window.machines
    machines.changed.connect(window.save_settings)
    machines.share.restore(window.settings.share)
    machines.share.settingsChanged.connect(window.save_settings)
    machines.devicesChanged.connect(lambda: _remote_devices_changed(window))


def _remote_devices_changed(window: WindowParts) -> None:
    """A machine came, went or dropped: a split typed for the old devices goes back to
    automatic (by free memory); the split editor follows the launch state."""
    if window.launch_state.config.tensor_split:
        window.launch_state.edit(tensor_split=())
        window.statusBar().showMessage("The devices changed: the split is automatic again.")


def watch_hardware(window: WindowParts, parent: QObject) -> HardwareFeed:
    """llama.cpp's build and devices, and NVML's GPUs, into the launch state; the build in
    the Model tab and the devices to the Share panel."""
    feed = HardwareFeed(
        window.launch_state,
        paused=lambda: window.session.state.activity is Activity.LOADING,
        parent=parent,
    )
    feed.backendReady.connect(lambda backend: _backend_ready(window, backend))
    feed.backendReady.connect(lambda _b: window.machines.share.set_devices(feed.devices))
    feed.backendFailed.connect(lambda e: window.backend_label.setText(f"Backend: {e}"))
    return feed


def _backend_ready(window: WindowParts, backend: BackendInfo) -> None:
    window.backend_label.setText(backend_line(backend))


def wire_server(window: WindowParts) -> None:
    window.server_panel.servingChanged.connect(window.session.serving_changed)
