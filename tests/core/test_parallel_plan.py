"""The `parallel` launch option: what N requests at once cost in the memory plan, checked
against llama.cpp's own buffer log on the default model (CPU), the automatic number, and
how KoboldCPP files carry it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import llama_cpp
import pytest

from kobold_gui.core.engine.llama_params import context_params
from kobold_gui.core.kcpps.files import import_settings, read_kcpps
from kobold_gui.core.kcpps.writer import export_settings, write_kcpps
from kobold_gui.core.launch.options import ConfigError, LaunchConfig
from kobold_gui.core.launch.parallel import auto_parallel, sharing_note
from kobold_gui.core.launch.resolve import ResolvedLaunch, resolve_launch
from kobold_gui.core.llama.buffers import parse_buffer_sizes
from kobold_gui.core.llama.library import init_backend
from kobold_gui.core.llama.log import llama_log_count, llama_log_since
from kobold_gui.core.models.gguf_info import read_gguf
from kobold_gui.core.plan.memory_plan import GiB, GpuBudget, MiB

LOG_ROUNDING = 0.006 * MiB  # llama.cpp logs MiB with two decimals


def _launch(model: Path, parallel: int, gpu: bool = False, **kw: object) -> ResolvedLaunch:
    config = LaunchConfig(parallel=parallel, **kw)  # type: ignore[arg-type]
    gpus = [GpuBudget("assumed 24 GiB", 24 * GiB, 24 * GiB)] if gpu else None
    return resolve_launch(config, model, read_gguf(model), gpu, None, gpus)


@pytest.fixture(scope="module")
def llama_buffers(default_model: Path) -> dict[int, dict[str, int]]:
    """llama.cpp's CPU buffers for contexts of 1, 4 and 16 sequences on one loaded model,
    each made as the app makes it (core/engine/llama_params.py: unified KV past one)."""
    init_backend()
    mp = llama_cpp.llama_model_default_params()
    mp.n_gpu_layers = 0
    model = llama_cpp.llama_model_load_from_file(str(default_model).encode(), mp)
    never = llama_cpp.ggml_abort_callback(lambda _data: False)
    out = {}
    try:
        for n in (1, 4, 16):
            launch = _launch(default_model, n)
            assert launch.n_seq_max == n
            cparams = context_params(launch, launch.batch.n_batch, launch.batch.n_ubatch, never)
            mark = llama_log_count()
            ctx = llama_cpp.llama_init_from_model(model, cparams)
            assert ctx, f"no context for {n} sequences"
            assert llama_cpp.llama_n_seq_max(ctx) == n
            out[n] = parse_buffer_sizes(llama_log_since(mark))["CPU"]
            llama_cpp.llama_free(ctx)
    finally:
        llama_cpp.llama_model_free(model)
    return out


def test_n_requests_cost_one_row_of_logits_each_and_the_plan_says_so(
    llama_buffers: dict[int, dict[str, int]], default_model: Path
) -> None:
    n_vocab = read_gguf(default_model).n_vocab
    one = llama_buffers[1]
    for n, real in llama_buffers.items():
        # The unified KV cache and the compute buffers do not change with n ...
        assert real["KV"] == one["KV"] and real["compute"] == one["compute"], (n, real)
        # ... the output buffer holds one row of logits per sequence ...
        assert abs(real["output"] - n * n_vocab * 4) <= LOG_ROUNDING, (n, real)
        # ... and the plan's CPU share (compute + output) follows llama.cpp's.
        cpu = _launch(default_model, n).plan.devices[-1]  # type: ignore[union-attr]
        assert abs(cpu.kv - real["KV"]) <= LOG_ROUNDING
        planned_extra = cpu.compute - _launch(default_model, 1).plan.devices[-1].compute  # type: ignore[union-attr]
        assert abs(planned_extra - (real["output"] - one["output"])) <= LOG_ROUNDING


def test_auto_is_one_on_the_cpu_and_says_why(default_model: Path) -> None:
    launch = _launch(default_model, 0)
    assert launch.n_seq_max == 1
    assert launch.parallel_note.startswith("auto: 1") and "CPU" in launch.parallel_note
    assert launch.to_json()["effective"]["parallel"] == 1
    # GPUs planned for a build that cannot use them (a what-if): the load runs on the CPU
    what_if = [GpuBudget("assumed 24 GiB", 24 * GiB, 24 * GiB)]
    info = read_gguf(default_model)
    assert resolve_launch(LaunchConfig(), default_model, info, False, None, what_if).n_seq_max == 1


def test_auto_on_gpus_takes_the_largest_that_fits_and_shares_the_context(
    default_model: Path,
) -> None:
    launch = _launch(default_model, 0, gpu=True)
    assert launch.n_seq_max == 8 and "every layer on the GPU" in launch.parallel_note
    one = _launch(default_model, 1, gpu=True)
    n_vocab = read_gguf(default_model).n_vocab
    assert launch.plan is not None and one.plan is not None
    assert launch.plan.devices[-1].compute - one.plan.devices[-1].compute == 7 * n_vocab * 4
    # every slot keeps a fair share of at least 512 tokens of the context
    assert _launch(default_model, 0, gpu=True, contextsize=1024).n_seq_max == 2
    assert _launch(default_model, 0, gpu=True, contextsize=512).n_seq_max == 1
    # some layers on the CPU: the queue
    partial = _launch(default_model, 0, gpu=True, gpulayers=10)
    assert partial.n_seq_max == 1 and "some layers run on the CPU" in partial.parallel_note


def test_auto_steps_down_to_what_the_plan_says_fits() -> None:
    choice = auto_parallel("gpus", False, 8192, lambda n: n <= 4)
    assert choice.n == 4
    assert auto_parallel("gpus", False, 8192, lambda n: False).n == 1
    assert auto_parallel("gpus", True, 8192, lambda n: True).n == 1  # over RPC: one at a time


def test_a_number_given_is_used_and_checked(default_model: Path) -> None:
    launch = _launch(default_model, 4)
    assert launch.n_seq_max == 4  # on the CPU: the note says what auto would do, and why
    assert launch.parallel_note == (
        "4 (set; auto would queue: on the CPU, batching several requests splits the same speed"
        " between them)"
    )
    assert LaunchConfig().with_values(parallel="16").parallel == 16
    for bad in ("-1", "257", "many"):
        with pytest.raises(ConfigError, match="--parallel"):
            LaunchConfig().with_values(parallel=bad)


def test_the_context_is_shared_in_words() -> None:
    assert sharing_note(16, 8192) == (
        "16 requests at once share 8192 tokens of context: one alone may use all of it, "
        "16 together are each sure of about 512."
    )
    assert "all 4096 tokens" in sharing_note(1, 4096)


def test_koboldcpp_parallelrequests_is_parallel_not_multiuser(tmp_path: Path) -> None:
    newest = {"parallelrequests": 4, "multiuser": 10, "noswa": False}  # a 1.117 file
    result = import_settings(newest)
    assert result.config.parallel == 4 and "parallel" in result.applied
    assert "parallelrequests" not in {n.key for n in result.notes}
    assert result.server == {}  # multiuser 10 is 1.117's default queue: nothing to apply
    older = import_settings({"contextsize": 4096, "usecuda": ["normal"], "batchsize": 512})
    assert older.config.parallel == 0  # a 1.102 file has no key: automatic stays
    data, notes = export_settings(LaunchConfig(parallel=0), None)
    assert data["parallelrequests"] == 1 and notes == []  # KoboldCPP's default
    path, _ = write_kcpps(tmp_path / "auto.kcpps", LaunchConfig(parallel=0), None)
    assert read_kcpps(path).config.parallel == 0  # kobold-gui's own key keeps auto
    data, _ = export_settings(LaunchConfig(parallel=8), None)
    assert data["parallelrequests"] == 8
    edited = dict(data, parallelrequests=2)  # changed in KoboldCPP's launcher since
    assert import_settings(edited).config.parallel == 2
    old_file = {"contextsize": 4096, "usecuda": ["normal"], "batchsize": 512}
    source = import_settings(old_file)
    out, notes = export_settings(LaunchConfig(parallel=8), None, source)
    assert "parallelrequests" not in out
    assert [n.key for n in notes] == ["parallel"] and "one at a time" in notes[0].reason
    assert json.dumps(out)  # still a file KoboldCPP reads


def test_the_slot_scheduler_is_one_per_worker_and_follows_the_loaded_model(
    default_model: Path,
) -> None:
    from kobold_gui.core.engine.slots import slots_for
    from kobold_gui.core.engine.worker import EngineWorker

    worker = EngineWorker()
    try:
        slots = slots_for(worker)
        assert slots_for(worker) is slots and not slots.active()  # nothing loaded: 1
        job = worker.load(_launch(default_model, 3, threads=1))
        assert job.wait(120) and job.error is None, job.error
        assert slots.n_slots == 3 and slots.active()
        seqs = worker.call(lambda engine, _c: llama_cpp.llama_n_seq_max(engine._ctx))  # type: ignore[attr-defined]
        assert seqs.wait(30) and seqs.result == 3  # the context holds them
    finally:
        assert worker.close(30)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kobold_gui", *args], capture_output=True, text=True, timeout=120
    )


def test_the_command_line_takes_parallel_and_koboldcpps_name_for_it() -> None:
    shown = json.loads(_cli("--show-config", "--json", "--parallelrequests", "3").stdout)
    assert shown["options"]["parallel"] == 3 and shown["effective"]["parallel"] == 3
    auto = json.loads(_cli("--show-config", "--json").stdout)["effective"]
    assert auto["parallel"] == 1 and auto["parallel_note"].startswith("auto: 1")
    plan = _cli("--plan", "--parallel", "16", "--contextsize", "8192").stdout
    assert "16 requests at once share 8192 tokens of context" in plan
    bad = _cli("--show-config", "--parallel", "300")
    assert bad.returncode == 2 and "--parallel: 300 is above the maximum 256" in bad.stderr
