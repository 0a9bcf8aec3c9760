"""llama.cpp's own account of its memory: the buffer sizes it logs at load, per device.

llama_model_load: CUDA0 model buffer size =  3992.51 MiB
llama_kv_cache:   CUDA0 KV buffer size =   512.00 MiB
llama_context:    CUDA0 compute buffer size =   258.50 MiB
llama_context:  CPU  output buffer size =     0.49 MiB
load_tensors: RPC0[10.0.0.2:50052] model buffer size = 1.00 MiB   (a remote machine's device 0)
llama_kv_cache:     Meta() KV buffer size =    11.25 MiB   (tensor split: the largest device's)
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

from kobold_gui.core.units import MiB

_LINE = re.compile(
    r"(?P<device>[\w.:\[\]()-]+(?:,[\w.:\[\]()-]+)*)\s+"
    r"(?P<kind>model|KV|compute|output|RS|LoRA)\s+buffer size\s*=\s*"
    r"(?P<mib>[\d.]+)\s*MiB"
)
_RPC = re.compile(r"^RPC(?P<index>\d+)\[(?P<endpoint>[^\]]+)\]$")


def parse_buffer_sizes(lines: Iterable[str]) -> dict[str, dict[str, int]]:
    """{device: {kind: bytes}}, kinds: model, KV, compute, output. Repeated lines add up
    (a model split over several buffers of one device logs one line per buffer)."""
    sizes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for line in lines:
        m = _LINE.search(line)
        if m:
            sizes[m["device"]][m["kind"]] += round(float(m["mib"]) * MiB)
    return {device: dict(kinds) for device, kinds in sizes.items()}


def device_totals(sizes: dict[str, dict[str, int]]) -> dict[str, int]:
    return {device: sum(kinds.values()) for device, kinds in sizes.items()}


def rpc_buffer_device(name: str) -> tuple[str, int] | None:
    """'RPC1[10.0.0.2:50052]' -> ('10.0.0.2:50052', 1): a remote device's buffers are named
    by the machine and the device's number there (not by the client's RPC<n>)."""
    m = _RPC.match(name)
    return (m["endpoint"], int(m["index"])) if m else None
