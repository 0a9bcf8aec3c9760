"""Choosing a model: recent models, the models other apps downloaded (scanned off the GUI
thread), a file dialog, a models folder, drag and drop (handled by the window), KoboldCPP
settings files, and the chosen file's metadata, read off the GUI thread before loading."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from kobold_gui.core.kcpps.files import KcppsImport
from kobold_gui.core.kcpps.keys import KcppsNote
from kobold_gui.core.models.files import FolderScan, scan_folder
from kobold_gui.core.models.gguf_info import GGUFInfo, ModelFileError, read_gguf
from kobold_gui.core.models.roots import ScanRoot
from kobold_gui.core.models.scan import FoundModel, ScanResult, scan_models
from kobold_gui.ui.common.background import LatestJob
from kobold_gui.ui.common.wheel_guard import guard_wheel
from kobold_gui.ui.kcpps.menu import KcppsButton
from kobold_gui.ui.text.models import found_text, unreadable_text, unreadable_tooltip

PATH_ROLE = Qt.ItemDataRole.UserRole


class ModelPanel(QWidget):
    modelChosen = Signal(object)  # Path, by the user
    infoReady = Signal(object)  # GGUFInfo of the current path
    infoFailed = Signal(str)
    folderChosen = Signal(str)
    kcppsImported = Signal(object, object)  # KcppsImport, Path of the file
    modelsFound = Signal(object)  # ScanResult of the other apps' folders

    def __init__(self, parent: QWidget | None = None, *, scan_other_apps: bool = True) -> None:
        super().__init__(parent)
        self.current: Path | None = None
        self.info: GGUFInfo | None = None
        self.found: tuple[FoundModel, ...] = ()
        self._recent: tuple[list[Path], Path | None] = ([], None)
        self._info_job = LatestJob(self)
        self._models_folder: str | None = None
        self._unchecked: Path | None = None  # added to the list, not yet read
        self._scan_job = LatestJob(self)
        self._found_job = LatestJob(self)

        pick = self._build_pickers()
        extra = self._build_extra_row()
        self._build_notes()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(pick)
        layout.addLayout(extra)
        layout.addWidget(self.find_button)
        layout.addWidget(self.folder_list)
        layout.addWidget(self.notice)
        layout.addWidget(self.kcpps_notes)
        layout.addLayout(self.meta)

        self.recent.activated.connect(self._on_recent)
        self.open_button.clicked.connect(self.open_dialog)
        self.folder_button.clicked.connect(self.choose_folder)
        self.folder_list.itemActivated.connect(self._on_folder_item)
        self.folder_list.itemClicked.connect(self._on_folder_item)
        self.kcpps.imported.connect(self._kcpps_imported)
        self.kcpps.saved.connect(self._kcpps_saved)
        self.kcpps.failed.connect(self.show_notice)
        self.modelChosen.connect(lambda _path: self.kcpps_notes.hide())  # the notes are stale
        if scan_other_apps:
            self.scan_other_apps()

    def _build_pickers(self) -> QHBoxLayout:
        """The model picker, Open… and Folder… (the row returned), and Find a model."""
        self.recent = QComboBox()
        guard_wheel(self.recent)
        self.recent.setObjectName("recentModels")
        self.recent.setPlaceholderText("Choose a model…")
        self.recent.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.recent.setMinimumContentsLength(20)
        self.open_button = QPushButton("Open…")
        self.open_button.setToolTip("Pick a .gguf file (or drop one on the window)")
        self.folder_button = QPushButton("Folder…")
        self.folder_button.setToolTip("Choose a folder of models to list below")
        self.find_button = QPushButton("Find a model on Hugging Face…")
        self.find_button.setObjectName("findModelButton")
        self.find_button.setToolTip(
            "Search Hugging Face for GGUF models, see how each would run on this computer, "
            "and download one"
        )
        pick = QHBoxLayout()
        pick.addWidget(self.recent, 1)
        pick.addWidget(self.open_button)
        pick.addWidget(self.folder_button)
        return pick

    def _build_extra_row(self) -> QHBoxLayout:
        """The .kcpps menu beside what was found of the other apps' models."""
        self.kcpps = KcppsButton()
        self.found_label = QLabel("Looking for models of other apps…")
        self.found_label.setObjectName("foundModels")
        self.found_label.setWordWrap(True)
        self.found_label.setStyleSheet("color: palette(mid);")
        extra = QHBoxLayout()
        extra.addWidget(self.kcpps)
        extra.addWidget(self.found_label, 1)
        return extra

    def _build_notes(self) -> None:
        """The folder's models, a notice, the .kcpps import's notes, the model's metadata."""
        self.folder_list = QListWidget()
        self.folder_list.setObjectName("folderModels")
        self.folder_list.setMaximumHeight(90)
        self.folder_list.hide()

        self.notice = QLabel()
        self.notice.setObjectName("modelNotice")
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("color: #b00020;")
        self.notice.hide()

        self.kcpps_notes = QLabel()
        self.kcpps_notes.setObjectName("kcppsNotes")
        self.kcpps_notes.setWordWrap(True)
        self.kcpps_notes.setTextFormat(Qt.TextFormat.PlainText)
        self.kcpps_notes.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.kcpps_notes.hide()

        self.meta = QFormLayout()
        self.meta.setContentsMargins(0, 4, 0, 0)
        self.meta_labels: dict[str, QLabel] = {}

    # -- lists ------------------------------------------------------------------------
    def set_recent(self, paths: list[Path], default: Path | None) -> None:
        """The picker: the built-in model, recent models, then the other apps' models."""
        self._recent = (list(paths), default)
        self.recent.blockSignals(True)
        self.recent.clear()
        entries: list[tuple[str, Path, str]] = []
        if default is not None:
            entries.append((f"Built-in: {default.name}", default, str(default)))
        by_path = {m.path: m for m in self.found}  # an Ollama blob is named by its manifest
        entries += [
            (by_path[p].label, p, str(p)) if p in by_path else (p.name, p, str(p))
            for p in paths
            if p != default
        ]
        listed = {path for _text, path, _tip in entries}
        found = [m for m in self.found if m.path not in listed]
        for text, path, tip in entries:
            self._add_entry(text, path, tip)
        if found and entries:
            self.recent.insertSeparator(self.recent.count())
        for m in found:
            self._add_entry(m.label, m.path, f"{m.source}: {m.path}")
        if self.current is not None:
            self.recent.setCurrentIndex(self.recent.findData(str(self.current)))
        self.recent.blockSignals(False)

    def _add_entry(self, text: str, path: Path, tooltip: str) -> None:
        self.recent.addItem(text, str(path))
        self.recent.setItemData(self.recent.count() - 1, tooltip, Qt.ItemDataRole.ToolTipRole)

    def scan_other_apps(self, roots: list[ScanRoot] | None = None) -> None:
        """Look for the models of LM Studio, GPT4All, Jan, Hugging Face and Ollama (in their
        default folders when roots is None); they join the picker when found."""
        self._found_job.run(
            scan_models,
            roots,
            done=self._show_found,
            failed=lambda e: self.found_label.setText(f"Other apps' models: scan failed ({e})"),
        )

    def _show_found(self, result: ScanResult) -> None:
        self.found = result.models
        self.set_recent(*self._recent)
        self.found_label.setText(found_text(result))
        self.found_label.setToolTip(unreadable_tooltip(result.skipped))
        self.modelsFound.emit(result)

    def set_folder(self, folder: str | None) -> None:
        self._models_folder = folder
        if not folder:
            self.folder_list.hide()
            return
        self.folder_list.clear()
        self.folder_list.addItem(f"Scanning {folder}…")
        self.folder_list.show()
        self._scan_job.run(
            scan_folder,
            Path(folder),
            done=self._show_folder,
            failed=lambda e: self._show_folder(FolderScan([], (f"{folder}: {e}",))),
        )

    def _show_folder(self, scan: FolderScan) -> None:
        self.folder_list.clear()
        if not scan.models:
            self.folder_list.addItem("No .gguf files in this folder")
        for p in scan.models:
            item = QListWidgetItem(p.name)
            item.setData(PATH_ROLE, str(p))
            item.setToolTip(str(p))
            self.folder_list.addItem(item)
        if scan.skipped:  # last, in the list's own colour for notes; its tooltip says which
            item = QListWidgetItem(f"{unreadable_text(scan.skipped)} (hover for which)")
            item.setToolTip(unreadable_tooltip(scan.skipped))
            item.setFlags(Qt.ItemFlag.ItemIsEnabled)
            self.folder_list.addItem(item)

    # -- user actions -------------------------------------------------------------------
    def open_dialog(self) -> None:
        start = self._models_folder or str(Path.home())
        if self.current and "site-packages" not in self.current.parts:  # not the built-in
            start = str(self.current.parent)
        path, _ = QFileDialog.getOpenFileName(
            self, "Open a GGUF model", start, "GGUF models (*.gguf);;All files (*)"
        )
        if path:
            self.modelChosen.emit(Path(path))

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a models folder")
        if folder:
            self.folderChosen.emit(folder)
            self.set_folder(folder)

    def _on_recent(self, index: int) -> None:
        data = self.recent.itemData(index)
        if data:
            self.modelChosen.emit(Path(data))

    def _on_folder_item(self, item: QListWidgetItem) -> None:
        data = item.data(PATH_ROLE)
        if data:
            self.modelChosen.emit(Path(data))

    # -- metadata ---------------------------------------------------------------------
    def show_model(self, path: Path) -> None:
        """Read the file's metadata in the background; infoReady or infoFailed follows."""
        self.current = path
        self.info = None
        index = self.recent.findData(str(path))
        if index < 0:
            self.recent.addItem(path.name, str(path))
            index = self.recent.count() - 1
            self._unchecked = path
        self.recent.setCurrentIndex(index)
        self._set_meta({"file": f"{path.name} (reading…)"})
        self.notice.hide()
        self._info_job.run(read_gguf, path, done=self._info_done, failed=self._info_failed)

    def _info_done(self, info: GGUFInfo) -> None:
        self.info = info
        index = self.recent.findData(str(self._unchecked))
        if self._unchecked is not None and self.recent.itemText(index) == info.path.name:
            self.recent.setItemText(index, info.label)  # added by its file name: now its label
        self._unchecked = None
        self._set_meta(info.summary())
        self.infoReady.emit(info)

    def _info_failed(self, error: BaseException) -> None:
        message = str(error) if isinstance(error, ModelFileError) else f"cannot read: {error}"
        self.info = None
        if self._unchecked is not None:  # a file that is not a model stays off the list
            self.recent.removeItem(self.recent.findData(str(self._unchecked)))
            self._unchecked = None
        self._set_meta({})
        self.show_notice(message)
        self.infoFailed.emit(message)

    # -- KoboldCPP settings -----------------------------------------------------------------
    def _kcpps_imported(self, result: KcppsImport, path: Path) -> None:
        lines = [f"From {path.name}: applied {', '.join(result.applied) or 'nothing'}."]
        lines += [f"• {n.describe()}" for n in result.notes if n.applied]
        if result.not_applied:
            lines.append("Not applied:")
            lines += [f"• {n.describe()}" for n in result.not_applied]
        self._show_kcpps_notes(lines)
        self.kcppsImported.emit(result, path)

    def _kcpps_saved(self, path: Path, notes: list[KcppsNote]) -> None:
        lines = [f"Saved {path}."]
        if notes:
            lines.append("KoboldCPP will differ:")
            lines += [f"• {n.describe()}" for n in notes]
        self._show_kcpps_notes(lines)

    def _show_kcpps_notes(self, lines: list[str]) -> None:
        self.kcpps_notes.setText("\n".join(lines))
        self.kcpps_notes.show()

    def show_notice(self, message: str) -> None:
        self.notice.setText(message)
        self.notice.setVisible(bool(message))

    def _set_meta(self, values: dict[str, object]) -> None:
        while self.meta.rowCount():
            self.meta.removeRow(0)
        self.meta_labels = {}
        for key, value in values.items():
            label = QLabel(str(value))
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setWordWrap(True)
            self.meta_labels[key] = label
            self.meta.addRow(f"{key.capitalize()}:", label)
