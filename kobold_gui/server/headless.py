"""The API's command-line flags (KoboldCPP's names) and `--headless`: load the model and
serve it without a window until Ctrl+C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kobold_gui.core.launch.resolve import ResolvedLaunch
    from kobold_gui.core.models.gguf_info import GGUFInfo


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1 to 65535 (0: any free one), not {value}")
    return value


def add_server_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group(
        "local API (KoboldAI and OpenAI compatible; any of these opens the window serving)"
    )
    g.add_argument("--port", type=_port, metavar="N", help="serve on this port (default 5001)")
    g.add_argument(
        "--host",
        metavar="ADDR",
        help="address to listen on (default 127.0.0.1: this computer only; 0.0.0.0: all networks)",
    )
    g.add_argument("--password", metavar="KEY", help="API key clients must send (Bearer)")
    g.add_argument(
        "--multiuser",
        type=int,
        nargs="?",
        const=1,
        metavar="N",
        help="how many requests may wait, as KoboldCPP: 0 = busy answers 503, 1 = up to 16 "
        "wait (default), N = N - 1 wait; how many generate at once is --parallel",
    )
    g.add_argument(
        "--maxrequestsize",
        type=float,
        metavar="MB",
        help="largest request body accepted, in MB (default 32, as KoboldCPP): larger get 413",
    )
    g.add_argument(
        "--preloadstory",
        metavar="FILE",
        help="a KoboldAI Lite story (.json) served to front-ends at /api/extra/preloadstory",
    )
    g.add_argument("--headless", action="store_true", help="serve without a window")


def _settings(args: argparse.Namespace) -> Any:
    from kobold_gui.server.state import settings_from_args

    return settings_from_args(args)


def _slots_label(launch: ResolvedLaunch) -> str:
    """How many requests generate at once, and why (the `parallel` launch option)."""
    return f", parallel requests {launch.parallel_note}" if launch.parallel_note else ""


def _load(worker: Any, launch: ResolvedLaunch, info: GGUFInfo) -> Any:
    print(f"Loading {info.label}…", file=sys.stderr, flush=True)
    job = worker.load(launch, info=info)
    while not job.wait(0.5):
        pass
    return job


def run_headless_server(args: argparse.Namespace, launch: ResolvedLaunch, info: GGUFInfo) -> int:
    from kobold_gui.core.engine.worker import EngineWorker
    from kobold_gui.server.exposure import exposure_warning
    from kobold_gui.server.runner import ApiServer, ServerStartError, bind

    settings = _settings(args)
    try:  # a port in use is said before the model loads, not after
        sock = bind(settings.host, settings.port)
    except ServerStartError as e:
        print(f"kobold-gui: error: {e}", file=sys.stderr)
        return 2
    worker = EngineWorker()
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    server = None
    try:
        job = _load(worker, launch, info)
        if job.error is not None:
            print(f"kobold-gui: error: {job.error}", file=sys.stderr)
            return 2
        if stop.is_set():
            return 130
        server = ApiServer(worker, settings)
        try:
            server.start(sock=sock)
        except ServerStartError as e:
            print(f"kobold-gui: error: {e}", file=sys.stderr)
            return 2
        base = server.base_url()
        print(
            f"Serving {job.result.info.label} (context {job.result.n_ctx}"
            f"{_slots_label(launch)})\n"
            f"  KoboldAI API: {base}\n  OpenAI API:   {base}/v1",
            file=sys.stderr,
            flush=True,
        )
        if warning := exposure_warning(settings.host, settings.api_key):
            label = "Note" if settings.api_key else "Warning"
            print(f"{label}: {warning}", file=sys.stderr, flush=True)
        print("Ctrl+C stops.", file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
        print("Stopping…", file=sys.stderr, flush=True)
        return 0
    finally:
        if server is not None:
            server.stop()
        else:
            sock.close()
        worker.close(30)
        for s, handler in previous.items():
            signal.signal(s, handler)
