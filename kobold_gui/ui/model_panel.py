"""Choosing a model: recent models, a file dialog, a models folder, drag and drop (handled by
the window), and the chosen file's metadata, read off the GUI thread before loading."""

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

from kobold_gui.core.gguf_info import GGUFInfo, ModelFileError, read_gguf
from kobold_gui.core.model_files import scan_models_folder
from kobold_gui.ui.background import LatestJob

PATH_ROLE = Qt.ItemDataRole.UserRole


class ModelPanel(QWidget):
    modelChosen = Signal(object)  # Path, by the user
    infoReady = Signal(object)  # GGUFInfo of the current path
    infoFailed = Signal(str)
    folderChosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.current: Path | None = None
        self.info: GGUFInfo | None = None
        self._info_job = LatestJob(self)
        self._scan_job = LatestJob(self)

        self.recent = QComboBox()
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

        self.folder_list = QListWidget()
        self.folder_list.setObjectName("folderModels")
        self.folder_list.setMaximumHeight(90)
        self.folder_list.hide()

        self.notice = QLabel()
        self.notice.setObjectName("modelNotice")
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("color: #b00020;")
        self.notice.hide()

        self.meta = QFormLayout()
        self.meta.setContentsMargins(0, 4, 0, 0)
        self.meta_labels: dict[str, QLabel] = {}

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(pick)
        layout.addWidget(self.find_button)
        layout.addWidget(self.folder_list)
        layout.addWidget(self.notice)
        layout.addLayout(self.meta)

        self.recent.activated.connect(self._on_recent)
        self.open_button.clicked.connect(self.open_dialog)
        self.folder_button.clicked.connect(self.choose_folder)
        self.folder_list.itemActivated.connect(self._on_folder_item)
        self.folder_list.itemClicked.connect(self._on_folder_item)

    # -- lists ------------------------------------------------------------------------
    def set_recent(self, paths: list[Path], default: Path | None) -> None:
        self.recent.blockSignals(True)
        self.recent.clear()
        entries: list[tuple[str, Path]] = []
        if default is not None:
            entries.append((f"Built-in: {default.name}", default))
        entries += [(p.name, p) for p in paths if p != default]
        for text, path in entries:
            self.recent.addItem(text, str(path))
            self.recent.setItemData(self.recent.count() - 1, str(path), Qt.ItemDataRole.ToolTipRole)
        if self.current is not None:
            self.recent.setCurrentIndex(self.recent.findData(str(self.current)))
        self.recent.blockSignals(False)

    def set_folder(self, folder: str | None) -> None:
        if not folder:
            self.folder_list.hide()
            return
        self.folder_list.clear()
        self.folder_list.addItem(f"Scanning {folder}…")
        self.folder_list.show()
        self._scan_job.run(
            scan_models_folder,
            Path(folder),
            done=self._show_folder,
            failed=lambda e: self._show_folder([]),
        )

    def _show_folder(self, paths: list[Path]) -> None:
        self.folder_list.clear()
        if not paths:
            self.folder_list.addItem("No .gguf files in this folder")
        for p in paths:
            item = QListWidgetItem(p.name)
            item.setData(PATH_ROLE, str(p))
            item.setToolTip(str(p))
            self.folder_list.addItem(item)

    # -- user actions -------------------------------------------------------------------
    def open_dialog(self) -> None:
        start = str(self.current.parent) if self.current else str(Path.home())
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
        self.recent.setCurrentIndex(index)
        self._set_meta({"file": f"{path.name} (reading…)"})
        self.notice.hide()
        self._info_job.run(read_gguf, path, done=self._info_done, failed=self._info_failed)

    def _info_done(self, info: GGUFInfo) -> None:
        self.info = info
        self._set_meta(info.summary())
        self.infoReady.emit(info)

    def _info_failed(self, error: BaseException) -> None:
        message = str(error) if isinstance(error, ModelFileError) else f"cannot read: {error}"
        self.info = None
        self._set_meta({})
        self.show_notice(message)
        self.infoFailed.emit(message)

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
