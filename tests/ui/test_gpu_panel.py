"""The GPU panel and its poller, with the FAKE NVML for 1, 2 and 4 GPUs."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import QTimer
from pytestqt.qtbot import QtBot

from kobold_gui.core.hardware.nvml import GpuInventory
from kobold_gui.core.hardware.report import hardware_report
from kobold_gui.core.launch.options import LaunchConfig
from kobold_gui.core.launch.state import LaunchState
from kobold_gui.core.launch.values import ALL_GPUS, NO_GPUS, GpuSelection
from kobold_gui.core.llama.types import BackendInfo
from kobold_gui.ui.hardware.gpu_panel import GpuPanel
from kobold_gui.ui.hardware.gpu_poller import GpuMonitor
from tests.conftest import HANG_GUARD_MS
from tests.fakes.nvml import FakeGpu, FakeNvml, GiB


def panel_with(qtbot: QtBot, nvml: FakeNvml) -> tuple[GpuPanel, GpuInventory]:
    panel = GpuPanel()
    qtbot.addWidget(panel)
    inventory = GpuInventory(nvml)
    panel.update_inventory(inventory.snapshot())
    return panel, inventory


@pytest.mark.parametrize("count", [1, 2, 4])
def test_one_card_per_gpu(qtbot: QtBot, count: int) -> None:
    panel, _ = panel_with(qtbot, FakeNvml([FakeGpu(name=f"Card {i}") for i in range(count)]))
    assert sorted(panel.cards) == list(range(count))
    assert panel.cards[count - 1].use.text() == f"GPU {count - 1}: Card {count - 1}"
    assert f"{count} NVIDIA GPU(s)" in panel.header.text()


def test_cards_follow_new_readings(qtbot: QtBot) -> None:
    nvml = FakeNvml([FakeGpu(total=24 * GiB, used=GiB, util=5, temp=40)])
    panel, inventory = panel_with(qtbot, nvml)
    card = panel.cards[0]
    assert "use 5 %" in card.stats.text() and "40 °C" in card.stats.text()
    nvml.gpus[0].util, nvml.gpus[0].temp = 97, 71
    nvml.gpus[0].procs = {__import__("os").getpid(): 6 * GiB}
    panel.update_inventory(inventory.snapshot())
    assert "use 97 %" in card.stats.text() and "71 °C" in card.stats.text()
    assert card.bar.ours == 6 * GiB and card.bar.others == GiB
    assert "this app 6.00 GiB" in card.memory.text()
    assert len(card.history) == 2


def test_a_lost_gpu_shows_as_lost(qtbot: QtBot) -> None:
    nvml = FakeNvml([FakeGpu(), FakeGpu()])
    panel, inventory = panel_with(qtbot, nvml)
    nvml.gpus[1].lost = True
    panel.update_inventory(inventory.snapshot())
    assert panel.cards[1].error.isVisibleTo(panel) and "GPU lost" in panel.cards[1].error.text()
    assert not panel.cards[0].error.isVisibleTo(panel)


def test_the_panel_follows_the_launch_state(qtbot: QtBot) -> None:
    """A model's saved GPU choice shows on the cards; a choice on the cards goes into the
    launch; the build's warnings show above them."""
    state = LaunchState()
    panel = GpuPanel(state)
    qtbot.addWidget(panel)
    inventory = GpuInventory(FakeNvml([FakeGpu(), FakeGpu(), FakeGpu()])).snapshot()
    panel.update_inventory(inventory)
    state.set_config(LaunchConfig().with_values(gpus="1,2", maingpu=2))
    assert [panel.cards[i].use.isChecked() for i in range(3)] == [False, True, True]
    assert panel.cards[2].main.isChecked()
    panel.cards[1].use.setChecked(False)
    assert (state.config.gpus, state.config.maingpu) == (GpuSelection((2,)), 2)
    assert not panel.cards[1].use.isChecked()  # the edit is not echoed back
    state.edit(contextsize=2048)  # another setting: the cards stay as they are
    assert [panel.cards[i].use.isChecked() for i in range(3)] == [False, False, True]
    assert not panel.build_note.isVisibleTo(panel)
    cpu_only = BackendInfo("CPU", False, "test", "")
    state.set_backend(False, hardware_report(inventory, cpu_only, []))
    assert panel.build_note.isVisibleTo(panel) and "CPU-only" in panel.build_note.text()


