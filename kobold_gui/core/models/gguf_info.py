"""Metadata and validation of a .gguf file, read with the `gguf` package before llama.cpp
ever sees the file (llama.cpp aborts or logs cryptic errors on bad input)."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gguf

from kobold_gui.core.models.gguf_header import GGUFHeader, HeaderError, LazyArray, read_header
from kobold_gui.core.models.names import display_name
from kobold_gui.core.units import human_bytes, human_count

GGUF_MAGIC = b"GGUF"

# What a file that is not GGUF usually is, by its first bytes: the message names it.
_KNOWN_MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a zip archive (a PyTorch .bin/.pt checkpoint?)"),
    (b"\x80\x02", "a Python pickle (a PyTorch checkpoint?)"),
    (b"ggml", "an old GGML file (convert it to GGUF)"),
    (b"ggjt", "an old GGJT file (convert it to GGUF)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"<", "an HTML or XML page (a failed download?)"),
    (b"{", "a JSON file"),
)


class ModelFileError(ValueError):
    """The file cannot be used as a model; the message says why, for the user."""


# llama.cpp's name for part i of n of a split model (llama_split_path): PREFIX-0000i-of-0000n
_SPLIT_NAME = re.compile(r"^(?P<prefix>.*)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)


@dataclass(frozen=True)
class ShardHeader:
    """One file's parsed header and its size (on disk, or as the hub reports it)."""

    header: GGUFHeader
    file_size: int
    name: str


def split_part_name(first_name: str, index: int, count: int) -> str:
    """The file name of part `index` (0-based) of a split model, from the first part's."""
    m = _SPLIT_NAME.match(first_name)
    prefix = m.group("prefix") if m else first_name.removesuffix(".gguf")
    return f"{prefix}-{index + 1:05d}-of-{count:05d}.gguf"


def split_count(header: GGUFHeader) -> int:
    """How many files the model is split into (1: not split)."""
    count = header.fields.get("split.count")
    return count if isinstance(count, int) and count > 1 else 1


@dataclass(frozen=True)
class TensorInfo:
    name: str
    type_name: str
    n_elements: int
    n_bytes: int
    offset: int = 0  # in its file
    file_index: int = 0  # which part of a split model (0: the first or only file)
    shape: tuple[int, ...] = ()  # ggml's ne order (ne0 first); the plan's tensor split reads it


@dataclass(frozen=True)
class GGUFInfo:
    path: Path
    file_size: int
    architecture: str
    name: str | None
    size_label: str | None
    quantization: str
    n_layers: int
    context_length: int | None
    embedding_length: int | None
    head_count: int | None
    head_count_kv: int | None
    feed_forward_length: int | None
    expert_count: int | None
    chat_template: str | None
    bos_token: str | None
    eos_token: str | None
    n_params: int
    tensors: tuple[TensorInfo, ...] = field(repr=False)
    n_vocab: int = 0
    expert_used_count: int | None = None
    key_length: int | None = None  # per-head K size, when not n_embd / n_head
    value_length: int | None = None
    # The model author's recommended sampling (general.sampling.*), as SamplingParams names.
    sampling_defaults: dict[str, float] = field(default_factory=dict)
    shown_as: str = ""  # the file's name for people (core/models/names.py), set by read_gguf

    @property
    def label(self) -> str:
        """What the user sees for the file: an Ollama blob's name:tag, else its file name."""
        return self.shown_as or self.path.name

    @property
    def has_chat_template(self) -> bool:
        return bool(self.chat_template)

    def summary(self) -> dict[str, Any]:
        """The fields a user sees before loading, in display order."""
        return {
            "file": self.label,
            "name": self.name or "—",
            "architecture": self.architecture,
            "size label": self.size_label or human_count(self.n_params),
            "parameters": human_count(self.n_params),
            "quantization": self.quantization,
            "layers": self.n_layers,
            "trained context": self.context_length or "—",
            "file size": human_bytes(self.file_size),
            "chat template": "yes"
            if self.has_chat_template
            else "no (a plain ChatML prompt is used)",
        }


