"""The PyInstaller bundle, built and started as a user would: no virtual environment on the
PATH, another working directory, a fresh home. Fails when something is missing inside."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from kobold_gui import __version__

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    work = tmp_path_factory.mktemp("work")
    subprocess.run(
        [
            "bash",
            str(ROOT / "packaging" / "build.sh"),
            "--with-model",
            "--dist",
            str(dist),
            "--work",
            str(work),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    )
    exe = dist / "kobold-gui" / "kobold-gui"
    assert exe.is_file() and os.access(exe, os.X_OK)
    return exe


def clean_env(home: Path) -> dict[str, str]:
    """A user's environment: no virtual environment on the PATH, a fresh home."""
    return {"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


def run_bundle(exe: Path, home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {**clean_env(home), "QT_QPA_PLATFORM": "offscreen", **env}
    return subprocess.run(
        [str(exe), *args], env=clean, cwd=home, capture_output=True, text=True, timeout=120
    )


def test_version(bundle: Path, tmp_path: Path) -> None:
    result = run_bundle(bundle, tmp_path, "--version")
    assert result.returncode == 0 and result.stdout.strip() == f"kobold-gui {__version__}"


def test_bundle_serves_the_api_headless(bundle: Path, tmp_path: Path) -> None:
    """uvicorn, FastAPI and sse-starlette made it into the bundle: a streamed generation
    and an OpenAI chat answer, then SIGTERM ends it cleanly."""
    import re
    import signal

    import httpx

    proc = subprocess.Popen(
        [str(bundle), "--headless", "--port", "0", "--contextsize", "512"],
        env=clean_env(tmp_path),
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stderr is not None
        url = ""
        for line in proc.stderr:  # ends when the process does
            if m := re.search(r"KoboldAI API: (http://\S+)", line):
                url = m.group(1)
                break
        assert url, "the bundle did not serve"
        body = {"prompt": "Hi", "max_length": 3}
        with httpx.stream("POST", url + "/api/extra/generate/stream", json=body, timeout=120) as r:
            assert r.status_code == 200 and any(x.startswith("data:") for x in r.iter_lines())
        chat = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3}
        answer = httpx.post(url + "/v1/chat/completions", json=chat, timeout=120).json()
        assert answer["usage"]["completion_tokens"] > 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_self_test_chats_with_the_bundled_model(bundle: Path, tmp_path: Path) -> None:
    result = run_bundle(bundle, tmp_path, "--self-test")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["frozen"] and report["generated_tokens"] > 0
    assert report["model"].startswith(str(bundle.parent)) and report["backend"] == "CPU"
    assert set(report["cpu_features"]) == {"avx2", "fma", "f16c"}
    assert report["sqlite"]["fts5"], report["sqlite"]  # the chat store's search needs FTS5
    backends = report["backends"]  # the CPU variant ggml chose, from the bundle's modules
    assert f"libggml-cpu-{backends['cpu_variant']}.so" in backends["loaded"], backends


def test_window_opens_and_writes_settings_under_the_users_folders(
    bundle: Path, tmp_path: Path
) -> None:
    result = run_bundle(bundle, tmp_path, KOBOLD_GUI_T0=repr(time.time()))
    assert result.returncode == 0, result.stderr
    assert "window shown after" in result.stdout
    assert "Traceback" not in result.stderr and "Error" not in result.stderr
    assert (tmp_path / ".config" / "kobold-gui" / "settings.json").is_file()
    assert list((tmp_path / ".local" / "state" / "kobold-gui").rglob("kobold-gui.log"))


def test_a_crash_is_reported_with_the_log_place(bundle: Path, tmp_path: Path) -> None:
    result = run_bundle(bundle, tmp_path, KOBOLD_GUI_CRASH_TEST="1")
    assert result.returncode == 1
    assert "unexpected error: RuntimeError: crash test" in result.stderr
    log = next((tmp_path / ".local" / "state" / "kobold-gui").rglob("kobold-gui.log"))
    assert "crash test requested" in log.read_text()


def test_list_gpus_without_a_driver(bundle: Path, tmp_path: Path) -> None:
    result = run_bundle(bundle, tmp_path, "--list-gpus", "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["nvml"]["gpus"] == []


def test_the_bundle_shares_a_machine_and_chats_over_it(bundle: Path, tmp_path: Path) -> None:
    """Double-click sharing: the bundle is llama.cpp's RPC server (--rpc-server), and a load
    over it runs the bundle's engine in a child process (--engine-child)."""
    from tests.rpc_servers import free_port

    port = free_port()
    server = subprocess.Popen(
        [str(bundle), "--rpc-server", "-p", str(port), "-d", "CPU"],
        env=clean_env(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert "Starting RPC server v7" in server.stdout.readline()  # not held in a buffer
        result = run_bundle(
            bundle,
            tmp_path,
            "--prompt",
            "Say hi.",
            "--rpc",
            f"127.0.0.1:{port}",
            "--gpulayers",
            "20",
            "--max-tokens",
            "8",
            "--temperature",
            "0",
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip()
    finally:
        server.kill()
        server.wait()
