from __future__ import annotations

from pathlib import Path

import gguf
import pytest

from kobold_gui.core.models.gguf_header import read_header
from kobold_gui.core.models.gguf_info import ModelFileError, read_gguf
from kobold_gui.dev.synthetic_gguf import Shape, write_model
from tests.conftest import BAD_FILE_MESSAGES


def test_default_model_metadata(default_model: Path) -> None:
    info = read_gguf(default_model)
    assert info.architecture == "llama"
    assert info.size_label == "135M"
    assert info.quantization == "Q4_1"
    assert info.n_layers == 30
    assert info.context_length == 8192
    assert (info.head_count, info.head_count_kv, info.embedding_length) == (9, 3, 576)
    assert info.has_chat_template and "<|im_start|>" in (info.chat_template or "")
    assert (info.bos_token, info.eos_token) == ("<|im_start|>", "<|im_end|>")
    assert info.file_size == default_model.stat().st_size
    summary = info.summary()
    assert summary["layers"] == 30 and summary["chat template"] == "yes"


def test_fast_header_agrees_with_the_gguf_packages_reader(default_model: Path) -> None:
    """Our reader skips long arrays for speed; it must see what gguf.GGUFReader sees."""
    ours = read_header(default_model)
    theirs = gguf.GGUFReader(default_model)
    assert ours.data_offset == theirs.data_offset
    assert [(t.name, t.type_name, t.n_elements, t.n_bytes) for t in ours.tensors] == [
        (t.name, t.tensor_type.name, int(t.n_elements), int(t.n_bytes)) for t in theirs.tensors
    ]
    for key in (
        "general.architecture",
        "llama.block_count",
        "tokenizer.chat_template",
        "llama.rope.freq_base",
        "tokenizer.ggml.bos_token_id",
    ):
        assert ours.fields[key] == pytest.approx(theirs.fields[key].contents())
    tokens = theirs.fields["tokenizer.ggml.tokens"]
    assert ours.array("tokenizer.ggml.tokens")[:50] == [tokens.contents(i) for i in range(50)]
    assert ours.array_item("tokenizer.ggml.tokens", 1000) == tokens.contents(1000)


def test_synthetic_moe_model_is_described(tmp_path: Path, default_model: Path) -> None:
    path = write_model(
        tmp_path / "moe.gguf",
        Shape(layers=3, embd=64, ffn=64, heads=4, kv_heads=1, experts=4),
        "Q8_0",
        default_model,
    )
    info = read_gguf(path)
    assert (info.n_layers, info.expert_count, info.head_count_kv) == (3, 4, 1)
    assert info.quantization == "Q8_0"
    assert any(t.name == "blk.0.ffn_up_exps.weight" for t in info.tensors)


@pytest.mark.parametrize("kind", sorted(BAD_FILE_MESSAGES))
def test_bad_files_get_a_clear_message(bad_files: dict[str, Path], kind: str) -> None:
    with pytest.raises(ModelFileError) as caught:
        read_gguf(bad_files[kind])
    assert BAD_FILE_MESSAGES[kind] in str(caught.value)


def test_a_cut_header_says_how_much_more_it_needs(default_model: Path) -> None:
    """What a range reader relies on: parsing the first k bytes fails with an estimate of the
    header's end that is past k, and not wildly past the real end."""
    from kobold_gui.core.models.gguf_header import HeaderTruncated, parse_header

    data = default_model.read_bytes()
    end = read_header(default_model).data_offset
    size = len(data)
    for k in range(64, end, end // 23):
        with pytest.raises(HeaderTruncated) as cut:
            parse_header(data[:k], default_model, size)
        assert k < cut.value.need <= 2 * end, (k, cut.value.need, end)
    whole = parse_header(data[:end], default_model, size, keep=True)
    assert whole.tensors == read_header(default_model).tensors
    assert whole.array_item("tokenizer.ggml.tokens", 2) == read_header(default_model).array_item(
        "tokenizer.ggml.tokens", 2
    )
