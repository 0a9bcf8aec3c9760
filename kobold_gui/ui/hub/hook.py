"""The few lines between the main window and Find a model: open the dialog (once; its
downloads live on while it is closed), give it the window's hardware, and make a finished
download the window's chosen model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kobold_gui.core.hardware.report import HardwareReport, hardware_report
from kobold_gui.core.launch.options import LaunchConfig
from kobold_gui.core.models.files import default_download_dir

if TYPE_CHECKING:
    from kobold_gui.ui.hub.find_dialog import FindModelDialog


class ModelWindow(Protocol):
    """What open_find_model needs of the main window."""

    settings: Any
    models: Any

    @property
    def backend(self) -> Any: ...

    @property
    def inventory(self) -> Any: ...

    @property
    def devices(self) -> Any: ...

    def choose_model(self, path: Path, config: LaunchConfig | None = None) -> None: ...

    def statusBar(self) -> Any: ...


def _window_hardware(window: ModelWindow) -> tuple[bool, HardwareReport | None]:
    if window.backend is None:
        return False, None
    report = hardware_report(window.inventory, window.backend, window.devices)
    return bool(window.backend.gpu_offload), report


def open_find_model(window: ModelWindow) -> FindModelDialog:
    """Show the window's Find a model dialog (made once, so downloads live on while it is
    closed). A finished download becomes the window's chosen model, with the launch
    settings its plan suggested, and its folder the models folder when there was none."""
    from kobold_gui.ui.hub.find_dialog import FindModelDialog  # the hub's client, when used

    dialog: FindModelDialog | None = getattr(window, "_find_model_dialog", None)
    if dialog is None:
        folder = window.settings.models_folder
        dialog = FindModelDialog(
            Path(folder) if folder else default_download_dir(),
            hardware=lambda: _window_hardware(window),
            parent=window,  # type: ignore[arg-type]
        )
        dialog.downloaded.connect(
            lambda path, config: _downloaded(window, dialog.folder, path, config)
        )
        dialog.folderChanged.connect(lambda f: _use_folder(window, f))
        window._find_model_dialog = dialog  # type: ignore[attr-defined]
    if dialog.isVisible():  # behind the window: bring it forward
        dialog.raise_()
        dialog.activateWindow()
    dialog.show()
    return dialog


def _use_folder(window: ModelWindow, folder: str) -> None:
    window.models.folderChosen.emit(folder)  # the window saves it as the models folder
    window.models.set_folder(folder)


def _downloaded(
    window: ModelWindow, models_folder: Path, path: Path, plan: LaunchConfig | None
) -> None:
    """The new file in the models list and chosen, with the user's launch settings but the
    context and GPU layers its plan suggested."""
    folder = str(models_folder)
    if not window.settings.models_folder:
        _use_folder(window, folder)
    elif window.settings.models_folder == folder:
        window.models.set_folder(folder)  # rescan: the new file shows
    config = window.settings.launch_for(path)
    if plan is not None:
        config = config.with_values(contextsize=plan.contextsize, gpulayers=plan.gpulayers)
    window.choose_model(path, config)
    window.statusBar().showMessage(f"{path.name} downloaded and verified: ready to load.", 15000)
