"""Real llama.cpp RPC servers on localhost ports (kobold-gui --rpc-server, each serving this
machine's CPU), for the tests of loads over other machines."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kobold_gui.core.remote.probe import RpcError, probe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RpcServer:
    def __init__(self, log_dir: Path, cache: bool = False) -> None:
        self.port = free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self.log = log_dir / f"rpc-{self.port}.log"
        args = ["--rpc-server", "-p", str(self.port), "-d", "CPU", "-t", "1"]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kobold_gui", *args + (["-c"] if cache else [])],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self._wait_ready()

    def _wait_ready(self, limit_s: float = 120.0) -> None:
        """Until it answers the hello (a hang guard, not a timing check)."""
        end = time.monotonic() + limit_s
        while True:
            try:
                probe(self.endpoint, timeout=2.0)
                return
            except RpcError as e:
                if self.proc.poll() is not None or time.monotonic() > end:
                    raise RuntimeError(f"RPC server did not start: {self.log.read_text()}") from e
                time.sleep(0.2)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def rpc_servers(log_dir: Path, count: int = 2, cache: bool = False) -> Iterator[list[RpcServer]]:
    servers: list[RpcServer] = []
    try:
        for _ in range(count):
            servers.append(RpcServer(log_dir, cache))
        yield servers
    finally:
        for server in servers:
            server.kill()
