"""The part of --self-test that runs llama.cpp: load the model, generate a few tokens."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable
from typing import Any

from kobold_gui.cli.common import model_path, open_inventory, resolve
from kobold_gui.core.engine.choice import engine_for
from kobold_gui.core.engine.prompt_template import Message
from kobold_gui.core.engine.types import SamplingParams
from kobold_gui.core.llama.buffers import device_totals, parse_buffer_sizes
from kobold_gui.core.llama.library import backend_info
from kobold_gui.core.models.gguf_info import read_gguf
from kobold_gui.core.units import MiB


def load_and_reply(args: argparse.Namespace, report: dict[str, Any]) -> None:
    backend = backend_info()
    report["llama_cpp_python"] = backend.llama_cpp_python
    report["backend"] = backend.name
    report["gpu_offload"] = backend.gpu_offload
    report["backends"] = backend.backends.to_json()
    inventory = open_inventory().snapshot()
    report["gpus"] = [f"{g.index}: {g.name}" for g in inventory.gpus]
    report["gpu_message"] = inventory.message
    path = model_path(args)
    info = read_gguf(path)
    report["model"] = str(path)
    launch = resolve(args, path, info)
    engine = engine_for(launch)
    loaded = engine.load(launch, info=info)
    report["load_seconds"] = round(loaded.load_seconds, 3)
    report["offloaded"] = _offloaded(loaded.log)
    report["buffers_mib"] = {
        device: round(size / MiB, 1)
        for device, size in device_totals(parse_buffer_sizes(loaded.log)).items()
    }
    result = engine.chat(
        [Message("user", "Say hello.")],
        SamplingParams(max_tokens=16, temperature=0),
        lambda _t: None,
    )
    engine.close()
    report["generated_tokens"] = result.generated_tokens
    report["tokens_per_s"] = round(result.tokens_per_s, 1)
    report["time_to_first_token_ms"] = round(result.time_to_first_token_s * 1000, 1)
    report["ok"] = result.generated_tokens > 0


def _offloaded(log: Iterable[str]) -> str:
    """llama.cpp's own count: "33/33 layers to GPU" (empty on a CPU-only load)."""
    for line in log:
        match = re.search(r"offloaded (\d+/\d+) layers to GPU", line)
        if match:
            return match.group(1)
    return ""
