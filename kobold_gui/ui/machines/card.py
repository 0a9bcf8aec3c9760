"""One remote machine in the Machines tab: its address, "use for the model", how its last
check went (version, round trip) and its devices as llama.cpp will name them; Check again
and Remove. It draws a core Machine (core/remote/machines.py) and sends the user's clicks on."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from kobold_gui.core.remote.machines import Machine
from kobold_gui.ui.text.machines import device_text, state_text

OK_COLOR = "#26a269"
ERROR_COLOR = "#c01c28"


class MachineCard(QFrame):
    useToggled = Signal(str, bool)  # endpoint, wanted for the model
    checkRequested = Signal(str)
    removeRequested = Signal(str)

    def __init__(self, endpoint: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.endpoint = endpoint
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setObjectName("machineCard")
        # The address on a line of its own: a long host name is cut, never widens the tab.
        self.title = QLabel(f"<b>{endpoint}</b>")
        self.title.setObjectName("machineEndpoint")
        self.title.setToolTip(endpoint)
        self.title.setMinimumWidth(0)
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.use = QCheckBox("Use for the model")
        self.use.setObjectName("machineUse")
        self.use.setToolTip(
            "Its devices join the memory plan and the split, before this computer's GPUs"
        )
        self.use.toggled.connect(lambda on: self.useToggled.emit(self.endpoint, on))
        self.check_button = QPushButton("Check again")
        self.check_button.setObjectName("machineCheck")
        self.check_button.clicked.connect(lambda: self.checkRequested.emit(self.endpoint))
        self.remove_button = QPushButton("Remove")
        self.remove_button.setObjectName("machineRemove")
        self.remove_button.clicked.connect(lambda: self.removeRequested.emit(self.endpoint))
        self.state = QLabel()
        self.state.setObjectName("machineState")
        self.state.setWordWrap(True)
        self.state.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.devices = QLabel()
        self.devices.setObjectName("machineDevices")
        self.devices.setWordWrap(True)
        self.devices.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.note = QLabel()
        self.note.setObjectName("machineNote")
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: palette(mid);")

        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.check_button)
        top.addWidget(self.remove_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.use)
        layout.addWidget(self.state)
        layout.addWidget(self.devices)
        layout.addWidget(self.note)

    def show_machine(self, machine: Machine, rpc_names: dict[tuple[str, int], str]) -> None:
        self.use.blockSignals(True)
        self.use.setChecked(machine.use)
        self.use.blockSignals(False)
        self.state.setText(state_text(machine))
        color = ERROR_COLOR if machine.error else OK_COLOR if machine.found else ""
        self.state.setStyleSheet(f"color: {color};" if color else "")
        found = machine.found
        lines = (
            [
                device_text(d, rpc_names.get((d.endpoint, d.index)), machine.in_use)
                for d in found.devices
            ]
            if found is not None and machine.error is None
            else []
        )
        self.devices.setText("\n".join(lines))
        self.devices.setVisible(bool(lines))
        self.check_button.setEnabled(not machine.checking and not machine.in_use)
        self.remove_button.setEnabled(not machine.in_use)
        self.note.setText(self._note(machine))
        self.note.setVisible(bool(self.note.text()))

    @staticmethod
    def _note(machine: Machine) -> str:
        if machine.in_use and not machine.use:
            return "Unticked: the loaded model keeps it until you unload or reload."
        if machine.in_use:
            return "Unload the model to check it again or remove it."
        if machine.use and machine.error is not None:
            return "Not used until it answers: Check again when its RPC server runs."
        if not machine.use:
            return "Not used for the model."
        return ""
