"""Share this machine: llama.cpp's RPC server for this computer's GPUs (or CPU), started and
stopped from the window as a child process (`kobold-gui --rpc-server`, the same llama.cpp
build, so the protocol always matches). The process runs through QProcess; whether it
serves is checked with the RPC hello on a worker thread, never on the GUI thread."""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path

from PySide6.QtCore import QProcess, QProcessEnvironment, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from kobold_gui.core.engine.child_process import DIE_WITH_PARENT, self_command
from kobold_gui.core.hardware.ggml_devices import BackendDevice
from kobold_gui.core.remote.probe import (
    DEFAULT_PORT,
    LOCAL_HOST,
    RemoteMachine,
    RpcError,
    probe,
)
from kobold_gui.core.remote.rpc_backend import cache_dir
from kobold_gui.ui.common.net_jobs import NetJobs
from kobold_gui.ui.common.wheel_guard import guard_wheel
from kobold_gui.ui.server.panel import lan_addresses

ALL_NETWORKS = "0.0.0.0"
READY_LIMIT_S = 120.0  # a hang guard for the start check, not a timing
STOP_GRACE_MS = 3000
OUTPUT_LINES = 12
SAFETY = (
    "<b>No authentication, no encryption:</b> anyone who can reach the port can use this "
    "computer's devices and memory. Keep 127.0.0.1 (this computer only) unless you trust "
    "the network. <b>One client at a time:</b> while a model is loaded over it, other "
    "computers get no answer."
)


def _wait_until_serving(endpoint: str, ended: threading.Event) -> RemoteMachine | None:
    """On a worker thread: the RPC hello until it answers; None when the process ended (or
    the guard ran out) first."""
    end = time.monotonic() + READY_LIMIT_S
    while not ended.is_set() and time.monotonic() < end:
        try:
            return probe(endpoint, timeout=1.0)
        except RpcError:
            ended.wait(0.2)
    return None


