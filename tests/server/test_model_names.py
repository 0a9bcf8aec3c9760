"""The API names an Ollama model by its name:tag, as Ollama does, not by its blob's hash."""

from __future__ import annotations

from pathlib import Path

import httpx

from kobold_gui.core.engine.worker import EngineWorker
from tests.core.test_model_scan import build_apps

from .conftest import load_default, start_server


def test_the_api_names_an_ollama_model_by_its_tag(tmp_path: Path, tiny_model: Path) -> None:
    build_apps(tmp_path, tiny_model)
    worker = EngineWorker()
    server = None
    try:
        load_default(worker, tmp_path / ".ollama" / "models" / "blobs" / f"sha256-{'d' * 64}")
        server = start_server(worker)
        url = server.base_url()
        assert httpx.get(url + "/api/v1/model").json()["result"] == "koboldcpp/smollm2:135m"
        models = httpx.get(url + "/v1/models").json()["data"]
        assert [m["id"] for m in models] == ["koboldcpp/smollm2:135m"]
    finally:
        if server is not None:
            server.stop()
        assert worker.close(30)
