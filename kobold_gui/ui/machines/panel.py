"""The Machines tab: other computers' GPUs (or CPUs) through llama.cpp's RPC backend, and
sharing this one. Each machine is checked from Python (core/remote/probe.py) on a worker
thread; the machines used that answered go to the launch state, so the memory plan and the
split editor show their devices (RPC0, RPC1, ...) beside the local GPUs."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from kobold_gui.core.launch.state import LaunchState
from kobold_gui.core.remote.machines import MachineList, SavedMachine
from kobold_gui.core.remote.probe import (
    DEFAULT_PORT,
    Endpoint,
    RemoteMachine,
    RpcError,
    parse_endpoint,
    probe,
)
from kobold_gui.ui.common.net_jobs import NetJobs
from kobold_gui.ui.machines.card import MachineCard
from kobold_gui.ui.machines.share_panel import SharePanel

PROBE_TIMEOUT_S = 3.0
INTRO = (
    "Another computer lends its GPU (or CPU) to the model through llama.cpp's RPC server: "
    "start it there (Share this machine below, <tt>kobold-gui --rpc-server -H ADDRESS</tt>, "
    "or llama.cpp's <tt>rpc-server</tt> of the same version) and add it here. Its devices "
    "come first in the memory plan and the split (Model tab), named RPC0, RPC1, …"
)


class MachinesPanel(QWidget):
    changed = Signal()  # the list or a check box changed: worth saving
    # The remote devices in the launch changed (a machine added, removed, dropped, or
    # another device count): a split typed for the old ones no longer fits.
    devicesChanged = Signal()

    def __init__(
        self,
        state: LaunchState,
        saved: Iterable[SavedMachine] = (),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.state = state
        self.machines = MachineList(list(saved))
        self.cards: dict[str, MachineCard] = {}
        self._checks: dict[str, int] = {}  # endpoint -> the number of its newest check
        self._applied: tuple[tuple[str, int], ...] = ()  # the devices the launch has
        # The saved machines' first checks: their answers complete the devices a saved
        # split was made for, which is no change.
        self._first_checks = {m.endpoint for m in self.machines.machines}
        self.jobs = NetJobs(self, threads=4)
        self.share = SharePanel()
        self._build()
        self.state.subscribe(lambda _s: self._apply())
        for machine in self.machines.machines:
            self._add_card(machine.endpoint)
        self.check_all()
        self._redraw()

    def _build(self) -> None:
        intro = QLabel(INTRO)
        intro.setWordWrap(True)
        self.address = QLineEdit()
        self.address.setObjectName("machineAddress")
        self.address.setPlaceholderText(f"host:port, e.g. 192.168.1.20:{DEFAULT_PORT}")
        self.address.returnPressed.connect(self.add_typed)
        self.add_button = QPushButton("Add")
        self.add_button.setObjectName("machineAdd")
        self.add_button.clicked.connect(self.add_typed)
        self.message = QLabel()
        self.message.setObjectName("machineMessage")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #c01c28;")
        self.message.hide()
        self.empty = QLabel("No machines yet.")
        self.empty.setStyleSheet("color: palette(mid);")
        row = QHBoxLayout()
        row.addWidget(self.address, 1)
        row.addWidget(self.add_button)
        self.card_list = QVBoxLayout()
        self.card_list.setContentsMargins(0, 0, 0, 0)
        remote = QGroupBox("Remote machines")
        box = QVBoxLayout(remote)
        box.addWidget(intro)
        box.addLayout(row)
        box.addWidget(self.message)
        box.addWidget(self.empty)
        box.addLayout(self.card_list)
        layout = QVBoxLayout(self)
        layout.addWidget(remote)
        layout.addWidget(self.share)
        layout.addStretch(1)

    # -- the user's edits --------------------------------------------------------------------
    def add_typed(self) -> None:
        if self.add(self.address.text()):
            self.address.clear()

    def add(self, text: str) -> bool:
        """Add a machine (used for the model) and check it; a bad or repeated address is
        said below the field."""
        try:
            machine = self.machines.add(text)
        except RpcError as e:
            self.message.setText(str(e))
            self.message.show()
            return False
        self.message.hide()
        self._add_card(machine.endpoint)
        self.check(machine.endpoint)
        self.changed.emit()
        return True

    def want(self, addresses: Iterable[Endpoint]) -> None:
        """Machines given on the command line (--rpc): in the list and used."""
        for endpoint in map(str, addresses):
            machine = self.machines.get(endpoint)
            if machine is None:
                self.add(endpoint)
            elif not machine.use:
                self._set_use(endpoint, True)

    def remove(self, endpoint: str) -> None:
        self.machines.remove(endpoint)
        self._checks.pop(endpoint, None)  # a check still running is ignored
        self._first_checks.discard(endpoint)
        card = self.cards.pop(endpoint, None)
        if card is not None:
            card.deleteLater()
        self._redraw()
        self.changed.emit()

    def _set_use(self, endpoint: str, on: bool) -> None:
        machine = self.machines.get(endpoint)
        if machine is not None:
            machine.use = on
            self._redraw()
            self.changed.emit()

    def _add_card(self, endpoint: str) -> None:
        card = MachineCard(endpoint)
        card.useToggled.connect(self._set_use)
        card.checkRequested.connect(self.check)
        card.removeRequested.connect(self.remove)
        self.cards[endpoint] = card
        self.card_list.addWidget(card)

    # -- checks ---------------------------------------------------------------------------------
    def check(self, endpoint: str) -> None:
        """Probe a machine on a worker thread. One the loaded model uses is not probed: its
        server serves one client at a time, so it would not answer (and is not broken)."""
        machine = self.machines.get(endpoint)
        if machine is None or machine.in_use:
            return
        number = self._checks.get(endpoint, 0) + 1
        self._checks[endpoint] = number
        machine.checking = True
        self._redraw()
        self.jobs.run(
            probe,
            endpoint,
            PROBE_TIMEOUT_S,
            done=lambda found: self._checked(endpoint, number, found, None),
            failed=lambda error: self._checked(endpoint, number, None, error),
        )

    def _checked(
        self,
        endpoint: str,
        number: int,
        found: RemoteMachine | None,
        error: BaseException | None,
    ) -> None:
        machine = self.machines.get(endpoint)
        if machine is None or self._checks.get(endpoint) != number:
            return  # removed, or checked again since
        machine.checking = False
        if error is None:
            machine.found, machine.error = found, None
        else:
            machine.found = None
            machine.error = str(error) if isinstance(error, RpcError) else f"{endpoint}: {error}"
        self._redraw()
        self._first_checks.discard(endpoint)  # after: its answer was no change of devices

    def check_all(self) -> None:
        for machine in self.machines.machines:
            self.check(machine.endpoint)

    def set_in_use(self, endpoints: Iterable[str]) -> None:
        """The machines a load or the loaded model holds. Those it lets go are checked again
        (their memory changed, or one of them dropped)."""
        held = set(endpoints)
        freed = [m.endpoint for m in self.machines.machines if m.in_use and m.endpoint not in held]
        for machine in self.machines.machines:
            machine.in_use = machine.endpoint in held
            if machine.in_use:
                machine.checking = False
                self._checks[machine.endpoint] = self._checks.get(machine.endpoint, 0) + 1
        self._redraw()
        for endpoint in freed:
            self.check(endpoint)

    # -- drawing and the launch ----------------------------------------------------------------
    def _redraw(self) -> None:
        names = self.machines.rpc_names()
        for machine in self.machines.machines:
            self.cards[machine.endpoint].show_machine(machine, names)
        self.empty.setVisible(not self.machines.machines)
        self._apply()

    def _apply(self) -> None:
        """The used machines into the launch state, when they differ from what it has (its
        config may also come from a model's saved settings: this list decides)."""
        devices, endpoints = self.machines.launch_remote()
        # The list keys machines by their address as text (normalized when added): typed
        # here, where they go into the launch.
        rpc = tuple(parse_endpoint(e) for e in endpoints)
        if self.state.remote != devices or self.state.config.rpc != rpc:
            self.state.set_remote(devices, rpc)
        ids = tuple((d.endpoint, d.index) for d in devices)
        changed = ids != self._applied and not self._first_checks
        self._applied = ids
        if changed:
            self.devicesChanged.emit()

    def saved(self) -> list[SavedMachine]:
        return self.machines.saved()

    def shutdown(self) -> None:
        """On closing: the shared server stops; running checks end (bounded by their
        timeout)."""
        self._checks.clear()
        self.share.shutdown()
        self.jobs.shutdown()
