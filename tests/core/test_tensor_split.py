"""Tensor split at plan time: refused with llama.cpp's reason where llama.cpp would refuse
it (the architecture, flash attention off) and by the app's own rule on one device; and the
plan's split of heads and FFN widths, as llama_meta_device_get_split_state rounds them."""

from __future__ import annotations

from pathlib import Path

import pytest

from kobold_gui.core.launch.options import ConfigError, LaunchConfig
from kobold_gui.core.launch.resolve import FLASH_ATTN, SPLIT_MODE, resolve_launch
from kobold_gui.core.launch.split_rules import NO_TENSOR_SPLIT_ARCHS, tensor_split_line
from kobold_gui.core.models.gguf_info import GGUFInfo, read_gguf
from kobold_gui.core.plan.memory_plan import GiB, GpuBudget
from kobold_gui.core.plan.tensor_split import split_counts
from kobold_gui.dev.synthetic_gguf import Shape, write_model

GPU = GpuBudget("assumed 24 GiB", 24 * GiB, 24 * GiB)
TWO = (GPU, GPU)
VENDORED = Path("/tmp/lcp/llama_cpp_python-0.3.36/vendor/llama.cpp/src/llama-arch.cpp")


@pytest.fixture(scope="module")
def gqa_model(tmp_path_factory: pytest.TempPathFactory, default_model: Path) -> GGUFInfo:
    """8 heads, 4 KV heads of 64: two devices get 2 KV heads each."""
    out = tmp_path_factory.mktemp("ts") / "gqa.gguf"
    shape = Shape(layers=4, embd=512, ffn=1024, heads=8, kv_heads=4)
    return read_gguf(write_model(out, shape, "Q8_0", default_model))


def tensor(**values: object) -> LaunchConfig:
    return LaunchConfig().with_values(**{"splitmode": "tensor", "contextsize": 1024, **values})


def test_split_mode_tensor_reaches_llama_cpp_with_flash_attention_on(gqa_model: GGUFInfo) -> None:
    launch = resolve_launch(tensor(), gqa_model.path, gqa_model, True, None, TWO)
    assert launch.split_mode == SPLIT_MODE["tensor"] == 3
    assert launch.flash_attn_type == FLASH_ATTN["on"]  # auto: llama.cpp turns it on
    assert launch.to_json()["effective"]["flash_attn"] == "on (tensor split needs it)"
    assert launch.tensor_split is None  # no split given: llama.cpp's even split
    what_if = resolve_launch(tensor(), gqa_model.path, gqa_model, False, None, TWO)
    assert what_if.plan is not None and what_if.plan.request.split_mode == "tensor"
    assert what_if.split_mode == SPLIT_MODE["layer"]  # a CPU build's Load: nothing to split


@pytest.mark.parametrize(
    ("values", "gpus", "words"),
    [
        ({"flashattention": "off"}, TWO, "SPLIT_MODE_TENSOR requires flash_attn to be enabled"),
        ({}, TWO[:1], "needs two or more devices"),
        ({"gpus": "none"}, TWO, "here there is none this llama.cpp build can use"),
        ({"tensor_split": "1,0"}, TWO, "every device needs a share above 0"),
    ],
)
def test_refused_at_plan_time_with_the_reason(
    gqa_model: GGUFInfo, values: dict[str, object], gpus: tuple[GpuBudget, ...], words: str
) -> None:
    config = tensor(**values)
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        resolve_launch(config, gqa_model.path, gqa_model, True, None, gpus)
    assert config.splitmode == "tensor"  # the setting itself stays as chosen


def test_a_cpu_only_build_is_told_why_no_device_counts(gqa_model: GGUFInfo) -> None:
    """GPUs the build cannot use (no what-if GPUs given): not 'here there is 0' beside GPUs the
    user sees listed, but why none counts."""
    with pytest.raises(ConfigError) as refused:
        resolve_launch(tensor(), gqa_model.path, gqa_model, False, None, None)
    message = str(refused.value)
    assert "there is 0" not in message and "none this llama.cpp build can use" in message
    assert "CPU-only build" in message and message.endswith("use split mode layer")


