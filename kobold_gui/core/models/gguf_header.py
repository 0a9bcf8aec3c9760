"""A fast reader of a GGUF header: metadata and tensor infos, no tensor data.

The `gguf` package's GGUFReader builds a numpy view for every element of every array, which
takes 3 to 6 s for SmolLM2's 49k-token vocabulary here and far longer for 128k-token models.
A user picking a file should see its metadata at once, so this reader walks the same format
with struct over an mmap and skips the contents of long arrays. The format's definitions
(value types, quantization block sizes, alignment) come from the `gguf` package itself.
"""

from __future__ import annotations

import contextlib
import mmap
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gguf.constants import (
    GGML_QUANT_SIZES,
    GGUF_DEFAULT_ALIGNMENT,
    GGMLQuantizationType,
    GGUFValueType,
)

_SCALARS: dict[int, str] = {
    GGUFValueType.UINT8: "<B",
    GGUFValueType.INT8: "<b",
    GGUFValueType.UINT16: "<H",
    GGUFValueType.INT16: "<h",
    GGUFValueType.UINT32: "<I",
    GGUFValueType.INT32: "<i",
    GGUFValueType.UINT64: "<Q",
    GGUFValueType.INT64: "<q",
    GGUFValueType.FLOAT32: "<f",
    GGUFValueType.FLOAT64: "<d",
    GGUFValueType.BOOL: "<?",
}
# Arrays longer than this keep only their location (vocabularies, merges, scores).
_INLINE_ARRAY_MAX = 256


class HeaderError(ValueError):
    """The header cannot be parsed: truncated, corrupt or an unsupported version."""


class HeaderTruncated(HeaderError):
    """The bytes end before the header does: a cut file, or (for a range read) more bytes
    are needed: `need` is how many the header takes at least (an estimate inside a long
    array of strings, from the items read so far)."""

    def __init__(self, message: str, need: int = 0) -> None:
        super().__init__(message)
        self.need = need


@dataclass(frozen=True)
class LazyArray:
    """A long metadata array, read on demand."""

    item_type: int
    count: int
    offset: int  # of the first item


@dataclass(frozen=True)
class RawTensor:
    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int  # relative to the start of the data section

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def type_name(self) -> str:
        try:
            return GGMLQuantizationType(self.ggml_type).name
        except ValueError:
            return f"type{self.ggml_type}"

    @property
    def n_bytes(self) -> int:
        try:
            block, size = GGML_QUANT_SIZES[GGMLQuantizationType(self.ggml_type)]
        except (ValueError, KeyError):
            raise HeaderError(f"tensor {self.name} has an unknown type {self.ggml_type}") from None
        return self.n_elements // block * size


@dataclass(frozen=True)
class GGUFHeader:
    version: int
    fields: dict[str, Any]
    tensors: tuple[RawTensor, ...]
    data_offset: int
    path: Path
    # The header's bytes when it was read over the network (no file to map).
    buffer: bytes | None = None

    def _buf(self) -> Any:
        """A context manager yielding the bytes to read lazy arrays from."""
        if self.buffer is not None:
            return contextlib.nullcontext(self.buffer)
        return _mapped(self.path)

    def array(self, key: str) -> list[Any]:
        """A whole metadata array (a vocabulary, say), read from the file when lazy."""
        value = self.fields.get(key)
        if isinstance(value, list):
            return value
        if not isinstance(value, LazyArray):
            raise KeyError(key)
        with self._buf() as m:
            cur = _Cursor(m, value.offset)
            return [cur.value(value.item_type) for _ in range(value.count)]

    def array_item(self, key: str, index: int) -> Any:
        """Item `index` of a metadata array, inline or lazy."""
        value = self.fields.get(key)
        if isinstance(value, list):
            return value[index] if 0 <= index < len(value) else None
        if not isinstance(value, LazyArray) or not 0 <= index < value.count:
            return None
        with self._buf() as m:
            cur = _Cursor(m, value.offset)
            for _ in range(index):
                cur.skip_value(value.item_type)
            return cur.value(value.item_type)


@contextlib.contextmanager
def _mapped(path: Path) -> Iterator[mmap.mmap]:
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        yield m


