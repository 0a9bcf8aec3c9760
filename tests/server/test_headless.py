"""`kobold-gui --headless` serves until SIGTERM or Ctrl+C (SIGINT), then exits cleanly."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest


def _serve(model: Path, *flags: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kobold_gui", "--headless", "--model", str(model), *flags],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    found: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if m := re.search(r"KoboldAI API: (http://\S+)", line):
                found.append(m.group(1))
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(120)
    if not found:
        proc.kill()
        pytest.fail("the headless server did not say where it listens")
    return proc, found[0]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_headless_serves_until_signalled(default_model: Path, sig: signal.Signals) -> None:
    proc, url = _serve(
        default_model, "--port", "0", "--contextsize", "1024", "--password", "k",
        *(["--parallel", "3"] if sig == signal.SIGTERM else []),
    )  # fmt: skip
    try:
        headers = {"authorization": "Bearer k"}
        slots = httpx.get(url + "/props", headers=headers).json()["total_slots"]
        assert slots == (3 if sig == signal.SIGTERM else 1)  # the launch's `parallel`
        assert (
            httpx.get(url + "/api/v1/model", headers=headers)
            .json()["result"]
            .startswith("koboldcpp/SmolLM2")
        )
        assert httpx.get(url + "/v1/models").status_code == 401
        proc.send_signal(sig)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_headless_port_in_use_is_a_clear_error(default_model: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "kobold_gui",
                "--headless",
                "--model",
                str(default_model),
                "--contextsize",
                "512",
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2
    assert f"port {port} is already in use" in done.stderr
    assert "Loading" not in done.stderr  # said before the model loads
    assert "Traceback" not in done.stderr