def test_refused_for_an_architecture_llama_cpp_has_no_tensor_split_for(
    tmp_path: Path, default_model: Path
) -> None:
    out = write_model(tmp_path / "olmo2.gguf", Shape(arch="olmo2"), "Q8_0", default_model)
    info = read_gguf(out)
    with pytest.raises(ConfigError, match="not implemented for architecture 'olmo2'"):
        resolve_launch(tensor(), out, info, True, None, TWO)
    layer = resolve_launch(tensor(splitmode="layer"), out, info, True, None, TWO)
    assert layer.plan is not None and layer.plan.fits  # the layer split still plans


@pytest.mark.skipif(not VENDORED.exists(), reason="llama.cpp's source is not unpacked here")
def test_the_architecture_list_is_llama_cpps() -> None:
    """NO_TENSOR_SPLIT_ARCHS against llm_arch_supports_sm_tensor's `return false` cases."""
    import re

    text = VENDORED.read_text()
    body = text[text.index("bool llm_arch_supports_sm_tensor") :].split("default:", 1)[0]
    enums = re.findall(r"case (LLM_ARCH_\w+):", body)
    names = dict(re.findall(r"\{ (LLM_ARCH_\w+),\s*\"([^\"]+)\"", text))
    assert {names[e] for e in enums} == NO_TENSOR_SPLIT_ARCHS


def test_split_counts_round_to_whole_heads_and_rotate() -> None:
    # 3 KV heads of 64 (192) at a granularity of 2 heads: one device takes all, in turns.
    assert split_counts(192, 128, 2, None, 0) == [0, 192]
    assert split_counts(192, 128, 2, None, 1) == [192, 0]
    assert split_counts(1536, 128, 2, None, 0) == [768, 768]
    assert split_counts(192, 128, 2, (3.0, 1.0), 0) == [128, 64]  # 3:1, rounded down
    assert sum(split_counts(1000, 7, 3, (1.0, 2.0, 3.0), 2)) == 1000


def test_plan_gives_every_device_a_slice_of_every_layer(gqa_model: GGUFInfo) -> None:
    launch = resolve_launch(tensor(gpulayers=99), gqa_model.path, gqa_model, True, None, TWO)
    layer = resolve_launch(
        tensor(gpulayers=99, splitmode="layer"), gqa_model.path, gqa_model, True, None, TWO
    )
    assert launch.plan is not None and layer.plan is not None
    gpu0, gpu1, _cpu = launch.plan.devices
    assert gpu0.layers == gpu1.layers == tuple(range(5))
    assert gpu0.kv == gpu1.kv  # 4 KV heads: 2 and 2 in every layer
    assert gpu0.kv + gpu1.kv == sum(d.kv for d in layer.plan.devices)
    # The split matrices halve; norms stay whole on both: together a little more than once.
    layer_weights = sum(d.weights for d in layer.plan.devices[:2])
    assert layer_weights < gpu0.weights + gpu1.weights < 1.1 * layer_weights
    # Each device holds the whole graph's compute buffer (the Meta buffer's rule).
    logits = gqa_model.n_vocab * launch.batch.n_ubatch * 4
    assert gpu0.compute == gpu1.compute > logits
    assert "cut across the 2 devices" in tensor_split_line(launch.plan)
    assert "not measured yet" in tensor_split_line(launch.plan)  # GPUs, not RPC servers
    assert tensor_split_line(layer.plan) == ""


def test_automatic_layers_under_tensor_split_fit_every_device(gqa_model: GGUFInfo) -> None:
    small = (GpuBudget("a", 2 * GiB, 1250 * 2**20), GpuBudget("b", 2 * GiB, 1250 * 2**20))
    launch = resolve_launch(tensor(contextsize=65536), gqa_model.path, gqa_model, True, None, small)
    assert launch.plan is not None and launch.plan.fits
    assert 0 < launch.n_gpu_layers < 5  # the KV of 64k tokens does not fit every layer
    assert launch.tensor_split is None