class _Cursor:
    def __init__(self, buf: mmap.mmap | bytes, pos: int = 0) -> None:
        self.buf = buf
        self.pos = pos

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise HeaderTruncated("the header ends early (truncated file)", self.pos + size)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        n = self.unpack("<Q")
        if self.pos + n > len(self.buf):
            raise HeaderTruncated(
                "a string runs past the end of the file (truncated or corrupt)", self.pos + n
            )
        raw = self.buf[self.pos : self.pos + n]
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def skip_value(self, vtype: int) -> None:
        if vtype == GGUFValueType.STRING:
            n = self.unpack("<Q")
            self.pos += n
        elif vtype in _SCALARS:
            self.pos += struct.calcsize(_SCALARS[vtype])
        elif vtype == GGUFValueType.ARRAY:
            item_type, count = self.unpack("<I"), self.unpack("<Q")
            if item_type in _SCALARS:
                self.pos = self.pos + count * struct.calcsize(_SCALARS[item_type])
            else:
                start = self.pos
                for i in range(count):
                    try:
                        self.skip_value(item_type)
                    except HeaderTruncated as e:
                        raise _extrapolated(e, start, self.pos, i, count) from None
        else:
            raise HeaderError(f"unknown metadata value type {vtype} (corrupt header)")
        if self.pos > len(self.buf):
            raise HeaderTruncated(
                "metadata runs past the end of the file (truncated or corrupt)", self.pos
            )

    def value(self, vtype: int) -> Any:
        if vtype == GGUFValueType.STRING:
            return self.string()
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == GGUFValueType.ARRAY:
            item_type, count = self.unpack("<I"), self.unpack("<Q")
            if count <= _INLINE_ARRAY_MAX:
                return [self.value(item_type) for _ in range(count)]
            lazy = LazyArray(item_type, count, self.pos)
            self.pos -= 12
            self.skip_value(vtype)
            return lazy
        raise HeaderError(f"unknown metadata value type {vtype} (corrupt header)")


def _extrapolated(
    e: HeaderTruncated, start: int, pos: int, done: int, count: int
) -> HeaderTruncated:
    """The bytes `count` items from `start` take, guessed from the `done` read so far."""
    per_item = (pos - start) / max(done, 1)
    guess = start + int(per_item * count) if done else 0
    return HeaderTruncated(str(e), max(e.need, guess))


def read_header(path: Path) -> GGUFHeader:
    """Parse the header of a GGUF file (magic already checked by the caller)."""
    with _mapped(path) as m:
        return parse_header(m, path, len(m))


def parse_header(
    buf: mmap.mmap | bytes, path: Path, file_size: int, keep: bool = False
) -> GGUFHeader:
    """Parse a header from the first bytes of a GGUF file of `file_size` bytes.

    Raises HeaderTruncated when `buf` ends before the tensor table does (a range reader
    then fetches more). `keep` keeps `buf` in the result for lazy arrays (no file to map)."""
    cur = _Cursor(buf, 4)
    version = cur.unpack("<I")
    if version not in (2, 3):
        raise HeaderError(f"GGUF version {version} is not supported (2 and 3 are)")
    n_tensors, n_kv = cur.unpack("<Q"), cur.unpack("<Q")
    if n_tensors > file_size or n_kv > file_size:
        raise HeaderError("the header's counts are impossible (corrupt file)")
    fields: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string()
        fields[key] = cur.value(cur.unpack("<I"))
    tensors = []
    table = cur.pos
    for i in range(n_tensors):
        try:
            name = cur.string()
            n_dims = cur.unpack("<I")
            if n_dims > 8:
                raise HeaderError(f"tensor {name} has {n_dims} dimensions (corrupt header)")
            shape = tuple(cur.unpack("<Q") for _ in range(n_dims))
            tensors.append(RawTensor(name, shape, cur.unpack("<I"), cur.unpack("<Q")))
        except HeaderTruncated as e:
            raise _extrapolated(e, table, cur.pos, i, n_tensors) from None
    alignment = fields.get("general.alignment", GGUF_DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise HeaderError(f"invalid general.alignment {alignment!r}")
    data_offset = -(-cur.pos // alignment) * alignment
    kept = bytes(buf[: cur.pos]) if keep else None
    return GGUFHeader(version, fields, tuple(tensors), data_offset, path, kept)
