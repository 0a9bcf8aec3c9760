"""The CLI as a user runs it: a real process, real models, exit codes and stderr."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from kobold_gui import __version__
from tests.conftest import BAD_FILE_MESSAGES


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kobold_gui", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_error_line(result: subprocess.CompletedProcess[str], words: str) -> None:
    """Bad input: a non-zero exit and one line on stderr that says why, no traceback."""
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("kobold-gui: error:") and words in lines[0], lines[0]


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"kobold-gui {__version__}"


def test_show_config_json_gives_effective_batch_without_loading(default_model: Path) -> None:
    result = run(
        "--show-config",
        "--json",
        "--model",
        str(default_model),
        "--blasbatchsize",
        "2048",
        "--contextsize",
        "1024",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    eff = data["effective"]
    assert (eff["n_batch"], eff["n_ubatch"], eff["n_ctx"]) == (1024, 1024, 1024)
    assert "n_batch limited to the context size 1024" in eff["batch_label"]
    assert data["options"]["blasbatchsize"] == 2048
    assert data["backend"]["name"] == "CPU" and eff["n_gpu_layers"] == 0
    assert data["model_info"]["layers"] == "30"


def test_show_config_defaults_to_the_built_in_model(default_model: Path) -> None:
    data = json.loads(run("--show-config", "--json", "--blasbatchsize", "4096").stdout)
    assert data["model"] == str(default_model)
    assert (data["effective"]["n_batch"], data["effective"]["n_ubatch"]) == (4096, 1024)


def test_prompt_streams_a_reply_to_stdout(default_model: Path) -> None:
    result = run(
        "--model",
        str(default_model),
        "--prompt",
        "What is the capital of France?",
        "--max-tokens",
        "20",
        "--temperature",
        "0",
    )
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout
    assert "tokens/s" in result.stderr and "Traceback" not in result.stderr


def test_koboldcpp_style_bare_flashattention_flag(tiny_model: Path) -> None:
    data = json.loads(
        run("--show-config", "--json", "--model", str(tiny_model), "--flashattention").stdout
    )
    assert data["options"]["flashattention"] == "on"


@pytest.mark.parametrize("kind", sorted(BAD_FILE_MESSAGES))
def test_bad_model_files_exit_non_zero_with_one_line(bad_files: dict[str, Path], kind: str) -> None:
    result = run("--model", str(bad_files[kind]), "--prompt", "hi")
    assert result.returncode != 0
    assert_one_error_line(result, BAD_FILE_MESSAGES[kind])


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--prompt", "   "], "prompt is empty"),
        (["--prompt", "hi", "--contextsize", "12"], "below the minimum"),
        (["--prompt", "hi", "--blasbatchsize", "big"], "expected one of 16, 32,"),
        (["--prompt", "hi", "--flashattention", "maybe"], "not one of"),
        (["--no-such-flag"], "unrecognized arguments"),
        (["--prompt", "hi", "--temperature", "-1"], "--temperature must be 0"),
        (["--plan", "--assume-gpus", "0GiB"], "must be above zero"),
        (["--benchmark", "--gen-tokens", "0"], "--gen-tokens must be at least 1"),
        (["--benchmark", "--share", "150"], "1 to 100"),
    ],
)
def test_bad_options_exit_non_zero_with_one_line(
    tiny_model: Path, args: list[str], words: str
) -> None:
    result = run("--model", str(tiny_model), *args)
    assert result.returncode == 2
    assert_one_error_line(result, words)


def test_list_gpus_without_a_driver_exits_zero_with_a_message() -> None:
    if os.path.exists("/dev/nvidiactl"):
        pytest.skip("this machine has an NVIDIA driver")
    result = run("--list-gpus", "--json")
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert data["nvml"]["gpus"] == [] and "No NVIDIA driver found" in result.stderr
    devices = data["llama_cpp"]["devices"]
    assert "CPU" in [d["type"] for d in devices]
    # A CPU-only build has nothing else; a GPU build lists devices NVML cannot match.
    assert data["llama_cpp"]["gpu_offload"] is (len(devices) > 1)


def test_list_gpus_with_simulated_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOBOLD_GUI_FAKE_GPUS", "RTX 4090:24,RTX 3060:12")
    result = run("--list-gpus")
    assert result.returncode == 0
    assert "GPU 0  RTX 4090" in result.stdout and "GPU 1  RTX 3060" in result.stdout
    assert "CPU-only" in result.stderr  # and this build cannot use them


def test_plan_for_assumed_gpus(default_model: Path) -> None:
    result = run(
        "--plan",
        "--json",
        "--model",
        str(default_model),
        "--assume-gpus",
        "24GiB,12GiB",
        "--contextsize",
        "8192",
    )
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)["plan"]
    gpus = [d for d in plan["devices"] if d["cuda_context"]]
    assert len(gpus) == 2 and plan["fits"] and plan["n_gpu_layers"] == 31
    assert sum(d["repeating_layers"] for d in plan["devices"]) == 30


def test_plan_text_and_koboldcpp_tensor_split(default_model: Path) -> None:
    result = run(
        "--plan",
        "--model",
        str(default_model),
        "--assume-gpus",
        "24GiB,12GiB",
        "--tensor_split",
        "3",
        "1",
        "--gpulayers",
        "99",
    )
    assert result.returncode == 0, result.stderr
    assert "split        3, 1" in result.stdout and "GPU 1 (assumed 12 GiB)" in result.stdout


def test_plan_with_tensor_split(default_model: Path) -> None:
    common = ("--plan", "--model", str(default_model), "--splitmode", "tensor")
    result = run(*common, "--json", "--assume-gpus", "24GiB,12GiB")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["effective"]["flash_attn"] == "on (tensor split needs it)"
    gpus = [d for d in data["plan"]["devices"] if d["cuda_context"]]
    assert data["plan"]["split_mode"] == "tensor" and len(gpus) == 2
    assert all(d["repeating_layers"] == 30 and d["output_layer"] for d in gpus)
    text = run(*common, "--assume-gpus", "24GiB,12GiB")
    assert (
        "split mode tensor: each of the 30 offloaded layers and the output is cut across the 2"
        in text.stdout
    )
    assert_one_error_line(run(*common, "--assume-gpus", "24GiB"), "needs two or more devices")
    off = run(*common, "--assume-gpus", "24GiB,24GiB", "--flashattention", "off")
    assert_one_error_line(off, "SPLIT_MODE_TENSOR requires flash_attn to be enabled")


def test_plan_that_does_not_fit_exits_3_with_the_reason(default_model: Path) -> None:
    result = run(
        "--plan",
        "--model",
        str(default_model),
        "--assume-gpus",
        "1GiB",
        "--gpulayers",
        "99",
        "--contextsize",
        "65536",
    )
    assert result.returncode == 3
    assert "OVER BUDGET" in result.stdout and "lower the context" in result.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--tensor_split", "1", "1", "1"], "3 entries for 2 GPU"),
        (["--tensor_split", "1", "-1"], "cannot be negative"),
        (["--tensor_split", "0", "0"], "above zero"),
        (["--assume-gpus", "lots"], "not a size"),
    ],
)
def test_bad_plan_input_is_one_line(default_model: Path, args: list[str], words: str) -> None:
    result = run("--plan", "--model", str(default_model), "--assume-gpus", "24GiB,24GiB", *args)
    assert result.returncode == 2
    assert_one_error_line(result, words)


def test_plan_refuses_a_main_gpu_that_does_not_exist(default_model: Path) -> None:
    result = run(
        "--plan", "--model", str(default_model), "--assume-gpus", "24GiB", "--maingpu", "2"
    )
    assert result.returncode == 2 and "main GPU 2 does not exist" in result.stderr


def test_benchmark_prints_pairs_and_the_measured_choice(tiny_model: Path) -> None:
    result = run(
        "--benchmark",
        "--json",
        "--model",
        str(tiny_model),
        "--sweep",
        "64",
        "--pairs",
        "256:128",
        "--prompt-tokens",
        "256",
        "--gen-tokens",
        "8",
        "--contextsize",
        "1024",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [(r["n_batch"], r["n_ubatch"]) for r in data["rows"]] == [(64, 64), (256, 128)]
    assert data["measured_policy"] is not None and Path(data["saved"]).is_file()
    assert "estimate: about" in result.stderr and "for 6 runs (2 pairs x 3)" in result.stderr
    assert result.stderr.index("estimate:") < result.stderr.index("[1/6]")  # before the runs


def test_the_default_sweep_on_a_cpu_is_small_and_estimated(tiny_model: Path) -> None:
    args = ("--model", str(tiny_model), "--contextsize", "2048", "--gen-tokens", "4")
    result = run("--benchmark", "--json", "--repeats", "1", *args)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["rows"]
    assert [(r["n_batch"], r["n_ubatch"]) for r in rows] == [(b, b) for b in (128, 256, 512, 1024)]
    assert "sweep: CPU only: BLAS 128, 256, 512, 1024 with 1024-token prompts" in result.stderr
    assert "estimate: about" in result.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--sweep", "0"], "at least 1"),
        (["--pairs", "512:1024"], "above its n_batch"),
        (["--pairs", "512"], "NB:NU"),
        (["--prompt-tokens", "1000", "--gen-tokens", "64"], "exceed the context size"),
        (["--sweep", "4096"], "above the context size"),
    ],
)
def test_benchmark_bad_input_is_one_line(tiny_model: Path, args: list[str], words: str) -> None:
    result = run("--benchmark", "--model", str(tiny_model), "--contextsize", "1024", *args)
    assert result.returncode == 2
    assert_one_error_line(result, words)


def test_measured_policy_uses_the_kept_sweep(tiny_model: Path) -> None:
    common = ["--model", str(tiny_model), "--contextsize", "1024"]
    missing = run("--show-config", "--json", "--batch-policy", "measured", *common)
    assert missing.returncode == 0, missing.stderr
    before = json.loads(missing.stdout)["effective"]
    assert "no benchmark of this model" in before["batch_label"]  # the seed rule, said so
    bench = run(
        "--benchmark",
        "--json",
        "--pairs",
        "256:256,512:128",
        "--prompt-tokens",
        "256",
        "--gen-tokens",
        "4",
        *common,
    )
    assert bench.returncode == 0, bench.stderr
    result = json.loads(bench.stdout)
    pick = result["measured_policy"]
    shown = run("--show-config", "--json", "--batch-policy", "measured", *common)
    assert shown.returncode == 0, shown.stderr
    eff = json.loads(shown.stdout)["effective"]
    assert eff["batch_label"] == result["measured_launch_batch"]  # the same choice, twice
    if pick is not None:
        assert [eff["n_batch"], eff["n_ubatch"]] == pick
    else:  # the runs could not tell the pairs apart: the seed rule, and why
        assert "no measurable difference" in eff["batch_label"]


def _kcpps_beside(model: Path, folder: Path, name: str, **changes: object) -> Path:
    """A KoboldCPP settings file from tests/data, next to the model it names."""
    data = json.loads((Path(__file__).parent / "data" / "kcpps" / name).read_text())
    data.update(changes)
    (folder / model.name).symlink_to(model)
    path = folder / name
    path.write_text(json.dumps(data))
    return path


def test_config_file_gives_the_launch_and_the_model(default_model: Path, tmp_path: Path) -> None:
    path = _kcpps_beside(default_model, tmp_path, "koboldcpp-1.6x-legacy.kcpps")
    result = run("--config", str(path), "--show-config", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    options = data["options"]
    assert (options["blasbatchsize"], options["contextsize"], options["kvtype"]) == (
        256,
        4096,
        "q4_0",
    )
    assert (options["splitmode"], options["kvoffload"], options["flashattention"]) == (
        "row",
        "off",
        "on",
    )
    assert data["model"] == str(tmp_path / default_model.name)
    # what the file has that kobold-gui lacks, and the row split warning, on stderr once
    assert "koboldcpp-1.6x-legacy.kcpps: hordeconfig" in result.stderr
    assert result.stderr.count("row split is not possible on CUDA") == 1


def test_command_line_options_override_the_config_file(default_model: Path, tmp_path: Path) -> None:
    path = _kcpps_beside(default_model, tmp_path, "koboldcpp-1.102.kcpps", tensor_split=None)
    result = run("--config", str(path), "--contextsize", "2048", "--show-config", "--json")
    options = json.loads(result.stdout)["options"]
    assert options["contextsize"] == 2048  # given
    assert (options["blasbatchsize"], options["threads"]) == (1024, 6)  # from the file


@pytest.mark.parametrize(
    ("content", "words"),
    [("{oops", "not a KoboldCPP settings file"), (None, "settings file not found")],
)
def test_bad_config_file_is_one_line(tmp_path: Path, content: str | None, words: str) -> None:
    path = tmp_path / "x.kcpps"
    if content is not None:
        path.write_text(content)
    assert_one_error_line(run("--config", str(path), "--show-config"), words)


def test_allowed_but_doubtful_settings_are_said_on_stderr(tiny_model: Path) -> None:
    result = run(
        "--show-config",
        "--model",
        str(tiny_model),
        "--contextsize",
        "1000000",
        "--threads",
        "999",
        "--ubatch",
        "64",
    )
    assert result.returncode == 0, result.stderr
    warnings = result.stderr
    assert "above the" in warnings and "trained for" in warnings  # context
    cpus = os.cpu_count() or 1
    assert f"--threads 999 is more than the {cpus} logical CPUs here: using {cpus}" in warnings
    assert "pads the context to a multiple of 256, so it holds 1000192 tokens" in warnings
    assert "context      1000192 tokens (1000000 asked" in result.stdout
    assert re.search(rf"^threads\s+{cpus}$", result.stdout, re.M)  # clamped, not 999
    assert "--ubatch is used only by --batch-policy custom" in warnings


@pytest.mark.parametrize("size", ["3000", "8", "-1", "lots"])
def test_blas_sizes_are_koboldcpps_stops_only(size: str) -> None:
    """KoboldCPP's own parser allows only its stops: 3000 and 8 were taken silently."""
    result = run("--show-config", "--blasbatchsize", size)
    assert_one_error_line(result, "argument --blasbatchsize:")
    assert result.returncode == 2 and "16, 32, 64, 128, 256, 512, 1024, 2048, 4096" in result.stderr


