"""Write small (or large) llama-shaped GGUF models with random weights and a real tokenizer.

Speed and memory do not depend on the values of the weights, so these files exercise
llama.cpp exactly as a real model of the same shape would. The tokenizer (and chat template)
is copied from a real GGUF, by default the built-in SmolLM2 model.

    python -m kobold_gui.dev.synthetic_gguf OUT.gguf --layers 32 --embd 4096 --ffn 14336 \\
        --heads 32 --kv-heads 8 --type Q4_0 --vocab-from ggml-vocab-llama-bpe.gguf
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

from kobold_gui.core.models.gguf_header import GGUFHeader, read_header
from kobold_gui.core.models.gguf_info import GGUFInfo, TensorInfo

_TOKENIZER_STRINGS = ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.chat_template")
_TOKENIZER_IDS = (
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.padding_token_id",
    "tokenizer.ggml.unknown_token_id",
    "tokenizer.ggml.eot_token_id",
)


@dataclass(frozen=True)
class Shape:
    layers: int = 2
    embd: int = 64
    ffn: int = 128
    heads: int = 4
    kv_heads: int = 2
    context: int = 2048
    experts: int = 0  # >0 writes a mixture-of-experts FFN
    experts_used: int = 2
    arch: str = "llama"


def _tensor(
    shape: tuple[int, ...],
    qtype: GGMLQuantizationType,
    rng: np.random.Generator,
    cache: dict[tuple[object, ...], np.ndarray],
) -> np.ndarray:
    """One random tensor per (shape, type), quantized once and reused (as in the device
    recipe): writing an 8B shape then takes seconds of quantization, not minutes."""
    key = (shape, qtype)
    if key not in cache:
        data = (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)
        if qtype == GGMLQuantizationType.F32:
            cache[key] = data
        elif qtype == GGMLQuantizationType.F16:
            cache[key] = data.astype(np.float16)
        else:
            cache[key] = gguf.quants.quantize(data, qtype)
    return cache[key]


def write_model(
    out: Path,
    shape: Shape = Shape(),
    qtype: str = "Q8_0",
    vocab_from: Path | None = None,
    seed: int = 0,
    extra_floats: dict[str, float] | None = None,
    split_max_tensors: int = 0,
) -> Path:
    """Write the model; returns its path (with `split_max_tensors`, the first of the parts
    the gguf package's split writer makes: OUT-00001-of-0000N.gguf)."""
    if vocab_from is None:
        from kobold_gui.core.models.files import default_model_path

        vocab_from = default_model_path()
        if vocab_from is None:
            raise FileNotFoundError("no vocabulary GGUF given and the default model is missing")
    src = read_header(Path(vocab_from))
    tokens = src.array("tokenizer.ggml.tokens")
    rng = np.random.default_rng(seed)

    w = gguf.GGUFWriter(str(out), shape.arch, split_max_tensors=split_max_tensors)
    _add_hyperparameters(w, shape, qtype, extra_floats or {})
    _add_tokenizer(w, src, tokens)
    _add_tensors(w, shape, GGMLQuantizationType[qtype], len(tokens), rng)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return w.format_shard_names(out)[0]


def _add_hyperparameters(
    w: gguf.GGUFWriter, shape: Shape, qtype: str, extra_floats: dict[str, float]
) -> None:
    w.add_name(f"synthetic-{shape.layers}L-{shape.embd}d")
    w.add_block_count(shape.layers)
    w.add_context_length(shape.context)
    w.add_embedding_length(shape.embd)
    w.add_feed_forward_length(shape.ffn)
    w.add_head_count(shape.heads)
    w.add_head_count_kv(shape.kv_heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(shape.embd // shape.heads)
    w.add_rope_freq_base(10000.0)
    w.add_file_type(int(getattr(gguf.LlamaFileType, f"MOSTLY_{qtype}", gguf.LlamaFileType.ALL_F32)))
    for key, value in extra_floats.items():  # e.g. general.sampling.temp
        w.add_float32(key, value)
    if shape.experts:
        w.add_expert_count(shape.experts)
        w.add_expert_used_count(shape.experts_used)


def _add_tokenizer(w: gguf.GGUFWriter, src: GGUFHeader, tokens: list[Any]) -> None:
    """The vocabulary source's tokenizer and chat template, copied."""
    w.add_tokenizer_model(str(src.fields["tokenizer.ggml.model"]))
    if "tokenizer.ggml.pre" in src.fields:
        w.add_tokenizer_pre(str(src.fields["tokenizer.ggml.pre"]))
    w.add_token_list(tokens)
    if "tokenizer.ggml.token_type" in src.fields:
        w.add_token_types(src.array("tokenizer.ggml.token_type"))
    if "tokenizer.ggml.merges" in src.fields:
        w.add_token_merges(src.array("tokenizer.ggml.merges"))
    for key in _TOKENIZER_IDS:
        if key in src.fields:
            w.add_uint32(key, int(src.fields[key]))
    for key in ("tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token"):
        if key in src.fields:
            w.add_bool(key, bool(src.fields[key]))
    if "tokenizer.chat_template" in src.fields:
        w.add_chat_template(str(src.fields["tokenizer.chat_template"]))


def _add_tensors(
    w: gguf.GGUFWriter,
    shape: Shape,
    q: GGMLQuantizationType,
    n_vocab: int,
    rng: np.random.Generator,
) -> None:
    """Random weights for every tensor of a llama-shaped model (MoE with shape.experts)."""
    f32 = GGMLQuantizationType.F32
    cache: dict[tuple[object, ...], np.ndarray] = {}
    e, f, hd = shape.embd, shape.ffn, shape.embd // shape.heads
    kv = shape.kv_heads * hd

    def add(name: str, dims: tuple[int, ...], qt: GGMLQuantizationType) -> None:
        # numpy shape is the reverse of ggml's ne
        w.add_tensor(name, _tensor(dims, qt, rng, cache), raw_dtype=qt)

    add("token_embd.weight", (n_vocab, e), q)
    add("output_norm.weight", (e,), f32)
    add("output.weight", (n_vocab, e), q)
    for i in range(shape.layers):
        p = f"blk.{i}."
        add(p + "attn_norm.weight", (e,), f32)
        add(p + "attn_q.weight", (e, e), q)
        add(p + "attn_k.weight", (kv, e), q)
        add(p + "attn_v.weight", (kv, e), q)
        add(p + "attn_output.weight", (e, e), q)
        add(p + "ffn_norm.weight", (e,), f32)
        if shape.experts:
            n = shape.experts
            add(p + "ffn_gate_inp.weight", (n, e), f32)
            add(p + "ffn_gate_exps.weight", (n, f, e), q)
            add(p + "ffn_up_exps.weight", (n, f, e), q)
            add(p + "ffn_down_exps.weight", (n, e, f), q)
        else:
            add(p + "ffn_gate.weight", (f, e), q)
            add(p + "ffn_up.weight", (f, e), q)
            add(p + "ffn_down.weight", (e, f), q)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--embd", type=int, default=64)
    ap.add_argument("--ffn", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--context", type=int, default=8192)
    ap.add_argument("--experts", type=int, default=0)
    ap.add_argument("--type", default="Q8_0", help="Q4_0, Q8_0, F16, F32")
    ap.add_argument("--vocab-from", type=Path, default=None)
    a = ap.parse_args()
    shape = Shape(a.layers, a.embd, a.ffn, a.heads, a.kv_heads, a.context, a.experts)
    write_model(a.out, shape, a.type, a.vocab_from)
    print(a.out)


if __name__ == "__main__":
    main()


def shape_info(shape: Shape, qtype: str = "Q4_0", n_vocab: int = 128256) -> GGUFInfo:
    """The GGUFInfo of a model of this shape, without writing it: the memory plan for
    shapes too big to write in a test (the tensors in file order, as write_model writes)."""
    e, f, kv = shape.embd, shape.ffn, shape.kv_heads * (shape.embd // shape.heads)
    block, size = GGML_QUANT_SIZES[GGMLQuantizationType[qtype]]
    dims = [("token_embd.weight", n_vocab * e, True), ("output_norm.weight", e, False)]
    dims.append(("output.weight", n_vocab * e, True))
    for i in range(shape.layers):
        p = f"blk.{i}."
        dims += [
            (p + "attn_norm.weight", e, False),
            (p + "attn_q.weight", e * e, True),
            (p + "attn_k.weight", kv * e, True),
            (p + "attn_v.weight", kv * e, True),
            (p + "attn_output.weight", e * e, True),
            (p + "ffn_norm.weight", e, False),
            (p + "ffn_gate.weight", f * e, True),
            (p + "ffn_up.weight", f * e, True),
            (p + "ffn_down.weight", e * f, True),
        ]
    tensors, offset = [], 0
    for name, n, quantized in dims:
        n_bytes = n * size // block if quantized else 4 * n
        tensors.append(TensorInfo(name, qtype if quantized else "F32", n, n_bytes, offset))
        offset += n_bytes
    return GGUFInfo(
        path=Path(f"synthetic-{shape.layers}L-{shape.embd}d.gguf"),
        file_size=offset,
        architecture=shape.arch,
        name=None,
        size_label=None,
        quantization=qtype,
        n_layers=shape.layers,
        context_length=shape.context,
        embedding_length=e,
        head_count=shape.heads,
        head_count_kv=shape.kv_heads,
        feed_forward_length=f,
        expert_count=None,
        chat_template=None,
        bos_token=None,
        eos_token=None,
        n_params=sum(n for _, n, _ in dims),
        tensors=tuple(tensors),
        n_vocab=n_vocab,
    )
