"""The Machines tab in the real window at 1366 x 768, with real llama.cpp RPC servers on
localhost ports (tests/rpc_servers.py): machines added by typing, their devices in the
memory plan and the split editor, a load over them, a machine killed during a reply, an
address nobody listens on, the list across restarts; and sharing this machine through the
RPC server started from the window."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from kobold_gui.core.engine.types import SamplingParams
from kobold_gui.core.launch.options import given_options
from kobold_gui.core.remote.machines import MachineList, SavedMachine
from kobold_gui.core.remote.probe import RemoteDevice, RemoteMachine, parse_endpoint, probe
from kobold_gui.core.settings import SettingsStore
from kobold_gui.ui.machines.card import MachineCard
from kobold_gui.ui.machines.share_panel import SharePanel
from kobold_gui.ui.window.main_window import MainWindow
from tests.conftest import HANG_GUARD_MS
from tests.rpc_servers import free_port, rpc_servers


def open_window(qtbot: QtBot, model: Path) -> MainWindow:
    window = MainWindow(initial_model=model)
    qtbot.addWidget(window)
    window.resize(1366, 728)
    window.show()
    qtbot.waitUntil(lambda: window.load_button.isEnabled(), timeout=HANG_GUARD_MS)
    titles = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    window.tabs.setCurrentIndex(titles.index("Machines"))
    return window


def add_machine(qtbot: QtBot, window: MainWindow, endpoint: str) -> MachineCard:
    field = window.machines.address
    field.setFocus()
    qtbot.keyClicks(field, endpoint)
    qtbot.keyClick(field, Qt.Key.Key_Return)
    assert field.text() == ""
    card = window.machines.cards[endpoint]
    qtbot.waitUntil(lambda: "checking" not in card.state.text(), timeout=HANG_GUARD_MS)
    return card


def plan_names(window: MainWindow) -> list[str]:
    launch = window.launch_state.resolved
    assert launch is not None and launch.plan is not None, window.launch_state.error
    return [d.name for d in launch.plan.devices]


def close_share(share: SharePanel) -> None:
    """As the window does on closing; then the start check's result, already on its way,
    is delivered before the test lets go of the panel (PySide deletes a panel without a
    parent at once, and a queued result for it would then reach a deleted receiver)."""
    share.shutdown()
    QApplication.sendPostedEvents()
    QApplication.processEvents()


def is_running(pid: int) -> bool:
    """Asked the way a user would: ps lists the process (and not as a zombie)."""
    out = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True)
    return out.returncode == 0 and not out.stdout.strip().startswith("Z")


def test_two_machines_split_the_model_and_a_dropped_one_is_named(
    qtbot: QtBot, default_model: Path, tmp_path: Path
) -> None:
    with rpc_servers(tmp_path, 2) as servers:
        window = open_window(qtbot, default_model)
        first, second = (add_machine(qtbot, window, s.endpoint) for s in servers)
        for card in (first, second):
            assert "✓ reachable · RPC 7.0.0 · round trip" in card.state.text()
        assert first.devices.text().startswith("RPC0 · CPU #0 ·")
        assert second.devices.text().startswith("RPC1 · CPU #0 ·")
        assert "RAM" in first.devices.text()

        # An address nobody listens on: refused in its row, left out of the launch.
        closed = f"127.0.0.1:{free_port()}"
        refused = add_machine(qtbot, window, closed)
        assert "✗" in refused.state.text() and "refused" in refused.state.text()
        assert "Not used until it answers" in refused.note.text()
        # At 1366 x 768 nothing in the tab is wider than the tab (it would be cut off).
        viewport = window.tabs.currentWidget().viewport()  # type: ignore[attr-defined]
        assert window.machines.minimumSizeHint().width() <= viewport.width()
        assert window.launch_state.config.rpc == (
            parse_endpoint(servers[0].endpoint),
            parse_endpoint(servers[1].endpoint),
        )

        # 20 of the model's 31 layers go to the two machines; the rest stays on this CPU.
        window.launch.gpu_layers.setValue(20)
        # A CPU build shows GPU layers too: they go to the remote devices.
        assert window.launch.gpu_layers.isVisibleTo(window.launch)
        names = plan_names(window)
        assert names == [
            f"RPC0 {servers[0].endpoint} (CPU)",
            f"RPC1 {servers[1].endpoint} (CPU)",
            "CPU (RAM)",
        ]
        editor = window.split_editor
        assert editor.labels[0].text().startswith(f"<b>RPC0 {servers[0].endpoint} (CPU)</b>: ")
        assert editor.labels[1].text().startswith(f"<b>RPC1 {servers[1].endpoint} (CPU)</b>: ")
        assert editor.auto_split.isVisibleTo(editor)
        assert editor.cpu.text().startswith("This computer's CPU / RAM: 11 layers")
        # Automatic: each box shows the device's share of the offloaded layers.
        auto = [editor.shares[0].value(), editor.shares[1].value()]
        assert 0 < auto[1] < 100 and abs(sum(auto) - 100) < 0.2
        # The split editor's shares move the layers between the two machines.
        editor.auto_split.setChecked(False)
        editor.shares[0].setValue(75.0)
        editor.shares[1].setValue(25.0)
        assert window.launch_state.config.tensor_split == (75.0, 25.0)
        plan = window.launch_state.resolved.plan  # type: ignore[union-attr]
        layers = [len([x for x in d.layers if x < plan.n_layer]) for d in plan.devices]
        assert layers[0] > layers[1] > 0 and sum(layers) == plan.n_layer
        assert "RPC0" in editor.labels[0].toolTip() and "weights" in editor.labels[0].toolTip()

        with qtbot.waitSignal(window.engine_controller.loaded, timeout=HANG_GUARD_MS):
            qtbot.mouseClick(window.load_button, Qt.MouseButton.LeftButton)
        assert window.loaded is not None
        assert window.loaded.launch.rpc_servers == (servers[0].endpoint, servers[1].endpoint)
        assert "in use by the loaded model" in first.state.text()
        assert not first.check_button.isEnabled()  # its server serves only the model now

        # A reply that streams, computed over the two machines.
        window.sampling = SamplingParams(max_tokens=12, temperature=0.0, seed=1)
        chunks: list[str] = []
        window.engine_controller.text.connect(chunks.append)
        window.chat.input.setFocus()
        qtbot.keyClicks(window.chat.input, "Name three colors.")
        with qtbot.waitSignal(
            window.engine_controller.replyFinished, timeout=HANG_GUARD_MS
        ) as done:
            qtbot.keyClick(window.chat.input, Qt.Key.Key_Return)
        assert done.args[0].generated_tokens > 0 and chunks
        kept = [(m.role, m.content) for m in window.chat.history]
        assert kept[-1][0] == "assistant" and kept[-1][1] == done.args[0].text

        # The second machine dies during a long reply.
        window.sampling = SamplingParams(max_tokens=5000, temperature=1.0, seed=3, ban_eos=True)
        window.engine_controller.text.connect(lambda _t: servers[1].kill())
        window.chat.input.setFocus()
        qtbot.keyClicks(window.chat.input, "Tell me a long story.")
        with qtbot.waitSignal(window.engine_controller.unloaded, timeout=HANG_GUARD_MS):
            qtbot.keyClick(window.chat.input, Qt.Key.Key_Return)
        error = window.chat.status.text()
        assert error.startswith("Error:") and servers[1].endpoint in error
        assert servers[0].endpoint not in error and "chat is kept" in error
        # What came of the reply is kept, marked as cut with the reason (issue 25).
        history = [(m.role, m.content) for m in window.chat.history]
        assert history[:-2] == kept and history[-2] == ("user", "Tell me a long story.")
        assert history[-1][0] == "assistant" and history[-1][1]
        assert window.chat.transcript.toPlainText().endswith("· Continue finishes it")
        assert window.loaded is None  # and the load bar says why
        assert window.load_bar.status.text() == f"No model loaded: {error.removeprefix('Error: ')}."
        # The window responds: the dead machine is checked again and left out of the launch.
        qtbot.waitUntil(lambda: "refused" in second.state.text(), timeout=HANG_GUARD_MS)
        qtbot.waitUntil(lambda: "✓ reachable" in first.state.text(), timeout=HANG_GUARD_MS)
        assert window.launch_state.config.rpc == (parse_endpoint(servers[0].endpoint),)
        # The split typed for two machines went back to automatic for the one left.
        assert window.launch_state.config.tensor_split == () and editor.auto_split.isChecked()
        # Check again: the row shows the check running, then its answer.
        qtbot.mouseClick(second.check_button, Qt.MouseButton.LeftButton)
        assert second.state.text() == "checking…" and not second.check_button.isEnabled()
        qtbot.waitUntil(lambda: "refused" in second.state.text(), timeout=HANG_GUARD_MS)
        assert plan_names(window)[0] == f"RPC0 {servers[0].endpoint} (CPU)"
        assert window.load_button.isEnabled()
        window.close()
        assert window.engine_controller.is_finished()


def test_the_machine_list_survives_a_restart_and_a_down_machine_is_not_used(
    qtbot: QtBot, default_model: Path, tmp_path: Path
) -> None:
    with rpc_servers(tmp_path, 1) as (server,):
        window = open_window(qtbot, default_model)
        add_machine(qtbot, window, server.endpoint)
        down = f"127.0.0.1:{free_port()}"
        add_machine(qtbot, window, down)
        window.machines.cards[down].use.setChecked(False)
        window.close()
        saved, _ = SettingsStore().load()
        assert saved.machines == [SavedMachine(server.endpoint), SavedMachine(down, use=False)]

        window = open_window(qtbot, default_model)
        cards = window.machines.cards
        assert list(cards) == [server.endpoint, down]
        qtbot.waitUntil(lambda: "✓ reachable" in cards[server.endpoint].state.text())
        assert cards[server.endpoint].use.isChecked() and not cards[down].use.isChecked()
        assert window.launch_state.config.rpc == (parse_endpoint(server.endpoint),)
        qtbot.mouseClick(cards[down].remove_button, Qt.MouseButton.LeftButton)
        assert list(window.machines.cards) == [server.endpoint]
        assert SettingsStore().load()[0].machines == [SavedMachine(server.endpoint)]  # at once
        server.kill()
        window.close()

    # Its server is gone at the next start: the error shows and the launch does not use it.
    window = open_window(qtbot, default_model)
    card = window.machines.cards[server.endpoint]
    qtbot.waitUntil(lambda: "refused" in card.state.text(), timeout=HANG_GUARD_MS)
    assert card.use.isChecked()  # still wanted: used again once it answers
    assert window.launch_state.config.rpc == ()
    assert not any(name.startswith("RPC") for name in plan_names(window))
    window.close()


def test_share_settings_survive_a_restart_but_the_address_does_not(
    qtbot: QtBot, default_model: Path, tmp_path: Path
) -> None:
    window = open_window(qtbot, default_model)
    share = window.machines.share
    share.port.setValue(50111)
    share.cache.setChecked(True)
    cpu = share.device.findData("CPU")
    assert cpu > 0
    share.device.setCurrentIndex(cpu)
    share.device.activated.emit(cpu)  # as a user's pick
    share.host.setCurrentIndex(share.host.count() - 1)  # every network, for this run only
    window.close()
    assert SettingsStore().load()[0].share["port"] == 50111

    window = open_window(qtbot, default_model)
    share = window.machines.share
    assert share.port.value() == 50111 and share.cache.isChecked()
    qtbot.waitUntil(lambda: share.device.currentData() == "CPU", timeout=HANG_GUARD_MS)
    assert share.host.currentData() == "127.0.0.1"  # a network address is chosen each time
    window.close()


def test_a_split_over_machines_stays_at_restart_and_resets_when_one_goes(
    qtbot: QtBot, default_model: Path, tmp_path: Path
) -> None:
    with rpc_servers(tmp_path, 2) as servers:
        window = open_window(qtbot, default_model)
        for server in servers:
            add_machine(qtbot, window, server.endpoint)
        window.launch.gpu_layers.setValue(20)
        window.split_editor.auto_split.setChecked(False)
        window.split_editor.shares[0].setValue(75.0)
        window.split_editor.shares[1].setValue(25.0)
        with qtbot.waitSignal(window.engine_controller.loaded, timeout=HANG_GUARD_MS):
            window.load_model()  # the launch is remembered with the model
        window.close()

        window = open_window(qtbot, default_model)
        qtbot.waitUntil(lambda: window.launch_state.resolved is not None, timeout=HANG_GUARD_MS)
        assert window.launch_state.config.tensor_split == (75.0, 25.0)  # the machines answered
        assert not window.split_editor.auto_split.isChecked()
        qtbot.mouseClick(
            window.machines.cards[servers[1].endpoint].remove_button, Qt.MouseButton.LeftButton
        )
        assert window.launch_state.config.tensor_split == ()  # typed for two devices
        assert window.split_editor.auto_split.isChecked()
        assert plan_names(window) == [f"RPC0 {servers[0].endpoint} (CPU)", "CPU (RAM)"]
        window.close()


def test_machines_given_on_the_command_line_are_listed_and_used(
    qtbot: QtBot, default_model: Path, tmp_path: Path
) -> None:
    with rpc_servers(tmp_path, 1) as (server,):
        given = given_options({"rpc": server.endpoint})  # as the app gives --rpc
        window = MainWindow(initial_model=default_model, initial_options=given)
        qtbot.addWidget(window)
        card = window.machines.cards[server.endpoint]
        assert card.use.isChecked()
        qtbot.waitUntil(lambda: window.launch_state.resolved is not None, timeout=HANG_GUARD_MS)
        assert plan_names(window)[0] == f"RPC0 {server.endpoint} (CPU)"
        window.close()


def test_share_this_machine_starts_serves_and_stops(qtbot: QtBot, tmp_path: Path) -> None:
    share = SharePanel()
    qtbot.addWidget(share)
    assert share.host.currentData() == "127.0.0.1"  # this computer only, unless chosen
    text = " ".join(label.text() for label in share.findChildren(type(share.status)))
    assert "No authentication, no encryption" in text and "One client at a time" in text
    port = free_port()
    share.port.setValue(port)
    share.device.setCurrentIndex(share.device.findData(""))
    share.cache_folder = tmp_path  # as chosen with Folder…: LLAMA_CACHE for the server
    share.cache.setChecked(True)
    with qtbot.waitSignal(
        share.stateChanged, timeout=HANG_GUARD_MS, check_params_cb=lambda s: s == "serving"
    ):
        qtbot.mouseClick(share.start_button, Qt.MouseButton.LeftButton)
    assert share.status.text().startswith(f"Serving on 127.0.0.1:{port}")
    pid = share.pid
    assert pid is not None and is_running(pid)
    assert (tmp_path / "rpc").is_dir()  # the server made its tensor cache there
    assert b"-c" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert f"LLAMA_CACHE={tmp_path}".encode() in Path(f"/proc/{pid}/environ").read_bytes()
    machine = probe(f"127.0.0.1:{port}")  # another client sees its device
    assert machine.devices and machine.version[0] == 7
    with qtbot.waitSignal(
        share.stateChanged, timeout=HANG_GUARD_MS, check_params_cb=lambda s: s == "stopped"
    ):
        qtbot.mouseClick(share.start_button, Qt.MouseButton.LeftButton)
    assert not is_running(pid)
    assert share.start_button.text() == "Start sharing" and share.port.isEnabled()
    close_share(share)


def test_a_taken_port_says_why_sharing_failed(qtbot: QtBot) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        share = SharePanel()
        qtbot.addWidget(share)
        share.port.setValue(taken.getsockname()[1])
        with qtbot.waitSignal(
            share.stateChanged, timeout=HANG_GUARD_MS, check_params_cb=lambda s: s == "failed"
        ):
            share.start()
    assert "could not listen" in share.status.text()
    assert share.log.isVisibleTo(share) and "could not listen" in share.log.toPlainText()
    assert share.start_button.text() == "Start sharing" and share.pid is None
    close_share(share)


def test_closing_the_window_stops_the_shared_server(qtbot: QtBot, default_model: Path) -> None:
    window = open_window(qtbot, default_model)
    share = window.machines.share
    assert share.device.findData("CPU") > 0  # this machine's devices, after "All GPUs"
    share.device.setCurrentIndex(share.device.findData("CPU"))
    share.port.setValue(free_port())
    with qtbot.waitSignal(
        share.stateChanged, timeout=HANG_GUARD_MS, check_params_cb=lambda s: s == "serving"
    ):
        share.start()
    pid = share.pid
    assert pid is not None and is_running(pid)
    window.close()  # asks first: other computers lose this machine
    assert window.isVisible() and "sharing this machine" in window.quit_guard.box.text()  # type: ignore[union-attr]
    window.quit_guard.quit_button.click()
    QApplication.processEvents()
    assert not window.isVisible()
    assert not is_running(pid)  # no orphan left behind


def test_an_unticked_machine_in_use_says_the_loaded_model_keeps_it(qtbot: QtBot) -> None:
    """Unticked while the loaded model uses it: the card said "✓ in use by the loaded model"
    beside "not used"; now it says the model keeps it and the next load leaves it out."""
    machine = MachineList([SavedMachine("a:1")]).machines[0]
    device = RemoteDevice("a:1", 0, 20 * 1024**3, 24 * 1024**3, 128)
    machine.found = RemoteMachine("a:1", (7, 0, 0), 0.4, (device,))
    machine.in_use = True
    card = MachineCard("a:1")
    qtbot.addWidget(card)
    card.show_machine(machine, {("a:1", 0): "RPC0"})
    assert card.devices.text().startswith("RPC0 · GPU #0")
    card.use.click()  # untick "Use for the model"
    machine.use = card.use.isChecked()
    assert machine.use is False
    card.show_machine(machine, {})  # the next launch has no RPC devices
    words = " ".join((card.state.text(), card.devices.text(), card.note.text()))
    assert "not used" not in words.lower()
    assert "next load leaves it out" in card.state.text()
    assert card.devices.text().startswith("loaded model only · GPU #0")
    assert "keeps it until you unload" in card.note.text()
