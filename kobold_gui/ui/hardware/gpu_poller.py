"""Polls the GPU inventory about once a second on its own thread: NVML can stall while a
driver is busy, and the GUI thread must never wait for it."""

from __future__ import annotations

import contextlib

from PySide6.QtCore import QMetaObject, QObject, Qt, QThread, QTimer, Signal, Slot

from kobold_gui.core.hardware.nvml import GpuInventory


class _Poller(QObject):
    snapshot = Signal(object)  # Inventory

    def __init__(self, inventory: GpuInventory, interval_ms: int) -> None:
        super().__init__()
        self.inventory = inventory
        self.interval_ms = interval_ms
        self.timer: QTimer | None = None

    @Slot()
    def start(self) -> None:
        self.timer = QTimer(self)  # created here, so it lives in the polling thread
        self.timer.setInterval(self.interval_ms)
        self.timer.timeout.connect(self.poll)
        self.timer.start()
        self.poll()

    @Slot()
    def poll(self) -> None:
        # The inventory contains NVML's errors; this is a last guard for the thread.
        with contextlib.suppress(Exception):
            self.snapshot.emit(self.inventory.snapshot())

    @Slot()
    def stop(self) -> None:
        if self.timer is not None:
            self.timer.stop()
        self.inventory.close()


class GpuMonitor(QObject):
    """Owned by the GUI thread; `snapshot` is delivered on the GUI thread."""

    snapshot = Signal(object)

    def __init__(
        self, inventory: GpuInventory, interval_ms: int = 1000, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.poll_thread = QThread()
        self.poll_thread.setObjectName("gpu-poller")
        self.poller = _Poller(inventory, interval_ms)
        self.poller.moveToThread(self.poll_thread)
        self.poller.snapshot.connect(self.snapshot)
        self.poll_thread.started.connect(self.poller.start)
        self.poll_thread.start()

    def poll_now(self) -> None:
        """An extra snapshot soon (after a load, say), without waiting for the timer."""
        QMetaObject.invokeMethod(self.poller, "poll", Qt.ConnectionType.QueuedConnection)

    def stop(self) -> None:
        if not self.poll_thread.isRunning():
            return
        QMetaObject.invokeMethod(self.poller, "stop", Qt.ConnectionType.BlockingQueuedConnection)
        self.poll_thread.quit()
        self.poll_thread.wait(5000)
