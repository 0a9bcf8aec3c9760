"""`kobold-gui --rpc-server`: share this machine's GPUs (or CPU) with other machines, as
llama.cpp's rpc-server does, with its flags (-H, -p, -d, -c, -t). It is the same llama.cpp
build as the app's, so the protocol version always matches the app's own client."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from kobold_gui.core.engine.child_process import DIE_WITH_PARENT
from kobold_gui.core.remote.probe import DEFAULT_PORT, LOCAL_HOST

WARNING = (
    "The RPC server has no authentication and no encryption: anyone who can reach this port "
    "can use this machine's devices and memory. Bind a LAN address only on a network you trust."
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kobold-gui --rpc-server",
        description="Serve this machine's devices to other machines through llama.cpp's RPC "
        "protocol (one client at a time).",
    )
    p.add_argument(
        "-H", "--host", default=LOCAL_HOST, help=f"address to bind (default {LOCAL_HOST})"
    )
    p.add_argument(
        "-p", "--port", type=int, default=DEFAULT_PORT, help="port (default %(default)s)"
    )
    p.add_argument(
        "-d",
        "--device",
        default="",
        help="devices to serve, by llama.cpp's names, e.g. CUDA0 or CUDA0,CUDA1 "
        "(default: every GPU, else the CPU)",
    )
    p.add_argument(
        "-c", "--cache", action="store_true", help="keep received tensors in a local cache"
    )
    p.add_argument("-t", "--threads", type=int, default=0, help="CPU threads (0: automatic)")
    return p


def default_devices() -> list[str]:
    """rpc-server's choice: every device that is not a CPU, else the CPU."""
    from kobold_gui.core.hardware.ggml_devices import backend_devices

    devices = backend_devices()
    gpus = [d.name for d in devices if d.kind in ("GPU", "iGPU")]
    return gpus or [d.name for d in devices if d.kind == "CPU"][:1]


def run_rpc_server(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    if not 0 < args.port < 65536:
        print(f"kobold-gui: error: port {args.port} is not valid", file=sys.stderr)
        return 2
    from kobold_gui.core.hardware.ggml_devices import backend_devices
    from kobold_gui.core.llama.types import LlamaError
    from kobold_gui.core.remote.rpc_backend import serve

    known = {d.name for d in backend_devices()}
    names = [n for n in args.device.replace("/", ",").split(",") if n] or default_devices()
    unknown = [n for n in names if n not in known]
    if unknown:
        have = ", ".join(sorted(known))
        print(f"kobold-gui: error: unknown device {unknown[0]} (devices: {have})", file=sys.stderr)
        return 2
    if args.host != LOCAL_HOST:
        print(f"WARNING: {WARNING}", file=sys.stderr)
    if os.environ.get(DIE_WITH_PARENT):
        _die_with_parent()
    threads = args.threads or max(1, (os.cpu_count() or 2) // 2)
    sys.stdout.flush()
    try:
        serve(f"{args.host}:{args.port}", names, args.cache, threads)
    except LlamaError as e:
        print(f"kobold-gui: error: {e}", file=sys.stderr)
        return 2
    # ggml's server loop only returns when it could not start (e.g. the port is taken).
    print(
        f"kobold-gui: error: the RPC server could not listen on {args.host}:{args.port}",
        file=sys.stderr,
    )
    return 1


def _die_with_parent() -> None:
    """Started by the window: end with it, also when it crashes (Linux: the kernel sends
    SIGTERM when the parent dies). A terminal user's server is left alone."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        ctypes.CDLL(None).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent was already gone before prctl
        sys.exit(0)
