"""The Machines tab's list without a window: addresses, which machines the launch gets (and
in which order llama.cpp numbers their devices), the words for a machine, and the list kept
in the settings across restarts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kobold_gui.core.remote.machines import MachineList, SavedMachine, normalize
from kobold_gui.core.remote.probe import RemoteDevice, RemoteMachine, RpcError
from kobold_gui.core.settings import AppSettings, SettingsStore
from kobold_gui.ui.text.machines import device_text, state_text

GiB = 1024**3


def answered(endpoint: str, *devices: tuple[int, int, int]) -> RemoteMachine:
    """A check's result as rpc_probe returns it: (free, total, alignment) per device."""
    return RemoteMachine(
        endpoint,
        (7, 0, 0),
        0.4,
        tuple(RemoteDevice(endpoint, i, *d) for i, d in enumerate(devices)),
    )


def test_addresses_get_the_default_port_and_bad_ones_are_refused() -> None:
    assert normalize(" 192.168.1.20 ") == "192.168.1.20:50052"
    assert normalize("gpu-box:5000") == "gpu-box:5000"
    machines = MachineList()
    machines.add("gpu-box:5000")
    with pytest.raises(RpcError, match="already in the list"):
        machines.add("gpu-box:5000")
    for bad in ("", "gpu-box:", "gpu-box:99999", ":5000"):
        with pytest.raises(RpcError, match="host:port"):
            machines.add(bad)


def test_the_launch_gets_the_used_machines_that_answered_in_order() -> None:
    machines = MachineList([SavedMachine("a:1"), SavedMachine("b:2"), SavedMachine("c:3")])
    a, b, c = machines.machines
    a.found = answered("a:1", (20 * GiB, 24 * GiB, 128), (10 * GiB, 12 * GiB, 128))
    b.error = "b:2 refused the connection"  # down: not used until it answers
    c.found = answered("c:3", (30 * GiB, 30 * GiB, 32))
    devices, endpoints = machines.launch_remote()
    assert endpoints == ("a:1", "c:3")
    assert [(d.endpoint, d.index) for d in devices] == [("a:1", 0), ("a:1", 1), ("c:3", 0)]
    assert machines.rpc_names() == {("a:1", 0): "RPC0", ("a:1", 1): "RPC1", ("c:3", 0): "RPC2"}
    a.use = False
    assert machines.launch_remote()[1] == ("c:3",)
    assert machines.rpc_names() == {("c:3", 0): "RPC0"}
    b.error, b.checking = None, True  # checked again: in the launch, without devices yet
    assert machines.launch_remote()[1] == ("b:2", "c:3")


def test_a_machine_and_its_devices_in_words() -> None:
    machines = MachineList([SavedMachine("a:1")])
    machine = machines.machines[0]
    assert state_text(machine) == "not checked yet"
    machine.checking = True
    assert state_text(machine) == "checking…"
    machine.checking, machine.found = False, answered("a:1", (2 * GiB, 2 * GiB, 32))
    assert state_text(machine) == "✓ reachable · RPC 7.0.0 · round trip 0.40 ms"
    machine.in_use = True
    assert state_text(machine).startswith("✓ in use by the loaded model")
    machine.found, machine.error = None, "a:1 refused the connection"
    assert state_text(machine) == "✗ a:1 refused the connection"
    cpu = RemoteDevice("a:1", 0, 2 * GiB, 2 * GiB, 32)
    gpu = RemoteDevice("a:1", 1, 20 * GiB, 24 * GiB, 128)
    assert device_text(cpu, "RPC0") == "RPC0 · CPU #0 · 2.00 GiB RAM"
    assert device_text(gpu, None) == "not used · GPU #1 · 20.00 GiB free of 24.00 GiB VRAM"


def test_the_machine_list_is_kept_in_the_settings(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path / "settings.json")
    settings = AppSettings(machines=[SavedMachine("a:1"), SavedMachine("b:2", use=False)])
    store.save(settings)
    loaded, warning = store.load()
    assert warning is None
    assert loaded.machines == [SavedMachine("a:1", True), SavedMachine("b:2", False)]


def test_a_bad_machine_entry_is_dropped_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    entries = [{"endpoint": "a:1"}, {"endpoint": "no port:x"}, "junk", {"endpoint": "a:1"}]
    path.write_text(json.dumps({"version": 1, "machines": entries}))
    loaded, warning = SettingsStore(path).load()
    assert warning is None and loaded.machines == [SavedMachine("a:1", True)]
