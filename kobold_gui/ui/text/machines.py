"""The Machines tab's words for a machine and its devices (Qt-free, so they are tested
without a window)."""

from __future__ import annotations

from kobold_gui.core.remote.machines import Machine
from kobold_gui.core.remote.probe import RemoteDevice
from kobold_gui.core.units import human_bytes


def state_text(machine: Machine) -> str:
    """One line: how the machine answered its last check."""
    found = machine.found
    if machine.in_use and found is not None:
        state = "✓ in use by the loaded model (not checked while it is)"
        if not machine.use:  # unticked: the loaded model keeps it, the next load does not
            state = "✓ in use by the loaded model until it is unloaded; the next load leaves it out"
    elif machine.checking:
        state = "checking…"
    elif machine.error is not None:
        return f"✗ {machine.error}"
    elif found is None:
        return "not checked yet"
    else:
        state = "✓ reachable"
    if found is None:
        return state
    rtt = found.rtt_ms
    return f"{state} · RPC {found.version_text} · round trip {rtt:.{1 if rtt >= 1 else 2}f} ms"


def device_text(device: RemoteDevice, rpc_name: str | None, loaded_only: bool = False) -> str:
    """'RPC0 · GPU #0 · 22.1 GiB free of 24.0 GiB VRAM'; a CPU device reports its RAM
    (free and total alike). `loaded_only`: the loaded model uses the device, the next load
    will not (its machine was unticked)."""
    name = rpc_name or ("loaded model only" if loaded_only else "not used")
    if device.is_cpu:
        if device.memory_free == device.memory_total:
            memory = f"{human_bytes(device.memory_total)} RAM"
        else:
            memory = f"RAM {human_bytes(device.memory_free)} free of "
            memory += human_bytes(device.memory_total)
    else:
        memory = f"{human_bytes(device.memory_free)} free of "
        memory += f"{human_bytes(device.memory_total)} VRAM"
    return f"{name} · {device.kind} #{device.index} · {memory}"