def test_assumed_sizes_in_gb_are_read_as_gib_and_said(tiny_model: Path) -> None:
    result = run("--plan", "--model", str(tiny_model), "--assume-gpus", "24GB")
    assert result.returncode == 0, result.stderr
    assert "reads GB as GiB" in result.stderr


def test_plan_prompt_and_benchmark_over_a_remote_machine(
    default_model: Path, tmp_path: Path
) -> None:
    from tests.rpc_servers import rpc_servers

    with rpc_servers(tmp_path, 1) as (server,):
        rpc = ["--rpc", server.endpoint, "--gpulayers", "20", "--contextsize", "1024"]
        plan = run("--plan", "--json", *rpc)
        assert plan.returncode == 0, plan.stderr
        devices = json.loads(plan.stdout)["plan"]["devices"]
        assert devices[0]["name"].startswith(f"RPC0 {server.endpoint}") and devices[0]["remote"]
        assert devices[0]["repeating_layers"] == 19 and devices[0]["output_layer"]
        reply = run("--prompt", "Say hi.", "--max-tokens", "6", "--temperature", "0", *rpc)
        assert reply.returncode == 0 and reply.stdout.strip(), reply.stderr
        bench = run(
            "--benchmark", "--pairs", "256:256", "--prompt-tokens", "128", "--gen-tokens", "4",
            "--repeats", "1", *rpc, timeout=300,
        )  # fmt: skip
        assert bench.returncode == 0 and "n_batch   256  n_ubatch   256" in bench.stdout


