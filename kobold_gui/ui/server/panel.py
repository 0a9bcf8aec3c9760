"""The Server tab: serve the loaded model to other apps through the KoboldAI and OpenAI APIs
(start/stop, address, port, API key, the URLs to copy) and watch the requests live."""

from __future__ import annotations

import argparse
import socket
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from kobold_gui.core.engine.worker import EngineWorker
from kobold_gui.server.activity import ActivitySnapshot, RequestRecord
from kobold_gui.server.exposure import exposure_warning
from kobold_gui.server.state import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    ServerSettings,
    settings_from_args,
)

if TYPE_CHECKING:
    from kobold_gui.server.runner import ApiServer

COLUMNS = ("When", "Endpoint", "Status", "Tokens", "Tokens/s", "TTFT")
ALL_INTERFACES = "0.0.0.0"
ENDPOINT_NAMES = {
    "/v1/chat/completions": "OpenAI chat",
    "/v1/completions": "OpenAI text",
    "/api/v1/generate": "Kobold",
    "/api/extra/generate/stream": "Kobold",
}


def lan_addresses() -> list[str]:
    """This computer's IPv4 addresses by its host name (no network traffic)."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        return []
    return sorted({str(i[4][0]) for i in infos if not str(i[4][0]).startswith("127.")})


class _NoWheelSpinBox(QSpinBox):
    def wheelEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        if self.hasFocus():
            super().wheelEvent(event)
        else:
            event.ignore()


class ServerPanel(QWidget):
    """Owns the ApiServer while it runs. The server's threads tell the panel about activity
    through `_activity`, a queued signal, so the widgets change on the GUI thread only."""

    servingChanged = Signal(bool)
    _activity = Signal()
    _stoppedSignal = Signal()

    def __init__(self, worker: EngineWorker, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.worker = worker
        self.server: ApiServer | None = None
        self.multiuser = 1  # KoboldCPP's queue setting; a .kcpps may set it (use_file_settings)
        self._pending = False
        self._activity.connect(self._redraw, Qt.ConnectionType.QueuedConnection)
        self._stoppedSignal.connect(self._stopped, Qt.ConnectionType.QueuedConnection)
        self._build()
        self._host_changed()

    # -- layout -------------------------------------------------------------------------
    def _build(self) -> None:
        setup = self._build_setup()
        urls = QGroupBox("Connect a front-end")
        url_form = QFormLayout(urls)
        self.kobold_url = self._url_row(url_form, "KoboldAI API", "SillyTavern, KoboldAI Lite")
        self.openai_url = self._url_row(url_form, "OpenAI API", "Open WebUI, agents, editors")

        activity = self._build_activity()

        layout = QVBoxLayout(self)
        layout.addWidget(setup)
        layout.addWidget(urls)
        layout.addWidget(activity, 1)
        self._show_urls()

    def _build_setup(self) -> QGroupBox:
        """Address, port and API key, the warning about them, Start, the status line."""
        self.host = QComboBox()
        self.host.setEditable(True)
        self.host.addItem(DEFAULT_HOST, DEFAULT_HOST)
        self.host.addItem("0.0.0.0 (all networks)", ALL_INTERFACES)
        for address in lan_addresses():
            self.host.addItem(address, address)
        self.host.setToolTip("127.0.0.1: only apps on this computer can connect")
        self.host.currentTextChanged.connect(lambda _t: self._host_changed())
        self.port = _NoWheelSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(DEFAULT_PORT)
        self.api_key = QLineEdit()
        self.api_key.setPlaceholderText("none: anyone who can connect may use it")
        self.api_key.setEchoMode(QLineEdit.EchoMode.PasswordEchoOnEdit)
        self.api_key.setToolTip("Clients send it as 'Authorization: Bearer <key>'")
        self.api_key.textChanged.connect(lambda _t: self._host_changed())
        self.start_button = QPushButton("Start server")
        self.start_button.setObjectName("serverStart")
        self.start_button.clicked.connect(self.toggle)
        self.warning = QLabel()
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("color: #b35900;")
        self.status = QLabel("Not serving.")
        self.status.setObjectName("serverStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        form = QFormLayout()
        form.addRow("Address", self.host)
        form.addRow("Port", self.port)
        form.addRow("API key", self.api_key)
        setup = QGroupBox("Serve the loaded model to other apps")
        setup_layout = QVBoxLayout(setup)
        setup_layout.addLayout(form)
        setup_layout.addWidget(self.warning)
        setup_layout.addWidget(self.start_button)
        setup_layout.addWidget(self.status)
        return setup

    def _build_activity(self) -> QGroupBox:
        """The request counts, the table of recent requests, the last error."""
        activity = QGroupBox("Activity")
        activity_layout = QVBoxLayout(activity)
        self.counts = QLabel("No requests yet.")
        self.counts.setObjectName("serverCounts")
        self.counts.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.last_error = QLabel()
        self.last_error.setObjectName("serverLastError")
        self.last_error.setWordWrap(True)
        self.last_error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.last_error.hide()
        activity_layout.addWidget(self.counts)
        activity_layout.addWidget(self.table, 1)
        activity_layout.addWidget(self.last_error)
        return activity

    def _url_row(self, form: QFormLayout, label: str, hint: str) -> QLineEdit:
        field = QLineEdit()
        field.setReadOnly(True)
        field.setToolTip(f"Paste into {hint}")
        copy = QPushButton("Copy")
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(field.text()))
        row = QHBoxLayout()
        row.addWidget(field, 1)
        row.addWidget(copy)
        form.addRow(label, row)
        return field

    # -- settings -----------------------------------------------------------------------
    def chosen_host(self) -> str:
        index = self.host.findText(self.host.currentText())
        data = self.host.itemData(index) if index >= 0 else None
        return str(data or self.host.currentText().strip() or DEFAULT_HOST)

    def settings(self) -> ServerSettings:
        return ServerSettings(
            host=self.chosen_host(),
            port=self.port.value(),
            api_key=self.api_key.text().strip(),
            multiuser=self.multiuser,
        )

    def use_file_settings(self, server: Mapping[str, Any]) -> bool:
        """Port, host, password and multiuser of an imported KoboldCPP file, for the next
        start. False (nothing changed) while serving: the running server keeps its own."""
        if self.server is not None or not server:
            return False
        now = self.settings()
        self.multiuser = int(server.get("multiuser", self.multiuser))
        self._show_settings(
            ServerSettings(
                host=str(server.get("host") or now.host),
                port=int(server.get("port", now.port)),
                api_key=str(server.get("password", now.api_key) or ""),
            )
        )
        return True

    def _host_changed(self) -> None:
        warning = exposure_warning(self.chosen_host(), self.api_key.text().strip())
        self.warning.setText(warning)
        self.warning.setVisible(bool(warning))

    def _show_urls(self) -> None:
        if self.server is not None:
            base = self.server.base_url()
        else:
            host = self.chosen_host()
            shown = DEFAULT_HOST if host == ALL_INTERFACES else host
            base = f"http://{shown}:{self.port.value()}"
        self.kobold_url.setText(base)
        self.openai_url.setText(f"{base}/v1")

    # -- start and stop -----------------------------------------------------------------
    @Slot()
    def toggle(self) -> None:
        if self.server is None:
            self.start()
        else:
            self.stop()

    def start(self, settings: ServerSettings | None = None) -> bool:
        """Start serving; False (and the reason shown) when it cannot."""
        if self.server is not None:
            return True
        settings = settings or self.settings()
        self._show_settings(settings)
        from kobold_gui.server.runner import ApiServer, ServerStartError  # the web stack

        server = ApiServer(self.worker, settings)
        try:
            server.start()
        except ServerStartError as e:
            self.status.setText(f"Could not start: {e}")
            return False
        self.server = server
        self.port.setValue(server.port)  # the free port chosen for port 0
        server.state.activity.add_listener(self._activity_listener)
        self._set_editable(False)
        self.start_button.setText("Stop server")
        self._show_urls()
        key = " · API key required" if settings.api_key else ""
        self.status.setText(f"Serving on {server.base_url()}{key}")
        self.servingChanged.emit(True)
        self._redraw()
        return True

    def stop(self, wait: bool = False) -> None:
        """Stop serving: the requests in flight end, then the server. Off the GUI thread
        unless `wait` (closing the app); `servingChanged(False)` says when it is done."""
        server, self.server = self.server, None
        if server is None:
            return
        server.state.activity.remove_listener(self._activity_listener)
        self.start_button.setEnabled(False)
        self.status.setText("Stopping…")
        if wait:
            server.stop()
            self._stopped()
        else:

            def stop_then_say() -> None:
                server.stop()
                self._stoppedSignal.emit()

            threading.Thread(target=stop_then_say, name="api-server-stop", daemon=True).start()

    @Slot()
    def _stopped(self) -> None:
        self._set_editable(True)
        self.start_button.setEnabled(True)
        self.start_button.setText("Start server")
        self.status.setText("Not serving.")
        self._show_urls()
        self.servingChanged.emit(False)

    def _show_settings(self, settings: ServerSettings) -> None:
        index = self.host.findData(settings.host)
        if index >= 0:
            self.host.setCurrentIndex(index)
        else:
            self.host.setEditText(settings.host)
        if settings.port:
            self.port.setValue(settings.port)
        self.api_key.setText(settings.api_key)

    def _set_editable(self, editable: bool) -> None:
        for w in (self.host, self.port, self.api_key):
            w.setEnabled(editable)

    def serve_from_args(self, args: argparse.Namespace) -> bool:
        """`kobold-gui --port N` (or --host, --password, --multiuser): serve at start.
        True when asked to serve (the window then loads the model, as KoboldCPP does)."""
        file = getattr(args, "kcpps_server", None) or {}
        self.use_file_settings(file)  # a --config file's settings, served or not
        if all(getattr(args, k, None) is None for k in ("port", "host", "password", "multiuser")):
            return False
        settings = settings_from_args(args)
        self.multiuser = settings.multiuser
        self.start(settings)
        return True

    def shutdown(self) -> None:
        self.stop(wait=True)

    # -- activity ---------------------------------------------------------------------
    def _activity_listener(self) -> None:  # any thread
        if not self._pending:
            self._pending = True
            self._activity.emit()

    @Slot()
    def _redraw(self) -> None:
        self._pending = False
        if self.server is None:
            return
        snap = self.server.state.activity.snapshot()
        self.counts.setText(_counts_text(snap, self.server.state.n_slots()))
        failed = next((r for r in snap.records if r.status == "error"), None)
        self.last_error.setVisible(failed is not None)
        if failed is not None:
            where = ENDPOINT_NAMES.get(failed.endpoint, failed.endpoint)
            self.last_error.setText(f"Last error ({where}): {failed.error}")
        self.table.setRowCount(len(snap.records))
        now = time.perf_counter()
        for row, record in enumerate(snap.records):
            for col, text in enumerate(_row(record, now)):
                item = QTableWidgetItem(text)
                if col == 2 and record.error:
                    item.setToolTip(record.error)
                if col == 1:
                    item.setToolTip(f"{record.endpoint} from {record.client}")
                self.table.setItem(row, col, item)


def _counts_text(snap: ActivitySnapshot, n_slots: int = 1) -> str:
    at_once = f" (up to {n_slots} at once, the window's chat included)" if n_slots > 1 else ""
    return (
        f"Running {snap.running}{at_once} · queued {snap.queued} · "
        f"{snap.total} request{'s' if snap.total != 1 else ''} · "
        f"{snap.errors} error{'s' if snap.errors != 1 else ''}"
    )


def _row(r: RequestRecord, now: float) -> tuple[str, ...]:
    when = time.strftime("%H:%M:%S", time.localtime(time.time() - (now - r.queued_at)))
    endpoint = ENDPOINT_NAMES.get(r.endpoint, r.endpoint) + (" · stream" if r.stream else "")
    status = r.status
    if r.status == "error":
        code = r.error.split(":", 1)[0]
        status = f"error {code}" if code.isdigit() else "error"
    ttft = f"{r.ttft_s * 1000:.0f} ms" if r.ttft_s is not None else "—"
    speed_now = r.tokens_per_s
    if r.status == "running" and r.first_text_at and now > r.first_text_at:
        speed_now = r.tokens / (now - r.first_text_at)  # live, from the pieces so far
    speed = f"{speed_now:.1f}" if speed_now else "—"
    return when, endpoint, status, str(r.tokens), speed, ttft
