"""The remote machines the user listed (Machines tab): which are used for the model, what
their last check said, and the devices they give the launch, named as llama.cpp will name
them (RPC<n>, in the order of the machines used). Qt-free: the panel draws from it.

A machine is used only while it is wanted (its check box) and has not failed its check: a
machine that is down at start shows its error and is left out of the launch until it
answers. While its check runs it stays in the launch without devices, so the launch says
it has not answered yet instead of quietly loading without it."""

from __future__ import annotations

from dataclasses import dataclass

from kobold_gui.core.remote.probe import (
    DEFAULT_PORT,
    RemoteDevice,
    RemoteMachine,
    RpcError,
    parse_endpoint,
)


@dataclass(frozen=True)
class SavedMachine:
    """A machine as the settings keep it."""

    endpoint: str
    use: bool = True


@dataclass
class Machine:
    endpoint: str
    use: bool = True  # the user wants it for the model
    checking: bool = False
    found: RemoteMachine | None = None  # the last check that answered
    error: str | None = None  # the last check's failure (then `found` is None)
    in_use: bool = False  # the loaded model (or a load running) uses it: not checked now

    @property
    def usable(self) -> bool:
        """Goes into the launch: wanted, and answering (or being checked)."""
        return self.use and self.error is None and (self.checking or self.found is not None)


def normalize(text: str) -> str:
    """'host' or 'host:port' -> 'host:port' (llama.cpp's rpc-server port when none is given).
    Raises RpcError for anything that is not an address."""
    text = text.strip()
    if text and ":" not in text:
        text = f"{text}:{DEFAULT_PORT}"
    host, port = parse_endpoint(text)
    return f"{host}:{port}"  # as the --rpc option normalizes it (core/launch/options.py)


class MachineList:
    def __init__(self, saved: list[SavedMachine] | None = None) -> None:
        self.machines: list[Machine] = [Machine(s.endpoint, s.use) for s in saved or []]

    def get(self, endpoint: str) -> Machine | None:
        return next((m for m in self.machines if m.endpoint == endpoint), None)

    def add(self, text: str) -> Machine:
        """A new machine, wanted for the model. Raises RpcError for a bad or repeated one."""
        endpoint = normalize(text)
        if self.get(endpoint) is not None:
            raise RpcError(f"{endpoint} is already in the list")
        machine = Machine(endpoint)
        self.machines.append(machine)
        return machine

    def remove(self, endpoint: str) -> None:
        self.machines = [m for m in self.machines if m.endpoint != endpoint]

    def saved(self) -> list[SavedMachine]:
        return [SavedMachine(m.endpoint, m.use) for m in self.machines]

    # -- what the launch gets --------------------------------------------------------------
    def launch_remote(self) -> tuple[tuple[RemoteDevice, ...], tuple[str, ...]]:
        """The devices of the machines used and their endpoints, in the list's order (for
        LaunchState.set_remote)."""
        used = [m for m in self.machines if m.usable]
        devices = tuple(d for m in used if m.found is not None for d in m.found.devices)
        return devices, tuple(m.endpoint for m in used)

    def rpc_names(self) -> dict[tuple[str, int], str]:
        """(endpoint, device index) -> RPC<n>, as llama.cpp numbers the devices it adds."""
        devices, _ = self.launch_remote()
        return {(d.endpoint, d.index): f"RPC{n}" for n, d in enumerate(devices)}
