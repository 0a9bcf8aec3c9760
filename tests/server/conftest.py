"""A real server on the real default model, on a free port of 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kobold_gui.core.engine.worker import EngineWorker, Job
from kobold_gui.core.launch.options import LaunchConfig
from kobold_gui.core.launch.resolve import resolve_launch
from kobold_gui.server.runner import ApiServer
from kobold_gui.server.state import ServerSettings

CONTEXT = 1024


def load_default(worker: EngineWorker, model: Path, context: int = CONTEXT) -> None:
    launch = resolve_launch(LaunchConfig(contextsize=context), model, None, False)
    job = worker.submit(Job("load", lambda engine, cancel: engine.load(launch, None, cancel)))
    assert job.wait(120), "loading hung"
    assert job.error is None, job.error


def start_server(worker: EngineWorker, **settings: object) -> ApiServer:
    server = ApiServer(worker, ServerSettings(port=0, **settings))  # type: ignore[arg-type]
    server.start()
    return server


@pytest.fixture(scope="module")
def worker(default_model: Path) -> Iterator[EngineWorker]:
    w = EngineWorker()
    load_default(w, default_model)
    yield w
    assert w.close(30)


@pytest.fixture(scope="module")
def server(worker: EngineWorker) -> Iterator[ApiServer]:
    s = start_server(worker)
    yield s
    s.stop()
