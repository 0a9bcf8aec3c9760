"""The KoboldCPP button: import a .kcpps / .kcppt into the launch, save the launch as a .kcpps.
Files are read and written off the GUI thread; results come back as signals."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFileDialog, QMenu, QToolButton, QWidget

from kobold_gui.core.kcpps.files import KcppsError, KcppsImport, read_kcpps
from kobold_gui.core.kcpps.keys import KcppsNote
from kobold_gui.core.kcpps.writer import write_kcpps
from kobold_gui.core.launch.options import LaunchConfig
from kobold_gui.ui.common.background import LatestJob
from kobold_gui.ui.kcpps.follow_up import KcppsFollowUp

FILTER = "KoboldCPP settings (*.kcpps *.kcppt);;All files (*)"
LaunchSource = Callable[[], tuple[LaunchConfig, Path | None]]


def _message(error: BaseException, doing: str) -> str:
    return str(error) if isinstance(error, KcppsError) else f"{doing}: {error}"


class KcppsButton(QToolButton):
    imported = Signal(object, object)  # KcppsImport, Path of the file
    saved = Signal(object, object)  # Path written, list[KcppsNote]
    failed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("kcppsButton")
        self.setText("KoboldCPP")
        self.setToolTip("Import or save KoboldCPP launch settings (.kcpps)")
        self.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self)
        self.import_action = menu.addAction("Import KoboldCPP settings…")
        self.save_action = menu.addAction("Save as .kcpps…")
        self.setMenu(menu)
        self.launch_source: LaunchSource | None = None  # set by the window
        self.follow_up: KcppsFollowUp | None = None  # set by the window
        # The file last imported: a save writes it back with only what changed (its release's
        # keys, what kobold-gui did not apply kept as it was).
        self.source: KcppsImport | None = None
        self.start_dir = str(Path.home())
        self._job = LatestJob(self)
        self.import_action.triggered.connect(self.import_dialog)
        self.save_action.triggered.connect(self.save_dialog)

    def import_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Import KoboldCPP settings", self.start_dir, FILTER
        )
        if path:
            self.import_file(Path(path))

    def import_file(self, path: Path) -> None:
        self._job.run(
            read_kcpps,
            path,
            done=lambda result: self._imported(result, path),
            failed=lambda e: self.failed.emit(_message(e, "cannot import the settings")),
        )

    def _imported(self, result: KcppsImport, path: Path) -> None:
        self.start_dir = str(path.parent)
        self.source = result
        self.imported.emit(result, path)

    def save_dialog(self) -> None:
        if self.launch_source is None:
            return
        _config, model = self.launch_source()
        name = f"{model.stem}.kcpps" if model else "launch.kcpps"
        path, _ = QFileDialog.getSaveFileName(
            self, "Save as KoboldCPP settings", str(Path(self.start_dir) / name), FILTER
        )
        if path:
            self.save_file(Path(path))

    def save_file(self, path: Path) -> None:
        if self.launch_source is None:
            self.failed.emit("Nothing to save yet: choose a model first.")
            return
        config, model = self.launch_source()
        self._job.run(
            write_kcpps,
            path,
            config,
            model,
            self.source,
            done=self._saved,
            failed=lambda e: self.failed.emit(_message(e, "cannot save the settings")),
        )

    def _saved(self, written: tuple[Path, list[KcppsNote]]) -> None:
        path, notes = written
        self.start_dir = str(path.parent)
        self.saved.emit(path, notes)