def test_an_unreachable_machine_is_one_line_before_anything_loads() -> None:
    from tests.rpc_servers import free_port

    closed = f"127.0.0.1:{free_port()}"
    assert_one_error_line(run("--prompt", "hi", "--rpc", closed), f"--rpc: {closed} refused")
    assert_one_error_line(run("--plan", "--rpc", "no-port"), "host:port")


def test_plan_for_assumed_remote_gpus(default_model: Path) -> None:
    result = run("--plan", "--json", "--assume-gpus", "8GiB,10.0.0.2:50052=16GiB")
    assert result.returncode == 0, result.stderr
    devices = json.loads(result.stdout)["plan"]["devices"]
    assert [d["remote"] for d in devices] == [True, False, False]  # remote first, then CPU
    assert devices[0]["cuda_context"] < 128 * 2**20 < devices[1]["cuda_context"]  # no context


def test_self_test_reports_the_backends_and_the_cpu_variant(tiny_model: Path) -> None:
    from kobold_gui.core.llama.backends import has_cpu_variants
    from kobold_gui.core.llama.ggml import library_folder

    result = run("--self-test", "--model", str(tiny_model))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["sqlite"] == {"version": sqlite3.sqlite_version, "fts5": True}
    backends = report["backends"]
    assert "CPU" in backends["registered"]
    if has_cpu_variants(library_folder()):  # a GGML_BACKEND_DL build: one variant loaded
        variant = backends["cpu_variant"]
        assert backends["dynamic"] and f"libggml-cpu-{variant}.so" in backends["loaded"]
        assert all(reason for reason in backends["not_loaded"].values())
    else:
        assert backends == {
            "dynamic": False,
            "registered": backends["registered"],
            "loaded": [],
            "not_loaded": {},
            "cpu_variant": "built in",
        }


