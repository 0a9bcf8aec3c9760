"""Find a model: search Hugging Face for GGUF repositories, list a repository's files with
how each would run on this computer (from its header, read with range requests before any
weight is downloaded), and download one into the models folder, verified, ready to load.
All network work runs on NetJobs' threads; this window only shows results."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from kobold_gui.core.hardware.report import HardwareReport
from kobold_gui.core.hub.download import FileSpec, pending_downloads
from kobold_gui.core.hub.fit import Fit, plan_fit, ram_bytes
from kobold_gui.core.hub.net import NetLimits
from kobold_gui.core.hub.remote_gguf import FetchStats, remote_info
from kobold_gui.core.hub.search import Hub, ModelEntry, RepoFiles, RepoSummary, describe_error
from kobold_gui.core.hub.token import TokenStore
from kobold_gui.core.launch.options import ConfigError, LaunchConfig
from kobold_gui.core.models.gguf_info import GGUFInfo
from kobold_gui.core.units import human_bytes
from kobold_gui.ui.common.net_jobs import NetJobs
from kobold_gui.ui.hub.download_list import DownloadList, DownloadRow
from kobold_gui.ui.hub.tables import FilesTable, ResultsTable
from kobold_gui.ui.hub.token_row import TokenRow

HardwareSource = Callable[[], tuple[bool, HardwareReport | None]]


def _fit_job(
    hub: Hub, repo: RepoFiles, entry: ModelEntry, hardware: tuple[bool, HardwareReport | None]
) -> tuple[GGUFInfo, Fit, FetchStats]:
    info, stats = remote_info(hub, repo, entry)
    return info, plan_fit(info, hardware[0], hardware[1], ram_bytes()), stats


class FindModelDialog(QDialog):
    downloaded = Signal(object, object)  # Path of the (first) file, LaunchConfig | None
    folderChanged = Signal(str)

    def __init__(
        self,
        folder: Path,
        hardware: HardwareSource,
        parent: QWidget | None = None,
        endpoint: str | None = None,
        token_store: TokenStore | None = None,
        limits: NetLimits | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Find a model on Hugging Face")
        self.resize(1100, 720)
        self.folder, self.hardware, self.endpoint = folder, hardware, endpoint
        self.limits = limits  # each API call's connect and read limits (None: the app's)
        self.tokens = token_store or TokenStore()
        self.token: str | None = None
        self.jobs = NetJobs(self)
        self.repo: RepoFiles | None = None
        self._title = ""
        self._shown = ""  # the repository whose files are listed (or being listed)
        self.fits: dict[str, Fit] = {}
        self._search_gen = self._files_gen = 0
        self._build()
        self.downloads.finished.connect(self._download_finished)
        self._add_pending()
        if parent is not None:
            parent.installEventFilter(self)  # pause downloads before the app quits

    # -- layout -------------------------------------------------------------------------
    def _build(self) -> None:
        self.query = QLineEdit()
        self.query.setObjectName("hubQuery")
        self.query.setPlaceholderText(
            "Search GGUF models, e.g. Llama 3.1 8B Instruct, Qwen, Mistral"
        )
        self.search_button = QPushButton("Search")
        self.search_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        search_row = QHBoxLayout()
        search_row.addWidget(self.query, 1)
        search_row.addWidget(self.search_button)
        search_row.addWidget(self.cancel_button)

        splitter = self._build_browser()
        self.token_row = TokenRow(self.tokens, self.jobs)
        downloads_box = self._build_downloads()

        self.status = QLabel(
            "Type a name and press Search. Each file's fit is worked out from its header "
            "(a few MB) before you download gigabytes."
        )
        self.status.setObjectName("hubStatus")
        self.status.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addLayout(search_row)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.token_row)
        layout.addWidget(downloads_box)
        layout.addWidget(self.status)

        self.search_button.clicked.connect(self.search)
        self.cancel_button.clicked.connect(self.cancel_search)
        self.query.returnPressed.connect(self.search)
        self.results.itemSelectionChanged.connect(self._repo_selected)
        self.token_row.tokenChanged.connect(self._token_changed)
        self.folder_button.clicked.connect(self._choose_folder)

    def _build_browser(self) -> QSplitter:
        """The search results above, the chosen repository's files below."""
        self.results = ResultsTable()

        self.files_title = QLabel(
            "Choose a repository to see its files and how each would run on this computer."
        )
        self.files_title.setWordWrap(True)
        self.files = FilesTable()
        files_box = QWidget()
        files_layout = QVBoxLayout(files_box)
        files_layout.setContentsMargins(0, 0, 0, 0)
        files_layout.addWidget(self.files_title)
        files_layout.addWidget(self.files, 1)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.results)
        splitter.addWidget(files_box)
        splitter.setSizes([200, 300])
        return splitter

    def _build_downloads(self) -> QGroupBox:
        """The models folder (and Change…) over the list of downloads."""
        self.folder_label = QLabel()
        self.folder_label.setWordWrap(True)
        self.folder_button = QPushButton("Change…")
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_label, 1)
        folder_row.addWidget(self.folder_button)
        self._show_folder()

        self.downloads = DownloadList()
        scroll = QScrollArea()
        scroll.setWidget(self.downloads)
        scroll.setWidgetResizable(True)
        scroll.setMaximumHeight(150)
        downloads_box = QGroupBox("Downloads")
        box_layout = QVBoxLayout(downloads_box)
        box_layout.addLayout(folder_row)
        box_layout.addWidget(scroll)
        return downloads_box

    def _show_folder(self) -> None:
        self.folder_label.setText(f"Saved to {self.folder}")

    def hub(self) -> Hub:
        return Hub(self.endpoint, self.token, self.limits)

    # -- search -------------------------------------------------------------------------
    def search(self) -> None:
        self._search_gen += 1
        gen = self._search_gen
        text = self.query.text().strip()
        self.status.setText(f"Searching Hugging Face for “{text}”…" if text else "Searching…")
        self._searching(True)
        self.jobs.run(
            self.hub().search,
            text,
            done=lambda found: self._search_done(gen, found),
            failed=lambda e: self._search_failed(gen, e),
        )

    def _searching(self, running: bool) -> None:
        self.search_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def cancel_search(self) -> None:
        """The search's answer, if it ever comes, is ignored (its call ends at its read
        limit, on a thread that never holds up closing)."""
        self._search_gen += 1
        self._searching(False)
        self.status.setText("Search cancelled.")

    def _search_done(self, gen: int, found: list[RepoSummary]) -> None:
        if gen != self._search_gen:
            return
        self._searching(False)
        self.results.show_results(found)
        self.status.setText(
            f"{len(found)} GGUF repositories, most downloaded first. Choose one to see its files."
            if found
            else "No GGUF repositories match. Try fewer words."
        )

    def _search_failed(self, gen: int, error: BaseException) -> None:
        if gen == self._search_gen:
            self._searching(False)
            self.status.setText(describe_error(error))

    # -- a repository's files -------------------------------------------------------------
    def _repo_selected(self) -> None:
        repo_id = self.results.selected_repo()
        if repo_id is not None and repo_id != self._shown:
            self.show_repo(repo_id)

    def show_repo(self, repo_id: str) -> None:
        self._files_gen += 1
        gen = self._files_gen
        self._shown = repo_id
        self.repo = None
        self.fits = {}
        self.files.setRowCount(0)
        self.files_title.setText(f"Files of {repo_id}: listing…")
        self.jobs.run(
            self.hub().list_files,
            repo_id,
            done=lambda repo: self._files_done(gen, repo),
            failed=lambda e: self._files_failed(gen, e),
        )

    def _files_failed(self, gen: int, error: BaseException) -> None:
        if gen == self._files_gen:
            self.files_title.setText(describe_error(error))

    def _files_done(self, gen: int, repo: RepoFiles) -> None:
        if gen != self._files_gen:
            return
        self.repo = repo
        notes = " ".join(repo.notes)
        gated = " Gated: downloading needs an access token." if repo.gated else ""
        count = len(repo.entries)
        self.files_title.setText(
            f"Files of {repo.repo_id} ({count} model{'s' if count != 1 else ''}).{gated} "
            f"{notes}".strip()
            if repo.entries
            else f"{repo.repo_id} has no GGUF files."
        )
        self._title = self.files_title.text()
        self.status.setText(
            "How each file runs here comes from its header, read before any download. "
            "Hover over a line for the memory per device."
        )
        hardware = self.hardware()
        hub = self.hub()
        for entry in repo.entries:
            row = self.files.add_entry(entry, self.download)
            if not entry.projector:
                self.jobs.run(
                    _fit_job,
                    hub,
                    repo,
                    entry,
                    hardware,
                    done=partial(self._fit_done, gen, row, entry),
                    failed=partial(self._fit_failed, gen, row),
                )

    def _fit_done(
        self, gen: int, row: int, entry: ModelEntry, result: tuple[GGUFInfo, Fit, FetchStats]
    ) -> None:
        if gen != self._files_gen:
            return
        info, fit, stats = result
        self.fits[entry.label] = fit
        if fit.note and fit.note not in self.files_title.text():
            self.files_title.setText(f"{self._title} {fit.note}")
        self.files.show_fit(row, info, fit, stats)

    def _fit_failed(self, gen: int, row: int, error: BaseException) -> None:
        if gen == self._files_gen:
            self.files.show_failure(row, describe_error(error))

    # -- downloads ----------------------------------------------------------------------
    def download(self, entry: ModelEntry) -> DownloadRow | None:
        repo = self.repo
        if repo is None:
            return None
        hub = self.hub()
        fit = self.fits.get(entry.label)
        parts = [
            FileSpec(
                hub.url(repo.repo_id, repo.revision, f.name),
                str(self.folder / repo.repo_id / f.name.rsplit("/", 1)[-1]),
                f.size,
                f.sha256,
                repo.repo_id,
                f.name,
            )
            for f in entry.files
        ]
        existing = self.downloads.row_for(parts[0].dest)
        if existing is not None:
            existing.start()
            return existing
        extra: dict[str, Any] = {
            "title": f"{repo.repo_id}: {entry.label} ({human_bytes(entry.size)})",
            "parts": [asdict(p) for p in parts],
            "config": fit.config.to_dict() if fit else None,
        }
        specs = [replace(p, extra=extra) for p in parts]
        row = DownloadRow(extra["title"], specs, self.jobs, self._session)
        self.downloads.add(row)
        row.start()
        self.status.setText(f"Downloading {entry.label} into {self.folder}.")
        return row

    def _session(self) -> tuple[Any, dict[str, str]]:
        hub = self.hub()
        return hub.client(), hub.headers()

    def _add_pending(self) -> None:
        """Unfinished downloads from an earlier run: listed paused, ready to resume."""
        groups: dict[str, list[FileSpec]] = {}
        done: dict[str, int] = {}
        for spec, have in pending_downloads(self.folder):
            parts = spec.extra.get("parts") or [asdict(replace(spec, extra={}))]
            key = str(parts[0]["dest"])
            if key not in groups:
                try:
                    groups[key] = [replace(FileSpec(**p), extra=spec.extra) for p in parts]
                except TypeError:
                    continue
                done[key] = sum(s.size for s in groups[key] if s.path.exists())
            done[key] += have
        for key, specs in groups.items():
            title = str(specs[0].extra.get("title") or Path(key).name)
            self.downloads.add(DownloadRow(title, specs, self.jobs, self._session, done[key]))

    def _download_finished(self, path: Path, extra: dict[str, Any]) -> None:
        config = None
        if extra.get("config"):
            try:
                config = LaunchConfig.from_mapping(extra["config"], strict=False)
            except ConfigError:
                config = None
        self.status.setText(
            f"{path.name} is downloaded and verified, and chosen in the main window with the "
            "launch settings of its plan: close this window and press Load model."
        )
        self.downloaded.emit(path, config)

    # -- folder and token -------------------------------------------------------------
    def _token_changed(self, token: str | None) -> None:
        self.token = token
        if token and self.repo is not None:  # a gated listing may now read its headers
            self.show_repo(self.repo.repo_id)

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save models to", str(self.folder))
        if folder:
            self.folder = Path(folder)
            self._show_folder()
            self._add_pending()
            self.folderChanged.emit(folder)

    # -- quitting -----------------------------------------------------------------------
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.parent() and event.type() == QEvent.Type.Close:
            self.shutdown()
        return False

    def shutdown(self) -> None:
        """Pause every download (their parts stay for the next start) and wait a little for
        them to stop; a search or listing still waiting on the network is left to end."""
        self.downloads.pause_all()
        self.jobs.shutdown()
