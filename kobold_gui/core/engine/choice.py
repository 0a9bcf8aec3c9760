"""Which engine runs a launch: in this process, or in a child process.

A load that uses other machines' devices (llama.cpp's RPC backend) runs in a child process
(core/engine/child.py): ggml aborts the process whose connection to a machine fails.
`isolate` runs every load there (bench/engine_process.py measures what that costs). The
worker (core/engine/worker.py) asks here for each load; the CLI and scripts that own their
engine do too.
"""

from __future__ import annotations

from kobold_gui.core.engine.child import ChildEngine
from kobold_gui.core.engine.local import LocalEngine
from kobold_gui.core.engine.protocol import Engine
from kobold_gui.core.launch.resolve import ResolvedLaunch


def needs_child(launch: ResolvedLaunch, isolate: bool = False) -> bool:
    return isolate or bool(launch.rpc_servers)


def engine_for(launch: ResolvedLaunch, isolate: bool = False) -> Engine:
    """A new, unloaded engine of the kind `launch` needs; load it with that launch."""
    return ChildEngine() if needs_child(launch, isolate) else LocalEngine()
