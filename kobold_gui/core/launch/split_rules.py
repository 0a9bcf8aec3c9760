"""When llama.cpp's tensor split (LLAMA_SPLIT_MODE_TENSOR) can be used, said before loading.

Tensor split cuts each layer's matrices across the devices, which then work on the same layer
at once (a "Meta" device over them: src/llama.cpp, llama_prepare_model_devices), where the
layer split runs the devices one after another. llama.cpp refuses it for some architectures
and without flash attention; the app refuses it on one device too (llama.cpp only warns).
With remote machines' devices (RPC) and with a partial offload llama.cpp accepts it (the
first layers stay on the CPU, the rest go to the Meta device): measured over two RPC
servers (tests/core/test_tensor_split_rpc.py), so the app allows both."""

from __future__ import annotations

from collections.abc import Sequence

from kobold_gui.core.launch.options import ConfigError, LaunchConfig
from kobold_gui.core.plan.types import MemoryPlan

# The architectures llama.cpp has no tensor split for: the `return false` cases of
# llm_arch_supports_sm_tensor (src/llama-arch.cpp of the llama.cpp vendored by
# llama-cpp-python 0.3.36), by their GGUF names (LLM_ARCH_NAMES in the same file). Every
# other architecture is supported. Update this list with llama.cpp.
NO_TENSOR_SPLIT_ARCHS = frozenset(
    {
        "grok",
        "mpt",
        "plamo2",
        "minicpm3",
        "gemma3n",
        "mamba",
        "mamba2",
        "jamba",
        "falcon-h1",
        "olmo2",
        "olmoe",
        "deepseek2",
        "deepseek32",
        "hy_v4",
        "dots3note",
        "glm-dsa",
        "bitnet",
        "t5",
        "nemotron_h",
        "nemotron_h_moe",
        "granitehybrid",
        "minimax-01",
        "minimax-m2",
        "minimax-m3",
        "mistral4",
        "kimi-linear",
        "bailingmoe3",
        "kimi-k3",
        "glm5-next",
        "qwen3tts",
        "qwen4exp",
    }
)

FLASH_ATTN_NOTE = "flash attention will be on: tensor split needs it (llama.cpp turns auto on)"


def architecture_refusal(architecture: str | None) -> str | None:
    """Why llama.cpp would refuse tensor split for this architecture (llama_model_create in
    src/llama-model.cpp throws), or None."""
    if architecture is None or architecture not in NO_TENSOR_SPLIT_ARCHS:
        return None
    return (
        f"split mode tensor is not possible for this model: llama.cpp has no tensor split for "
        f"the '{architecture}' architecture (\"LLAMA_SPLIT_MODE_TENSOR not implemented for "
        f"architecture '{architecture}'\"); use split mode layer"
    )


def check_tensor_split(
    config: LaunchConfig, architecture: str | None, n_devices: int | None
) -> None:
    """Raises ConfigError with llama.cpp's reason where a tensor split load would fail, and
    with the app's own where it would load but make no sense. `n_devices`: the devices the
    model may use (GPUs and remote devices; None while not known)."""
    if config.splitmode != "tensor":
        return
    if config.flashattention == "off":
        # llama_init_from_model (src/llama-context.cpp): auto becomes enabled, off fails.
        raise ConfigError(
            'split mode tensor needs flash attention (llama.cpp: "SPLIT_MODE_TENSOR requires '
            'flash_attn to be enabled"): set flash attention to auto or on, or use split '
            "mode layer"
        )
    refusal = architecture_refusal(architecture)
    if refusal:
        raise ConfigError(refusal)
    if n_devices is not None and n_devices < 2:
        here = (
            "here there is 1. llama.cpp only warns that one device is not recommended; this app"
            " refuses it (no gain, more memory)"
            if n_devices
            else "here there is none this llama.cpp build can use (a CPU-only build, or GPUs none)"
        )
        raise ConfigError(
            "split mode tensor needs two or more devices to split each layer across (GPUs, or "
            f"remote machines' devices); {here}: use split mode layer"
        )
    _check_shares(config.tensor_split)


def _check_shares(shares: Sequence[float]) -> None:
    if shares and not all(s > 0 for s in shares):
        raise ConfigError(
            "with split mode tensor every device needs a share above 0: a device with 0 still "
            "holds the unsplit tensors and a whole compute buffer; leave it out instead (--gpus, "
            "or remove the machine)"
        )


def flash_attn_type(config: LaunchConfig, table: dict[str, int]) -> int:
    """LLAMA_FLASH_ATTN_TYPE_* as llama.cpp will use it: tensor split turns auto on."""
    if config.splitmode == "tensor" and config.flashattention == "auto":
        return table["on"]
    return table[config.flashattention]


def tensor_split_line(plan: MemoryPlan) -> str:
    """What tensor split does with this launch, in one line (the CLI's plan, the window's);
    '' for the other split modes. The plan's model was checked over RPC servers; on GPUs
    it is not yet, and the line says so."""
    gpus = [d for d in plan.devices if d.is_gpu]
    if plan.request.split_mode != "tensor" or not gpus:
        return ""
    layers = gpus[0].layers
    output = plan.n_layer in layers
    what = f"{len(layers) - output} offloaded layers" + (" and the output" if output else "")
    line = (
        f"split mode tensor: each of the {what} is cut across "
        f"the {len(gpus)} devices, which work at once; flash attention on"
    )
    return line if all(d.remote for d in gpus) else f"{line} (plan on GPUs: not measured yet)"
