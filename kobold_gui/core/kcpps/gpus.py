"""Which GPUs a launch uses, in KoboldCPP's words and in kobold-gui's.

KoboldCPP numbers CUDA devices in PCI bus order (it sets CUDA_DEVICE_ORDER=PCI_BUS_ID), which
is NVML's order, so its device numbers are kobold-gui's GPU indices. It says "only GPU N" with a
digit inside usecuda (0 to 3) when no tensor split is given; with a split, the digit names the
main GPU, and a GPU left out gets a share of 0. kobold-gui says the same with a GPU list, shares
for the listed GPUs, and the main GPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kobold_gui.core.kcpps.keys import KcppsNote
from kobold_gui.core.launch.options import LaunchConfig
from kobold_gui.core.launch.values import ConfigError, GpuSelection, parse_tensor_split, split_text

MAX_CUDA_DIGIT = 3  # usecuda accepts the words 0 to 3


def gpus_from_kobold(data: Mapping[str, Any], values: dict[str, Any]) -> list[KcppsNote]:
    """Set gpus, tensor_split and maingpu in `values` from usecuda, tensor_split and maingpu
    (KoboldCPP's list of shares, or its text, read here once)."""
    notes: list[KcppsNote] = []
    cuda = data.get("usecuda")
    words = [str(w) for w in cuda] if isinstance(cuda, list) else []
    digit = next((int(w) for w in words if w.isdigit()), None)
    raw = data.get("tensor_split")
    try:
        shares = parse_tensor_split(raw) if raw is not None else ()
    except ConfigError as e:
        why = str(e).removeprefix("--tensor_split: ")
        notes.append(KcppsNote("tensor_split", raw, f"not a split: {why}"))
        shares = ()
    if shares:
        used = tuple(i for i, s in enumerate(shares) if s > 0)
        if len(used) < len(shares):  # a share of 0 leaves a GPU out
            values["gpus"] = GpuSelection(used)
        kept = tuple(shares[i] for i in used)
        values["tensor_split"] = kept if len(kept) > 1 else ()
        if digit is not None and values.get("maingpu", -1) < 0:
            values["maingpu"] = digit
    elif digit is not None:
        values["gpus"] = GpuSelection((digit,))  # KoboldCPP shows only this GPU to CUDA
        values["maingpu"] = -1
    return notes


def gpus_to_kobold(
    config: LaunchConfig,
    out: dict[str, Any],
    words: list[str],
    maingpu_key: bool = True,
    main_digit: bool = False,
) -> list[KcppsNote]:
    """Write tensor_split and maingpu for the launch's GPU choice, and add the GPU digit to
    the usecuda `words`. Without a maingpu key (KoboldCPP before 1.8x) the digit names the
    main GPU of a split, as those releases read it."""
    notes: list[KcppsNote] = []
    wanted = config.gpus.indices
    shares = config.tensor_split
    split: list[float] | None = list(shares) if shares else None
    main = config.maingpu
    if wanted is not None and len(wanted) == 1 and wanted[0] <= MAX_CUDA_DIGIT:
        words.append(str(wanted[0]))
        split, main = None, -1
    elif wanted is not None:
        if not shares or len(shares) != len(wanted):
            why = "by free memory" if not shares else f"{len(shares)} shares for {len(wanted)} GPUs"
            reason = f"KoboldCPP needs a share per GPU to leave GPUs out ({why}): saved as equal"
            notes.append(KcppsNote("tensor_split", split_text(shares), reason))
            shares = tuple(1.0 for _ in wanted)
        split = [0.0] * (max(wanted) + 1)
        for index, share in zip(wanted, shares, strict=True):
            split[index] = share
        if main < 0:
            main = wanted[0]
    if maingpu_key:
        out["maingpu"] = main
    if (main_digit or not maingpu_key) and 0 <= main <= MAX_CUDA_DIGIT and split is not None:
        words.append(str(main))
    out["tensor_split"] = split
    return notes
