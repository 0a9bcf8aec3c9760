"""The plan for a file on the hub equals the plan for the same file on disk (split models
included: every part's tensor table is read), and matches llama.cpp's own buffers on the
CPU here. The header is range-read from the FAKE hub on 127.0.0.1 by the real httpx client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import llama_cpp
import pytest

from kobold_gui.core.hub.remote_gguf import remote_info
from kobold_gui.core.hub.search import Hub
from kobold_gui.core.launch.options import LaunchConfig
from kobold_gui.core.launch.resolve import resolve_launch
from kobold_gui.core.llama.buffers import parse_buffer_sizes
from kobold_gui.core.llama.library import init_backend
from kobold_gui.core.llama.log import llama_log_count, llama_log_since
from kobold_gui.core.models.gguf_info import GGUFInfo, ModelFileError, read_gguf
from kobold_gui.core.plan.memory_plan import GiB, GpuBudget, MiB, PlanRequest, plan_memory
from tests.fakes.hub import FakeFile, FakeHub, FakeRepo

SMOL = "SmolLM2-135M-Instruct-Q4_1.gguf"


@pytest.fixture(scope="module")
def fake_hub(default_model: Path, split_model: Path) -> Iterator[FakeHub]:
    parts = {p.name: FakeFile(p) for p in sorted(split_model.parent.glob("tiny-split-*.gguf"))}
    files = {SMOL: FakeFile(default_model), **parts}
    with FakeHub([FakeRepo("me/models-GGUF", files)]) as hub:
        yield hub


def _remote(fake_hub: FakeHub, first_name: str) -> GGUFInfo:
    hub = Hub(fake_hub.endpoint)
    repo = hub.list_files("me/models-GGUF")
    entry = next(e for e in repo.entries if e.files[0].name == first_name)
    info, stats = remote_info(hub, repo, entry)
    assert stats.bytes_read < entry.size
    return info


@pytest.mark.parametrize("which", ["single", "split"])
def test_remote_plan_equals_the_plan_from_disk(
    fake_hub: FakeHub, default_model: Path, split_model: Path, which: str
) -> None:
    local_path = default_model if which == "single" else split_model
    local = read_gguf(local_path)
    remote = _remote(fake_hub, SMOL if which == "single" else split_model.name)
    assert remote.tensors == local.tensors
    assert remote.file_size == local.file_size
    if which == "split":
        assert {t.file_index for t in remote.tensors} == {0, 1, 2}
    assert (remote.n_vocab, remote.eos_token, remote.chat_template) == (
        local.n_vocab,
        local.eos_token,
        local.chat_template,
    )
    gpus = [GpuBudget("RTX 3060", 12 * GiB, 11 * GiB), GpuBudget("tiny", GiB, 700 * MiB)]
    for req in (PlanRequest(0, 8192, 512), PlanRequest(3, 4096, 1024, flash_attn=False)):
        assert plan_memory(remote, req, gpus) == plan_memory(local, req, gpus)
        assert plan_memory(remote, req, []) == plan_memory(local, req, [])
    config = LaunchConfig(contextsize=8192)
    a = resolve_launch(config, None, remote, False, None, assumed_gpus=gpus[1:])
    b = resolve_launch(config, None, local, False, None, assumed_gpus=gpus[1:])
    assert (a.plan, a.gpu_layers_note) == (b.plan, b.gpu_layers_note)


def test_split_plan_from_the_hub_matches_llama_cpps_cpu_buffers(
    fake_hub: FakeHub, split_model: Path
) -> None:
    """llama.cpp maps each part of a split model on its own: the plan must add them up."""
    remote = _remote(fake_hub, split_model.name)
    init_backend()
    mp = llama_cpp.llama_model_default_params()
    mp.n_gpu_layers = 0
    mark = llama_log_count()
    model = llama_cpp.llama_model_load_from_file(str(split_model).encode(), mp)
    assert model, "llama.cpp could not load the split model"
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.flash_attn_type = 2048, 512, 512, 1
    ctx = llama_cpp.llama_init_from_model(model, cp)
    real = parse_buffer_sizes(llama_log_since(mark))
    llama_cpp.llama_free(ctx)
    llama_cpp.llama_model_free(model)
    cpu = plan_memory(remote, PlanRequest(0, 2048, 512), []).devices[-1]
    model_bytes = sum(k.get("model", 0) for k in real.values())
    assert abs(cpu.weights - model_bytes) <= 0.02 * MiB, (cpu.weights, model_bytes)
    assert abs(cpu.kv - real["CPU"]["KV"]) <= 0.006 * MiB


def test_the_header_is_read_in_a_few_steps_not_much_past_its_end(
    fake_hub: FakeHub, default_model: Path
) -> None:
    """SmolLM2's header (49k-token vocabulary, merges, tensor table) is just over 1 MiB:
    the first read is cut inside it, the second reaches a little past its end."""
    from kobold_gui.core.models.gguf_header import read_header

    header_end = read_header(default_model).data_offset
    _remote(fake_hub, SMOL)
    ranges = fake_hub.ranges(SMOL)[-2:]
    assert ranges[0] == "bytes=0-1048575"
    start, end = (int(x) for x in ranges[1].removeprefix("bytes=").split("-"))
    assert start == 1 << 20 and header_end <= end + 1 <= header_end * 1.5


def test_a_part_that_is_not_the_first_names_the_first(split_model: Path) -> None:
    second = split_model.with_name(split_model.name.replace("00001-of", "00002-of"))
    with pytest.raises(ModelFileError, match=r"part 2 of 3 .* open the first part"):
        read_gguf(second)


def test_a_missing_part_is_named(tmp_path: Path, split_model: Path) -> None:
    first = tmp_path / split_model.name
    first.write_bytes(split_model.read_bytes())
    with pytest.raises(ModelFileError, match=r"part 2 \(tiny-split-Q8_0-00002-of-00003.gguf\)"):
        read_gguf(first)


def test_a_file_on_the_hub_that_is_not_gguf_is_reported(tmp_path: Path) -> None:
    page = tmp_path / "page.gguf"
    page.write_bytes(b"<html>" + b" " * 5000)
    with FakeHub([FakeRepo("x/y-GGUF", {"page.gguf": FakeFile(page)})]) as fake:
        hub = Hub(fake.endpoint)
        repo = hub.list_files("x/y-GGUF")
        with pytest.raises(ModelFileError, match="not a GGUF file"):
            remote_info(hub, repo, repo.entries[0])