def test_config_naming_a_missing_model_exits_with_its_name(tmp_path: Path) -> None:
    """Never the built-in model instead: the file that is not there is named."""
    data = json.loads(
        (Path(__file__).parent / "data" / "kcpps" / "koboldcpp-1.77-split.kcpps").read_text()
    )
    data["model_param"] = "D:\\models\\mistral-7b.Q4_K_M.gguf"
    path = tmp_path / "windows.kcpps"
    path.write_text(json.dumps(data))
    result = run("--config", str(path), "--prompt", "Hello", "--max-tokens", "2")
    assert result.returncode != 0 and result.stdout == ""
    assert "mistral-7b.Q4_K_M.gguf" in result.stderr and "not there" in result.stderr


def test_exportconfig_writes_the_config_file_back_with_what_changed(
    default_model: Path, tmp_path: Path
) -> None:
    src = _kcpps_beside(default_model, tmp_path, "koboldcpp-1.117-cuda.kcpps")
    original = json.loads(src.read_text())
    original["model_param"] = str(tmp_path / default_model.name)
    src.write_text(json.dumps(original))
    out = tmp_path / "out.kcpps"
    result = run("--config", str(src), "--contextsize", "4096", "--exportconfig", str(out))
    assert result.returncode == 0, result.stderr
    assert "Saved configuration file as" in result.stdout
    saved = json.loads(out.read_text())
    changed = {k for k in set(original) | set(saved) if original.get(k) != saved.get(k)}
    assert changed == {"contextsize", "kobold_gui"} and saved["contextsize"] == 4096
    assert out.stat().st_mode & 0o777 != 0o600


def test_exportconfig_without_a_config_writes_a_new_1_117_file(tmp_path: Path) -> None:
    out = tmp_path / "new"
    result = run("--contextsize", "2048", "--gpus", "none", "--exportconfig", str(out))
    assert result.returncode == 0, result.stderr
    saved = json.loads((tmp_path / "new.kcpps").read_text())
    assert (saved["contextsize"], saved["usecpu"], saved["usecuda"]) == (2048, True, None)
    assert "useswa" not in saved and saved["noswa"] is False
