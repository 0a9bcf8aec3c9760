"""After a KoboldCPP file is imported in the window: the model it names is missing (say which
and let the user open one), a model is loaded (offer Reload, since the new settings apply at
the next load), and its server settings (port, host, password, multiuser) go to the Server tab.
Every question is a window-modal message opened with open(): nothing waits on the GUI thread."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QFileDialog, QMessageBox, QPushButton, QWidget

from kobold_gui.core.kcpps.files import KcppsImport
from kobold_gui.core.launch.options import LaunchConfig

MODEL_FILTER = "GGUF models (*.gguf);;All files (*)"


class KcppsFollowUp:
    def __init__(
        self,
        parent: QWidget,
        choose_model: Callable[[Path, LaunchConfig], None],
        reload: Callable[[], None],
        is_loaded: Callable[[], bool],
        use_server_settings: Callable[[Mapping[str, Any]], bool],
    ) -> None:
        self.parent = parent
        self.choose_model = choose_model
        self.reload = reload
        self.is_loaded = is_loaded
        self.use_server_settings = use_server_settings
        self.message: QMessageBox | None = None  # the question shown now (tests read it)
        self.dialog: QFileDialog | None = None
        self.action_button: QPushButton | None = None  # "Open…" or "Reload now"

    def handle(self, result: KcppsImport, path: Path) -> str:
        """What follows an import; returns a line for the status bar about the server."""
        said = ""
        if self.use_server_settings(result.server):
            said = f" Server tab: {', '.join(result.server)} from {path.name} (for the next start)."
        missing = result.missing_model
        if missing is not None:
            self.ask_for_model(result, path, missing)
        elif self.is_loaded():
            self.offer_reload(path.name)
        return said

    def ask_for_model(self, result: KcppsImport, path: Path, missing: str) -> None:
        box = self._message(
            QMessageBox.Icon.Warning,
            "Model file not found",
            f"{path.name} names the model file\n{missing}\nwhich is not there (another "
            "computer's path, or moved). Its other settings are applied; open the model "
            "file to use with them.",
            "Open…",
        )
        box.setObjectName("kcppsMissingModel")
        self._on_action(box, lambda: self._open_dialog(result, path))
        box.open()

    def _open_dialog(self, result: KcppsImport, path: Path) -> None:
        dialog = QFileDialog(self.parent, "Open the model file", str(path.parent), MODEL_FILTER)
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.setOption(QFileDialog.Option.DontUseNativeDialog)
        dialog.fileSelected.connect(lambda chosen: self._model_picked(result, Path(chosen), path))
        self.dialog = dialog
        dialog.open()

    def _model_picked(self, result: KcppsImport, model: Path, path: Path) -> None:
        self.choose_model(model, result.config)
        if self.is_loaded():
            self.offer_reload(path.name)

    def offer_reload(self, name: str) -> None:
        box = self._message(
            QMessageBox.Icon.Information,
            "Reload the model?",
            f"The settings from {name} apply when the model is loaded again; the model "
            "loaded now still runs with the old ones.",
            "Reload now",
        )
        box.setObjectName("kcppsReload")
        self._on_action(box, self.reload)
        box.open()

    def _on_action(self, box: QMessageBox, action: Callable[[], None]) -> None:
        button = self.action_button
        box.buttonClicked.connect(lambda clicked: action() if clicked is button else None)

    def _message(self, icon: QMessageBox.Icon, title: str, text: str, action: str) -> QMessageBox:
        if self.message is not None:
            self.message.close()
        box = QMessageBox(icon, title, text, QMessageBox.StandardButton.NoButton, self.parent)
        self.action_button = box.addButton(action, QMessageBox.ButtonRole.AcceptRole)
        box.addButton(
            "Later" if action == "Reload now" else "Cancel", QMessageBox.ButtonRole.RejectRole
        )
        self.message = box
        return box