class SharePanel(QGroupBox):
    stateChanged = Signal(str)  # stopped, starting, serving, stopping, failed
    settingsChanged = Signal()  # port, device or tensor cache edited: worth saving

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Share this machine", parent)
        # One QProcess for the panel's life, started again for each share: never deleted
        # while its signals or a check of it may still be on their way.
        self.process = QProcess(self)
        self.process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        self.process.readyReadStandardOutput.connect(self._read_output)
        self.process.finished.connect(self._finished)
        self.process.errorOccurred.connect(self._error)
        self.running = False  # from start until the process ended
        # Kills a server that ignores Stop; a child of the panel, so it dies with it.
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self._kill_if_running)
        self.state = "stopped"
        self.cache_folder: Path | None = None  # chosen by the user: LLAMA_CACHE
        self.output: deque[str] = deque(maxlen=200)
        self._ended = threading.Event()
        self._stopping = False
        self._starts = 0
        self.jobs = NetJobs(self, threads=1)
        self._wanted_device = ""  # a saved device, chosen once the device list arrives
        self._build()
        self._show_cache()
        self._set_state("stopped", "Not sharing.")
        self.port.valueChanged.connect(self.settingsChanged)
        self.device.activated.connect(self._device_chosen)
        self.cache.toggled.connect(self.settingsChanged)

    def _build(self) -> None:
        self._build_settings()
        self.cache = QCheckBox("Tensor cache: a reload does not resend the weights")
        self.cache.setObjectName("shareCache")
        self.cache_path = QLabel()
        self.cache_path.setWordWrap(True)
        self.cache_path.setStyleSheet("color: palette(mid);")
        self.cache_path.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.cache_button = QPushButton("Folder…")
        self.cache_button.clicked.connect(self._choose_cache)
        self.start_button = QPushButton("Start sharing")
        self.start_button.setObjectName("shareStart")
        self.start_button.clicked.connect(self.toggle)
        self.status = QLabel()
        self.status.setObjectName("shareStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.log = QPlainTextEdit()
        self.log.setObjectName("shareOutput")
        self.log.setReadOnly(True)
        self.log.setMaximumHeight(120)
        self.log.hide()
        safety = QLabel(SAFETY)
        safety.setWordWrap(True)
        safety.setStyleSheet("color: #b35900;")

        cache_row = QHBoxLayout()
        cache_row.addWidget(self.cache_path, 1)
        cache_row.addWidget(self.cache_button)
        form = QFormLayout()
        form.addRow("Address", self.host)
        form.addRow("Port", self.port)
        form.addRow("Device", self.device)
        layout = QVBoxLayout(self)
        layout.addWidget(safety)
        layout.addLayout(form)
        layout.addWidget(self.cache)
        layout.addLayout(cache_row)
        layout.addWidget(self.start_button)
        layout.addWidget(self.status)
        layout.addWidget(self.log)

    def _build_settings(self) -> None:
        """The address, port and device the RPC server shares."""
        self.host = QComboBox()
        self.host.setObjectName("shareHost")
        self.host.addItem(f"{LOCAL_HOST} — this computer only", LOCAL_HOST)
        for address in lan_addresses():
            self.host.addItem(f"{address} — this network (no encryption)", address)
        self.host.addItem(f"{ALL_NETWORKS} — every network (no encryption)", ALL_NETWORKS)
        guard_wheel(self.host)
        self.port = QSpinBox()
        self.port.setObjectName("sharePort")
        self.port.setRange(1, 65535)
        self.port.setValue(DEFAULT_PORT)
        guard_wheel(self.port)
        self.device = QComboBox()
        self.device.setObjectName("shareDevice")
        guard_wheel(self.device)
        for combo in (self.host, self.device):  # long entries never widen the tab
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
            )
            combo.setMinimumContentsLength(12)
        self.set_devices([])

    def set_devices(self, devices: list[BackendDevice]) -> None:
        """llama.cpp's devices of this machine (from the hardware feed)."""
        current = self.device.currentData()
        self.device.clear()
        gpus = [d for d in devices if d.kind in ("GPU", "iGPU")]
        self.device.addItem(
            "All GPUs" if gpus else "All GPUs (none found here: the CPU is shared)", ""
        )
        for d in devices:
            if d.kind in ("GPU", "iGPU", "CPU"):
                self.device.addItem(f"{d.name} — {d.description}", d.name)
        wanted = current or self._wanted_device
        self.device.setCurrentIndex(max(0, self.device.findData(wanted)))

    def _device_chosen(self) -> None:
        self._wanted_device = str(self.device.currentData() or "")
        self.settingsChanged.emit()

    # -- kept between runs ------------------------------------------------------------------
    def saved(self) -> dict[str, object]:
        return {
            "port": self.port.value(),
            "device": str(self.device.currentData() or self._wanted_device),
            "cache": self.cache.isChecked(),
            "cache_folder": str(self.cache_folder) if self.cache_folder else "",
        }

    def restore(self, saved: dict[str, object]) -> None:
        """Settings from an earlier run; a value that does not fit is left at its default."""
        port = saved.get("port")
        if isinstance(port, int) and 0 < port < 65536:
            self.port.setValue(port)
        self._wanted_device = str(saved.get("device") or "")
        self.device.setCurrentIndex(max(0, self.device.findData(self._wanted_device)))
        self.cache.setChecked(bool(saved.get("cache")))
        folder = saved.get("cache_folder")
        self.cache_folder = Path(folder) if isinstance(folder, str) and folder else None
        self._show_cache()

    # -- the tensor cache -------------------------------------------------------------------
    def cache_dir(self) -> Path:
        """Where the server keeps received tensors: the chosen folder's rpc/, else llama.cpp's
        own (LLAMA_CACHE or the user's cache folder)."""
        return self.cache_folder / "rpc" if self.cache_folder else cache_dir()

    def _show_cache(self) -> None:
        folder = str(self.cache_dir())
        # Break a long path at its slashes rather than widen the tab.
        breakable = folder.replace("/", "/\u200b")
        self.cache_path.setText(f"Cache folder: {breakable}")
        self.cache_path.setToolTip(folder)

    def _choose_cache(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the tensor cache")
        if folder:
            self.cache_folder = Path(folder)
            self.cache.setChecked(True)
            self._show_cache()
            self.settingsChanged.emit()

    # -- start and stop --------------------------------------------------------------------
    def endpoint(self) -> str:
        host = self.host.currentData() or self.host.currentText()
        return f"{host}:{self.port.value()}"

    def toggle(self) -> None:
        if self.running:
            self.stop()
        else:
            self.start()

    def arguments(self) -> list[str]:
        args = ["--rpc-server", "-H", str(self.host.currentData()), "-p", str(self.port.value())]
        if self.device.currentData():
            args += ["-d", str(self.device.currentData())]
        if self.cache.isChecked():
            args.append("-c")
        return args

    def start(self) -> None:
        if self.running:
            return
        command = self_command(*self.arguments())
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        env.insert(DIE_WITH_PARENT, "1")  # a crashed window leaves no server behind
        if self.cache.isChecked() and self.cache_folder is not None:
            env.insert("LLAMA_CACHE", str(self.cache_folder))
        self.process.setProcessEnvironment(env)
        self.running = True
        self.output.clear()
        self._ended = threading.Event()
        self._stopping = False
        self._starts += 1
        start = self._starts
        self._set_state("starting", f"Starting the RPC server on {self.endpoint()}…")
        self.process.start(command[0], command[1:])
        host = str(self.host.currentData())
        check = f"{LOCAL_HOST if host == ALL_NETWORKS else host}:{self.port.value()}"
        self.jobs.run(
            _wait_until_serving,
            check,
            self._ended,
            done=lambda found: self._ready(start, found),
            failed=lambda _e: None,
        )

    def _ready(self, start: int, found: RemoteMachine | None) -> None:
        if start != self._starts or self.state != "starting" or found is None:
            return
        devices = ", ".join(d.kind for d in found.devices)
        served = f"Serving on {self.endpoint()} (RPC {found.version_text}, {devices})"
        host = str(self.host.currentData())
        if host == LOCAL_HOST:
            how = (
                f" for this computer only: add {self.endpoint()} in Remote machines above. "
                "For other computers, stop and choose a network address."
            )
        else:
            reach = lan_addresses()[:1] if host == ALL_NETWORKS else [host]
            address = f"{reach[0]}:{self.port.value()}" if reach else "this computer's address"
            how = f". Other computers add {address} in their Machines tab."
        self._set_state("serving", served + how)

    def stop(self) -> None:
        if not self.running or self._stopping:
            return
        self._stopping = True
        self._set_state("stopping", "Stopping…")
        self.process.terminate()
        self._kill_timer.start(STOP_GRACE_MS)

    def _kill_if_running(self) -> None:
        if self.process.state() != QProcess.ProcessState.NotRunning:
            self.process.kill()

    def _read_output(self) -> None:
        text = bytes(self.process.readAllStandardOutput().data()).decode(errors="replace")
        self.output.extend(line for line in text.splitlines() if line.strip())

    def _error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and self.running:
            self.output.append(self.process.errorString())
            self._end(failed=True)

    def _finished(self, code: int, _status: QProcess.ExitStatus) -> None:
        self._read_output()
        if self.running:
            self._end(failed=not self._stopping, code=code)

    def _end(self, failed: bool, code: int | None = None) -> None:
        self._ended.set()
        self._kill_timer.stop()
        self.running = False
        if failed:
            lines = list(self.output)[-OUTPUT_LINES:]
            reason = next((x for x in reversed(lines) if "error" in x.lower()), "")
            how = f" (exit code {code})" if code is not None else ""
            self._set_state("failed", f"The RPC server stopped{how}. {reason}".strip())
            self.log.setPlainText("\n".join(lines))
            self.log.show()
        else:
            self._set_state("stopped", "Not sharing (stopped).")

    def _set_state(self, state: str, text: str) -> None:
        self.state = state
        self.status.setText(text)
        self.status.setStyleSheet("color: #c01c28;" if state == "failed" else "")
        running = state in ("starting", "serving", "stopping")
        self.start_button.setText("Stop sharing" if running else "Start sharing")
        self.start_button.setEnabled(state != "stopping")
        for widget in (self.host, self.port, self.device, self.cache, self.cache_button):
            widget.setEnabled(not running)
        if state != "failed":
            self.log.hide()
        self.stateChanged.emit(state)

    @property
    def pid(self) -> int | None:
        return int(self.process.processId()) if self.running else None

    def shutdown(self) -> None:
        """On closing the app: no server is left behind."""
        self._ended.set()
        if self.process.state() != QProcess.ProcessState.NotRunning:
            self._stopping = True
            self.process.terminate()
            if not self.process.waitForFinished(STOP_GRACE_MS):
                self.process.kill()
                self.process.waitForFinished(STOP_GRACE_MS)
        self.jobs.shutdown()