def test_no_driver_message(qtbot: QtBot) -> None:
    panel, _ = panel_with(qtbot, FakeNvml([], driver_present=False))
    assert "No NVIDIA driver found" in panel.header.text() and not panel.cards


def test_check_boxes_and_main_gpu_make_the_selection(qtbot: QtBot) -> None:
    panel, _ = panel_with(qtbot, FakeNvml([FakeGpu() for _ in range(3)]))
    assert panel.selection() == (ALL_GPUS, -1)
    with qtbot.waitSignal(panel.selectionChanged) as sig:
        panel.cards[1].use.setChecked(False)
    assert sig.args == [GpuSelection((0, 2)), -1]
    with qtbot.waitSignal(panel.selectionChanged) as sig:
        panel.cards[2].main.setChecked(True)
    assert sig.args == [GpuSelection((0, 2)), 2]
    panel.cards[1].main.setChecked(True)  # choosing a main GPU also uses it
    assert panel.selection() == (ALL_GPUS, 1) and not panel.cards[2].main.isChecked()
    panel.set_selection(GpuSelection((0,)), 0)
    assert panel.selection() == (GpuSelection((0,)), 0) and not panel.cards[2].use.isChecked()
    panel.cards[0].main.setChecked(False)
    panel.cards[0].use.setChecked(False)  # no box left: no local GPU (not all of them)
    assert panel.selection() == (NO_GPUS, -1)


class StalledNvml(FakeNvml):
    """A driver that hangs inside a call (NVML can, when the GPU is busy) until released."""

    def __init__(self) -> None:
        super().__init__([FakeGpu(), FakeGpu()])
        self.stall = False
        self.stuck = threading.Event()
        self.release = threading.Event()

    def _call(self) -> None:
        super()._call()
        if self.stall:
            self.stuck.set()
            self.release.wait(HANG_GUARD_MS / 1000)


def test_poller_works_off_the_gui_thread_even_when_nvml_stalls(qtbot: QtBot) -> None:
    """While the poller is stuck inside NVML, the GUI thread's timers keep firing: no wall
    clock budget, only what happens while the driver hangs."""
    nvml = StalledNvml()
    monitor = GpuMonitor(GpuInventory(nvml), interval_ms=50)
    seen: list[object] = []
    monitor.snapshot.connect(seen.append)
    beats = [0]
    timer = QTimer()
    timer.timeout.connect(lambda: beats.__setitem__(0, beats[0] + 1))
    qtbot.waitUntil(lambda: len(seen) >= 1, timeout=HANG_GUARD_MS)
    nvml.stall = True
    qtbot.waitUntil(nvml.stuck.is_set, timeout=HANG_GUARD_MS)
    timer.start(5)
    qtbot.waitUntil(lambda: beats[0] >= 20, timeout=HANG_GUARD_MS)  # the driver still hangs
    nvml.stall = False
    nvml.release.set()
    qtbot.waitUntil(lambda: len(seen) >= 2, timeout=HANG_GUARD_MS)
    timer.stop()
    monitor.stop()
    assert threading.get_ident() not in nvml.calls_by_thread
    assert not monitor.poll_thread.isRunning()


def test_window_shows_the_no_driver_message_from_real_nvml(qtbot: QtBot) -> None:
    import os

    from kobold_gui.ui.window.main_window import MainWindow

    if os.path.exists("/dev/nvidiactl"):
        pytest.skip("this machine has an NVIDIA driver")
    window = MainWindow()
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: "No NVIDIA driver" in window.gpus.header.text(), timeout=HANG_GUARD_MS)
    window.close()


def test_window_with_fake_gpus_passes_the_choice_into_the_launch(qtbot: QtBot) -> None:
    from kobold_gui.ui.window.main_window import MainWindow

    nvml = FakeNvml([FakeGpu(), FakeGpu()])
    window = MainWindow(inventory=GpuInventory(nvml))
    qtbot.addWidget(window)
    qtbot.waitUntil(
        lambda: len(window.gpus.cards) == 2 and window.backend is not None, timeout=HANG_GUARD_MS
    )
    window.gpus.cards[0].use.setChecked(False)
    assert window.launch_config().gpus == GpuSelection((1,))
    assert "CPU-only" in window.gpus.build_note.text()  # this build cannot use them
    started = time.perf_counter()
    window.close()
    assert time.perf_counter() - started < 3