def check_model_path(path: str | os.PathLike[str]) -> Path:
    """Check what can be checked without parsing: exists, a file, starts with GGUF."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelFileError(f"model file not found: {p}")
    if p.is_dir():
        raise ModelFileError(f"{p} is a folder, not a .gguf file")
    try:
        with p.open("rb") as f:
            head = f.read(8)
    except OSError as e:
        raise ModelFileError(f"cannot read {p}: {e.strerror or e}") from None
    if len(head) < 4:
        raise ModelFileError(f"{p.name} is empty or too short to be a GGUF model")
    if head[:4] != GGUF_MAGIC:
        what = next((desc for magic, desc in _KNOWN_MAGICS if head.startswith(magic)), None)
        shown = head[:4].decode("latin-1").encode("unicode_escape").decode()
        raise ModelFileError(
            f"{p.name} is not a GGUF model: it starts with '{shown}'"
            + (f", which looks like {what}" if what else "")
        )
    return p


def _token(header: GGUFHeader, id_key: str) -> str | None:
    token_id = header.fields.get(id_key)
    if not isinstance(token_id, int):
        return None
    value = header.array_item("tokenizer.ggml.tokens", token_id)
    return value if isinstance(value, str) else None


_SAMPLING_KEYS = {
    "temp": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "min_p": "min_p",
    "penalty_repeat": "repeat_penalty",
}


def _sampling_defaults(fields: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, name in _SAMPLING_KEYS.items():
        value = fields.get(f"general.sampling.{key}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = int(value) if name == "top_k" else float(value)
    return out


def _vocab_size(fields: dict[str, Any]) -> int:
    tokens = fields.get("tokenizer.ggml.tokens")
    if isinstance(tokens, LazyArray):
        return tokens.count
    return len(tokens) if isinstance(tokens, list) else 0


def known_architectures() -> frozenset[str]:
    """Architectures the gguf package (from the llama.cpp tree) knows."""
    return frozenset(gguf.MODEL_ARCH_NAMES.values())


def _quantization(header: GGUFHeader, tensors: list[TensorInfo]) -> str:
    ftype = header.fields.get("general.file_type")
    if isinstance(ftype, int):
        try:
            return gguf.LlamaFileType(ftype).name.removeprefix("MOSTLY_")
        except ValueError:
            pass
    # No file type: name the tensor type that holds the most bytes.
    by_bytes: Counter[str] = Counter()
    for t in tensors:
        by_bytes[t.type_name] += t.n_bytes
    return by_bytes.most_common(1)[0][0] if by_bytes else "unknown"


def _read_shard(p: Path) -> ShardHeader:
    try:
        return ShardHeader(read_header(p), p.stat().st_size, p.name)
    except HeaderError as e:
        raise ModelFileError(f"{p.name} is not a readable GGUF file: {e}") from None
    except (OSError, ValueError) as e:
        raise ModelFileError(f"{p.name} could not be read: {e}") from None


def read_gguf(path: str | os.PathLike[str]) -> GGUFInfo:
    """Validate and describe a GGUF file. Raises ModelFileError with a user-facing message.

    A split model (NAME-00001-of-00003.gguf) is read from every part: each has its own
    tensor table, and llama.cpp loads them all."""
    p = check_model_path(path)
    first = _read_shard(p)
    shards = [first]
    count = split_count(first.header)
    if count > 1:
        part = first.header.fields.get("split.no", 0)
        if part != 0:
            raise ModelFileError(
                f"{p.name} is part {part + 1} of {count} of a split model: open the first "
                f"part, {split_part_name(p.name, 0, count)}"
            )
        for i in range(1, count):
            shard_path = p.with_name(split_part_name(p.name, i, count))
            if not shard_path.is_file():
                raise ModelFileError(
                    f"{p.name} is split into {count} files and part {i + 1} "
                    f"({shard_path.name}) is missing from {p.parent}"
                )
            shards.append(_read_shard(check_model_path(shard_path)))
    return replace(info_from_headers(shards, p), shown_as=display_name(p))


def info_from_headers(shards: Sequence[ShardHeader], path: Path) -> GGUFInfo:
    """A model's description from the headers of its file(s); metadata comes from the first,
    tensors from all of them. Raises ModelFileError with a user-facing message."""
    tensors: list[TensorInfo] = []
    for index, shard in enumerate(shards):
        tensors += _shard_tensors(shard, index)
    header = shards[0].header
    file_size = sum(s.file_size for s in shards)
    fields = header.fields
    arch = _architecture(fields, shards[0].name, tensors)

    def arch_int(key: str) -> int | None:
        value = fields.get(f"{arch}.{key}")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def text(key: str) -> str | None:
        value = fields.get(key)
        return value if isinstance(value, str) and value.strip() else None

    return GGUFInfo(
        path=path,
        file_size=file_size,
        architecture=arch,
        name=text("general.name"),
        size_label=text("general.size_label"),
        quantization=_quantization(header, tensors),
        n_layers=arch_int("block_count") or 0,
        context_length=arch_int("context_length"),
        embedding_length=arch_int("embedding_length"),
        head_count=arch_int("attention.head_count"),
        head_count_kv=arch_int("attention.head_count_kv"),
        feed_forward_length=arch_int("feed_forward_length"),
        expert_count=arch_int("expert_count"),
        expert_used_count=arch_int("expert_used_count"),
        key_length=arch_int("attention.key_length"),
        value_length=arch_int("attention.value_length"),
        n_vocab=_vocab_size(fields),
        sampling_defaults=_sampling_defaults(fields),
        chat_template=text("tokenizer.chat_template"),
        bos_token=_token(header, "tokenizer.ggml.bos_token_id"),
        eos_token=_token(header, "tokenizer.ggml.eos_token_id"),
        n_params=sum(t.n_elements for t in tensors),
        tensors=tuple(tensors),
    )


def _shard_tensors(shard: ShardHeader, index: int) -> list[TensorInfo]:
    """The tensors of part `index`, at their offsets in its file; a file too short for them
    is an error."""
    header = shard.header
    try:
        mine = [
            TensorInfo(
                t.name,
                t.type_name,
                t.n_elements,
                t.n_bytes,
                header.data_offset + t.offset,
                index,
                t.shape,
            )
            for t in header.tensors
        ]
    except HeaderError as e:
        raise ModelFileError(f"{shard.name} is not a readable GGUF file: {e}") from None
    data_end = max((t.offset + t.n_bytes for t in mine), default=header.data_offset)
    if data_end > shard.file_size:
        raise ModelFileError(
            f"{shard.name} is truncated: its tensors need {human_bytes(data_end)} "
            f"but the file has {human_bytes(shard.file_size)} (an incomplete download?)"
        )
    return mine


def _architecture(fields: dict[str, Any], name: str, tensors: list[TensorInfo]) -> str:
    """The model's architecture, checked: known to this llama.cpp, and with tensors."""
    arch = fields.get("general.architecture")
    if not isinstance(arch, str):
        raise ModelFileError(f"{name} has no general.architecture: not a model file")
    if arch not in known_architectures():
        raise ModelFileError(
            f"{name} uses the architecture '{arch}', which this llama.cpp build does not know"
        )
    if not tensors:
        raise ModelFileError(f"{name} has no tensors (a vocabulary-only file?)")
    return arch
