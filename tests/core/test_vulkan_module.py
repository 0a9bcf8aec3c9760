"""The Vulkan backend module, run for real on Mesa's CPU renderer (lavapipe, Debian's
mesa-vulkan-drivers; tools/dev.sh builds the module and installs both). ggml-vulkan skips CPU
renderers unless GGML_VK_VISIBLE_DEVICES names one, so each check runs the CLI in a fresh
process with that variable: the same code path as a Vulkan GPU, on this machine's CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from kobold_gui.core.llama.ggml import library_folder

HAS_MODULE = (library_folder() / "libggml-vulkan.so").exists()
pytestmark = pytest.mark.skipif(not HAS_MODULE, reason="no Vulkan module in this build")


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kobold_gui", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def test_without_a_vulkan_gpu_the_app_says_why_and_runs_on_the_cpu() -> None:
    env = {k: v for k, v in os.environ.items() if k != "GGML_VK_VISIBLE_DEVICES"}
    result = subprocess.run(
        [sys.executable, "-m", "kobold_gui", "--self-test"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    report = json.loads(result.stdout)
    assert report["ok"], report
    assert report["backend"] == "CPU" and report["offloaded"] in ("", "0/31")
    assert report["backends"]["gpu"]["Vulkan"].startswith("no GPU with a Vulkan driver found")


def test_a_reply_runs_with_every_layer_on_the_vulkan_device() -> None:
    result = run_cli("--self-test", "--gpulayers", "999", GGML_VK_VISIBLE_DEVICES="0")
    report = json.loads(result.stdout)
    assert report["ok"], (report, result.stderr[-2000:])
    assert report["backend"] == "Vulkan" and report["backends"]["gpu"]["Vulkan"] == "1 device"
    done, total = map(int, report["offloaded"].split("/"))
    assert done == total > 0
    assert report["buffers_mib"]["Vulkan0"] > 50  # the weights (92 MiB mapped on the CPU)


def test_the_vulkan_device_is_listed_and_planned_like_an_nvidia_gpu() -> None:
    listed = json.loads(run_cli("--list-gpus", "--json", GGML_VK_VISIBLE_DEVICES="0").stdout)
    (gpu,) = listed["nvml"]["gpus"]  # NVML knows no GPU here: the one llama.cpp sees
    assert gpu["source"] == "Vulkan0" and gpu["memory_total"] > 0
    (device,) = [d for d in listed["llama_cpp"]["devices"] if d["type"] != "CPU"]
    assert device["nvml_index"] == 0
    plan = json.loads(
        run_cli("--plan", "--json", "--gpulayers", "999", GGML_VK_VISIBLE_DEVICES="0").stdout
    )
    device_plan, _cpu = plan["plan"]["devices"]
    assert device_plan["name"] == f"GPU 0 ({gpu['name']})" and device_plan["backend"] == "Vulkan"
    assert device_plan["repeating_layers"] == 30 and device_plan["output_layer"]
    assert device_plan["free"] == gpu["memory_free"] and device_plan["weights"] > 90 << 20
