"""Our own reader of the safetensors container, run before the safetensors library sees a file.

Layout: 8-byte little-endian header length N, N bytes of UTF-8 JSON, then one byte buffer. The JSON
maps tensor names to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to the
buffer) plus an optional ``"__metadata__"`` of string -> string. A well-formed file covers the
buffer exactly: no gaps, no overlaps, no trailing bytes. Every refusal is a sentence naming the file.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

from portrait_studio.errors import InputError

ALLOWED_DTYPES = {"F16": 2, "BF16": 2, "F32": 4}
# Known to the format but refused here: integers, bools, doubles and float8 are not LoRA weights.
KNOWN_DTYPES = {
    "F64", "I64", "U64", "I32", "U32", "I16", "U16", "I8", "U8", "BOOL",
    "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64",
}
MAX_HEADER_BYTES = 16 * 1024 * 1024
MAX_TENSORS = 20_000
MAX_METADATA_VALUE_CHARS = 1_000_000

_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
_ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class SafetensorsHeader:
    header_bytes: int
    data_bytes: int
    tensors: dict[str, TensorEntry]
    metadata: dict[str, str]


def refuse(path: Path, problem: str, advice: str = "") -> InputError:
    tail = f" {advice}" if advice else ""
    return InputError(f"LoRA file '{path.name}' refused: {problem}.{tail}")


def sniff_foreign_format(path: Path, head: bytes) -> None:
    """Name pickles and zip checkpoints explicitly: they are the usual wrong file."""
    if head.startswith(_ZIP_MAGIC):
        raise refuse(
            path, "it is a zip archive (a PyTorch .pt/.ckpt checkpoint), not safetensors",
            "Pickled checkpoints can run code and are never loaded; convert it to .safetensors first.",
        )
    if head.startswith(_PICKLE_MAGIC):
        raise refuse(
            path, "it is a Python pickle, not safetensors",
            "Pickled checkpoints can run code and are never loaded; convert it to .safetensors first.",
        )


def read_header(path: Path, file_size: int, max_header_bytes: int = MAX_HEADER_BYTES) -> SafetensorsHeader:
    """Parse and check the container structure of ``path`` without touching tensor data."""
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        sniff_foreign_format(path, prefix)
        if len(prefix) < 8:
            raise refuse(path, f"it is truncated ({file_size} bytes, shorter than the 8-byte header length)")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > max_header_bytes:
            raise refuse(path, f"its header claims {header_len:,} bytes, more than the {max_header_bytes:,} allowed")
        if 8 + header_len > file_size:
            raise refuse(
                path, f"it is truncated (header claims {header_len:,} bytes but the file has only {file_size:,})"
            )
        raw = handle.read(header_len)
    if len(raw) != header_len:
        raise refuse(path, "it is truncated while reading the header")
    header = _decode_json(path, raw)
    data_bytes = file_size - 8 - header_len
    metadata = _check_metadata(path, header.pop("__metadata__", None))
    if not header:
        raise refuse(path, "it contains no tensors")
    if len(header) > MAX_TENSORS:
        raise refuse(path, f"it lists {len(header):,} tensors, more than the {MAX_TENSORS:,} allowed")
    tensors = {name: _check_entry(path, name, spec) for name, spec in header.items()}
    _check_coverage(path, tensors, data_bytes)
    return SafetensorsHeader(header_len, data_bytes, tensors, metadata)


def _decode_json(path: Path, raw: bytes) -> dict:
    def no_duplicates(pairs: list[tuple[str, object]]) -> dict:
        result: dict = {}
        for key, value in pairs:
            if key in result:
                raise refuse(path, f"its header names tensor '{key}' twice")
            result[key] = value
        return result

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise refuse(path, "its header is not UTF-8 text (is it really a .safetensors file?)") from None
    if not text.lstrip().startswith("{"):
        raise refuse(path, "its header is not a JSON object (is it really a .safetensors file?)")
    try:
        header = json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        raise refuse(path, f"its header is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(header, dict):
        raise refuse(path, "its header is not a JSON object")
    return header


def _check_metadata(path: Path, metadata: object) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise refuse(path, "its __metadata__ is not a map of strings to strings")
    if any(len(v) > MAX_METADATA_VALUE_CHARS for v in metadata.values()):
        raise refuse(path, "a __metadata__ value is unreasonably long")
    return metadata


def _check_entry(path: Path, name: str, spec: object) -> TensorEntry:
    if not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "data_offsets"}:
        raise refuse(path, f"tensor '{name}' has a malformed header entry (need exactly dtype, shape, data_offsets)")
    dtype, shape, offsets = spec["dtype"], spec["shape"], spec["data_offsets"]
    if dtype not in ALLOWED_DTYPES:
        known = "a dtype" if dtype in KNOWN_DTYPES else "an unknown dtype"
        raise refuse(path, f"tensor '{name}' has {known} {dtype!r}; LoRA weights must be F16, BF16 or F32")
    if not isinstance(shape, list) or len(shape) > 8 or not all(_is_count(d) for d in shape):
        raise refuse(path, f"tensor '{name}' has an invalid shape {shape!r}")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(o) for o in offsets):
        raise refuse(path, f"tensor '{name}' has invalid data_offsets {offsets!r}")
    begin, end = offsets
    expected = math.prod(shape) * ALLOWED_DTYPES[dtype]
    if end < begin or end - begin != expected:
        raise refuse(
            path, f"tensor '{name}' spans {end - begin} bytes but shape {shape} of {dtype} needs {expected}"
        )
    return TensorEntry(name, dtype, tuple(shape), begin, end)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**48


def _check_coverage(path: Path, tensors: dict[str, TensorEntry], data_bytes: int) -> None:
    """Tensors must tile the data buffer exactly, in offset order."""
    position = 0
    previous = None
    for entry in sorted(tensors.values(), key=lambda e: (e.begin, e.end)):
        if entry.begin < position:
            raise refuse(path, f"tensors '{previous}' and '{entry.name}' overlap in the data buffer")
        if entry.begin > position:
            raise refuse(path, f"there are {entry.begin - position} unused bytes before tensor '{entry.name}'")
        position = entry.end
        previous = entry.name
    if position > data_bytes:
        raise refuse(
            path, f"it is truncated (tensors need {position:,} data bytes but the file holds {data_bytes:,})"
        )
    if position < data_bytes:
        raise refuse(path, f"it has {data_bytes - position:,} trailing bytes after the last tensor")
