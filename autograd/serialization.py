"""Checkpoint I/O for `dict[str, numpy.ndarray]` (a `state_dict`), in pure NumPy, never pickle.

Two formats:

- safetensors (Hugging Face, https://github.com/huggingface/safetensors, README "Format"):
  an 8-byte little-endian header length N, N bytes of UTF-8 JSON
  `{"__metadata__": {str: str}, name: {"dtype": "F32", "shape": [...], "data_offsets": [b, e]}}`
  padded with spaces to a multiple of 8, then one little-endian byte buffer. We write what the
  `safetensors` library writes, byte for byte: compact JSON, `__metadata__` first, tensors
  ordered by dtype (widest first, the library's enum order) then name, so every tensor sits
  aligned to its item size. Reading applies the library's checks (offsets contiguous from 0,
  sizes matching shapes, no bytes after the last tensor).
- npz (NumPy's zip of `.npy` members, `numpy.lib.format`, NEP 1): the layout of `np.savez`,
  written member by member with `allow_pickle=False` and read back by our own loop that checks
  each member's header against its size before allocating, so a corrupt file cannot ask for a
  huge array or reach the unpickler.

Files are written through `autograd.files.atomic_open` (temp file, fsync, rename: a crash never
leaves a half-written checkpoint under the real name) and opened for reading with
`open_regular` (a FIFO or a directory is refused, not waited on). Every way a file can be bad
raises `CheckpointError`, a `ValueError` whose message names the file and the problem, and no
allocation is larger than the file's real size justifies.
"""
from __future__ import annotations

import ast
import json
import lzma
import math
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np
from numpy.lib import format as npy_format

from autograd.files import (CheckpointError, PathLike, atomic_open, atomic_write,
                            atomic_write_text, open_regular, parse_json)


# ----------------------------------------------------------------------------- shared helpers

def _check_arrays(arrays: Any, fname: str, supported: Callable[[np.dtype], bool],
                  supported_text: str) -> dict[str, np.ndarray]:
    """Validate a name -> array mapping for saving and return the arrays as ndarrays."""
    if not isinstance(arrays, Mapping):
        raise TypeError(f"{fname}: expected a dict of name -> numpy array, "
                        f"got {type(arrays).__name__}")
    out: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        if not isinstance(key, str):
            raise TypeError(f"{fname}: keys must be str, got {type(key).__name__} {key!r}")
        try:
            key.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(f"{fname}: key {key!r} cannot be encoded as UTF-8") from e
        if not isinstance(value, (np.ndarray, np.generic)):
            raise TypeError(f"{fname}: value for key {key!r} is a {type(value).__name__}, "
                            f"not a numpy array")
        arr = np.asarray(value)
        if arr.dtype.hasobject:
            raise TypeError(f"{fname}: array {key!r} has dtype object, which would need pickle")
        if not supported(arr.dtype):
            raise TypeError(f"{fname}: array {key!r} has unsupported dtype {arr.dtype}; "
                            f"supported: {supported_text}")
        out[key] = arr
    return out


def _read_exact_into(f: IO[bytes], buf: np.ndarray) -> int:
    """Fill the uint8 array `buf` from `f`; return how many bytes arrived (short at EOF)."""
    view = memoryview(buf)
    got = 0
    while got < len(view):
        n = f.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def _bytes_to_array(raw: np.ndarray, dtype: np.dtype, shape: tuple[int, ...],
                    fortran: bool = False) -> np.ndarray:
    """View a freshly read uint8 buffer as a C-contiguous, native-byte-order array."""
    if dtype.kind == "b":
        # Any nonzero byte is True; a raw view would keep bytes like 0x02 as odd "bools".
        arr = raw != 0
    else:
        arr = raw.view(dtype)
    arr = arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)
    return arr.astype(arr.dtype.newbyteorder("="), order="C", copy=False)


# ----------------------------------------------------------------------------- safetensors

# The library sorts tensors by this enum order, widest first, then by name; writing the same
# order makes our files byte-identical to its output and keeps every tensor aligned.
_ST_ORDER = ("BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64",
             "I64", "U64")
_ST_DTYPES = {  # safetensors name -> the little-endian NumPy dtype of its bytes
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # no NumPy bfloat16: read as raw 16-bit words, then widened
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"), "U64": np.dtype("<u8"), "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"), "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}
_ST_NAMES = {(dt.kind, dt.itemsize): name for name, dt in _ST_DTYPES.items() if name != "BF16"}
_ST_SUPPORTED_TEXT = "float64/32/16, int64/32/16/8, uint64/32/16/8, bool"
_ST_MAX_HEADER = 100_000_000  # the library's own limit; guards against absurd lengths


class SafetensorsHeader(NamedTuple):
    """What a safetensors header says, without the data."""

    metadata: dict[str, str]
    tensors: dict[str, tuple[str, tuple[int, ...]]]  # name -> (dtype name in the file, shape)


class _Entry(NamedTuple):
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def save_safetensors(path: PathLike, tensors: Mapping[str, np.ndarray],
                     metadata: Mapping[str, str] | None = None) -> None:
    """Write `tensors` (and optional string `metadata`) to `path` in the safetensors format.

    Non-contiguous and big-endian arrays are fine (the bytes are written C-ordered,
    little-endian). Values must be NumPy arrays of a dtype in the format's table (TypeError
    otherwise); the name "__metadata__" is reserved (ValueError).
    """
    arrays = _check_arrays(tensors, "save_safetensors",
                           lambda dt: (dt.kind, dt.itemsize) in _ST_NAMES, _ST_SUPPORTED_TEXT)
    if "__metadata__" in arrays:
        raise ValueError("save_safetensors: '__metadata__' is reserved and cannot name a tensor")
    header: dict[str, Any] = {}
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise TypeError(f"save_safetensors: metadata must be a dict of str -> str, "
                            f"got {type(metadata).__name__}")
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(f"save_safetensors: metadata must map str -> str, got "
                                f"{type(k).__name__} {k!r} -> {type(v).__name__}")
        # Sorted, for files that do not depend on dict order (the library uses hash order).
        header["__metadata__"] = dict(sorted(metadata.items()))
    order = sorted(arrays, key=lambda k: (-_ST_ORDER.index(_st_name(arrays[k])), k))
    offset = 0
    for name in order:
        arr = arrays[name]
        header[name] = {"dtype": _st_name(arr), "shape": list(arr.shape),
                        "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
    try:
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"save_safetensors: metadata is not valid UTF-8 text: {e}") from e
    text += b" " * (-len(text) % 8)

    def write(f: IO[bytes]) -> None:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name in order:
            arr = arrays[name]
            le = arr.astype(arr.dtype.newbyteorder("<"), order="C", copy=False)
            f.write(le.reshape(-1).view(np.uint8).data)

    atomic_write(path, write)


def _st_name(arr: np.ndarray) -> str:
    return _ST_NAMES[(arr.dtype.kind, arr.dtype.itemsize)]


def _is_count(v: Any) -> bool:
    """A JSON non-negative integer (JSON true/false parse as bool, a subclass of int)."""
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _read_st_header(f: IO[bytes], path: Path, size: int) -> tuple[dict[str, str], list[_Entry]]:
    """Parse and fully validate the header; leaves `f` at the start of the data."""
    where = f"safetensors file {path}"
    if size == 0:
        raise CheckpointError(f"{where}: the file is empty")
    if size < 8:
        raise CheckpointError(f"{where}: truncated: {size} bytes, too short for the 8-byte "
                              f"header length")
    (n,) = struct.unpack("<Q", f.read(8))
    if n > _ST_MAX_HEADER:
        raise CheckpointError(f"{where}: header length {n} exceeds the limit of "
                              f"{_ST_MAX_HEADER} bytes")
    if 8 + n > size:
        raise CheckpointError(f"{where}: header length {n} is larger than the file "
                              f"({size} bytes)")
    try:
        text = f.read(n).decode("utf-8")
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{where}: the header is not UTF-8: {e.reason} at byte "
                              f"{8 + e.start}") from None
    header = parse_json(text, f"{where}: header")
    if not isinstance(header, dict):
        raise CheckpointError(f"{where}: the header is a JSON {type(header).__name__}, "
                              f"not an object")

    metadata = header.pop("__metadata__", None)
    metadata = {} if metadata is None else metadata  # null reads as "no metadata"
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise CheckpointError(f"{where}: __metadata__ must map strings to strings")

    entries = []
    for name, info in header.items():
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= info.keys():
            raise CheckpointError(f"{where}: tensor {name!r} needs dtype, shape and "
                                  f"data_offsets, got {info!r}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dtype, str) or dtype not in _ST_DTYPES:
            raise CheckpointError(f"{where}: tensor {name!r} has unknown dtype {dtype!r}; "
                                  f"known: {', '.join(_ST_DTYPES)}")
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise CheckpointError(f"{where}: tensor {name!r} has invalid shape {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(_is_count(o) for o in offsets) or offsets[0] > offsets[1]):
            raise CheckpointError(f"{where}: tensor {name!r} has invalid data_offsets "
                                  f"{offsets!r} (want [begin, end] with 0 <= begin <= end)")
        need = math.prod(shape) * _ST_DTYPES[dtype].itemsize
        if offsets[1] - offsets[0] != need:
            raise CheckpointError(
                f"{where}: tensor {name!r}: data_offsets {offsets} span "
                f"{offsets[1] - offsets[0]} bytes but dtype {dtype} and shape {shape} "
                f"need {need}")
        entries.append(_Entry(name, dtype, tuple(shape), offsets[0], offsets[1]))

    data_size = size - 8 - n
    expected = 0
    for e in sorted(entries, key=lambda e: (e.begin, e.end)):
        if e.begin != expected:
            problem = "overlaps the previous tensor" if e.begin < expected else \
                f"leaves a gap of {e.begin - expected} bytes after the previous tensor"
            raise CheckpointError(f"{where}: tensor {e.name!r} at data_offsets "
                                  f"[{e.begin}, {e.end}] {problem}")
        if e.end > data_size:
            raise CheckpointError(f"{where}: truncated data: tensor {e.name!r} ends at byte "
                                  f"{e.end} of the data section, which has {data_size} bytes")
        expected = e.end
    if expected != data_size:
        raise CheckpointError(f"{where}: {data_size - expected} unexpected bytes after the "
                              f"last tensor (data section is {data_size} bytes, tensors "
                              f"use {expected})")
    return metadata, entries


def read_safetensors_metadata(path: PathLike) -> SafetensorsHeader:
    """Read and validate a safetensors header without reading the tensor data.

    Returns `(metadata, tensors)`: the `__metadata__` dict ({} if absent) and
    {name: (dtype name as stored, e.g. "BF16", shape tuple)} in header order.
    """
    path = Path(path)
    with open_regular(path, "safetensors file") as f:
        metadata, entries = _read_st_header(f, path, os.fstat(f.fileno()).st_size)
    return SafetensorsHeader(metadata, {e.name: (e.dtype, e.shape) for e in entries})


def load_safetensors(path: PathLike) -> dict[str, np.ndarray]:
    """Load every tensor of a safetensors file as a writable, C-contiguous, native-endian array.

    BF16 tensors are returned as float32 (each 16-bit word shifted into the high half of a
    float32, which is exact), because NumPy has no bfloat16. Tensors come back in header order.
    """
    path = Path(path)
    out: dict[str, np.ndarray] = {}
    with open_regular(path, "safetensors file") as f:
        _, entries = _read_st_header(f, path, os.fstat(f.fileno()).st_size)
        # The validated offsets tile the data section from 0, so reading in offset order is
        # one sequential pass, straight into each array's own buffer.
        for e in sorted(entries, key=lambda e: (e.begin, e.end)):
            raw = np.empty(e.end - e.begin, dtype=np.uint8)
            if _read_exact_into(f, raw) != raw.size:  # the file shrank since we sized it
                raise CheckpointError(f"safetensors file {path}: truncated data in tensor "
                                      f"{e.name!r}")
            if e.dtype == "BF16":
                words = raw.view(_ST_DTYPES["BF16"]).astype(np.uint32)
                out[e.name] = (words << 16).view(np.float32).reshape(e.shape)
            else:
                out[e.name] = _bytes_to_array(raw, _ST_DTYPES[e.dtype], e.shape)
    return {e.name: out[e.name] for e in entries}


# ----------------------------------------------------------------------------- npz

_NPZ_KINDS = "biufc"  # bool, signed, unsigned, float, complex
_NPY_DESCR = re.compile(r"[<>|=]?[biufc][0-9]{1,2}")   # the plain numeric dtypes, nothing else
_NPY_MAX_HEADER = 10_000  # numpy's own limit on a header's length
_DEFLATE_MAX_RATIO = 1032  # deflate cannot expand data more than this
# What zipfile and its decompressors raise on damaged input.
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
               KeyError, NotImplementedError, RuntimeError, RecursionError, OverflowError,
               zlib.error, lzma.LZMAError, struct.error)


def save_npz(path: PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """Write `arrays` to `path` as an uncompressed .npz (the layout `np.savez` writes).

    Members are written with `allow_pickle=False` and a fixed timestamp, so equal arrays give
    equal files. Keys may not contain NUL (zip truncates names there).
    """
    arrays = _check_arrays(arrays, "save_npz", lambda dt: dt.kind in _NPZ_KINDS,
                           "bool, integer, float and complex dtypes")
    for key in arrays:
        if "\0" in key:
            raise ValueError(f"save_npz: key {key!r} contains a NUL character")

    def write(f: IO[bytes]) -> None:
        with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED,
                             allowZip64=True) as zf:
            for key, arr in arrays.items():
                info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
                with zf.open(info, mode="w", force_zip64=True) as member:
                    npy_format.write_array(member, np.asarray(arr, order="C"),
                                           allow_pickle=False)

    atomic_write(path, write)


def load_npz(path: PathLike) -> dict[str, np.ndarray]:
    """Load every array of an .npz file (e.g. from `np.savez`), with no pickle ever involved.

    Arrays come back C-contiguous, native-endian and writable, the file closed. Pickled
    object arrays, non-numeric dtypes and damaged archives raise CheckpointError. Nothing the
    zip directory or a .npy header claims is trusted: sizes are checked against the file's
    real size before any buffer is allocated, and headers are parsed by our own code.
    """
    path = Path(path)
    where = f"npz file {path}"
    out: dict[str, np.ndarray] = {}
    with open_regular(path, "npz file") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise CheckpointError(f"{where}: the file is empty")
        try:
            zf = zipfile.ZipFile(f)
        except _ZIP_ERRORS as e:
            raise CheckpointError(f"{where}: not a readable zip archive: {e}") from e
        with zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    raise CheckpointError(f"{where}: member {info.filename!r} is not a .npy "
                                          f"array")
                key = info.filename[:-len(".npy")]
                if key in out:
                    raise CheckpointError(f"{where}: array {key!r} appears twice")
                member = f"{where}: array {key!r}"
                _check_member(info, size, member)
                try:
                    out[key] = _read_npy_member(zf, info, member)
                except CheckpointError:
                    raise
                except _ZIP_ERRORS as e:
                    raise CheckpointError(f"{member} is corrupt: {type(e).__name__}: "
                                          f"{e}") from e
    return out


def _check_member(info: zipfile.ZipInfo, archive_size: int, where: str) -> None:
    """What the zip directory says about a member must fit in the file as it really is."""
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise CheckpointError(f"{where} uses zip compression method {info.compress_type}; "
                              f"only stored and deflate members are read")
    if info.flag_bits & 0x1:
        raise CheckpointError(f"{where} is encrypted")
    if info.header_offset + info.compress_size > archive_size:
        raise CheckpointError(f"{where}: the zip directory claims {info.compress_size} bytes "
                              f"at offset {info.header_offset}, past the end of the "
                              f"{archive_size}-byte file")
    if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
        raise CheckpointError(f"{where}: the zip directory claims {info.file_size} bytes for a "
                              f"stored member of {info.compress_size} bytes")
    if info.file_size > info.compress_size * _DEFLATE_MAX_RATIO + 64:
        raise CheckpointError(f"{where}: the zip directory claims {info.file_size} bytes, more "
                              f"than {info.compress_size} compressed bytes can hold")


def _read_npy_header(fp: IO[bytes], where: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran_order, dtype, header length) of a .npy stream, parsed without numpy's
    reader (which falls back to `tokenize` on odd headers and builds any dtype asked for)."""
    magic = fp.read(8)
    if len(magic) < 8 or magic[:6] != b"\x93NUMPY":
        raise CheckpointError(f"{where} is not a .npy array (bad magic bytes)")
    version = (magic[6], magic[7])
    if version not in ((1, 0), (2, 0), (3, 0)):
        raise CheckpointError(f"{where}: unsupported .npy format version {version}")
    size_format = "<H" if version == (1, 0) else "<I"
    raw = fp.read(struct.calcsize(size_format))
    if len(raw) < struct.calcsize(size_format):
        raise CheckpointError(f"{where}: truncated .npy header")
    (n,) = struct.unpack(size_format, raw)
    if n > _NPY_MAX_HEADER:
        raise CheckpointError(f"{where}: .npy header of {n} bytes exceeds {_NPY_MAX_HEADER}")
    header = fp.read(n)
    if len(header) < n:
        raise CheckpointError(f"{where}: truncated .npy header")
    try:
        d = ast.literal_eval(header.decode("utf-8" if version == (3, 0) else "latin1"))
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError) as e:
        raise CheckpointError(f"{where}: unreadable .npy header: {type(e).__name__}") from None
    if not isinstance(d, dict) or set(d) != {"descr", "fortran_order", "shape"}:
        raise CheckpointError(f"{where}: the .npy header is not a dict of descr, "
                              f"fortran_order and shape")
    shape, fortran, descr = d["shape"], d["fortran_order"], d["descr"]
    if not isinstance(shape, tuple) or not all(_is_count(x) for x in shape):
        raise CheckpointError(f"{where}: invalid shape {shape!r} in the .npy header")
    if not isinstance(fortran, bool):
        raise CheckpointError(f"{where}: invalid fortran_order {fortran!r} in the .npy header")
    if descr in ("O", "|O"):
        raise CheckpointError(f"{where}: holds pickled Python objects (dtype object); "
                              f"refusing to unpickle")
    if not isinstance(descr, str) or not _NPY_DESCR.fullmatch(descr):
        raise CheckpointError(f"{where}: unsupported dtype {descr!r}; only bool, integer, "
                              f"float and complex arrays are read")
    try:
        dtype = np.dtype(descr)
    except TypeError:
        raise CheckpointError(f"{where}: unsupported dtype {descr!r}") from None
    return shape, fortran, dtype, 8 + len(raw) + n


def _read_npy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> np.ndarray:
    with zf.open(info) as fp:
        shape, fortran, dtype, header = _read_npy_header(fp, where)
        # The header's claim against the member's (already checked) size, before allocating.
        need = math.prod(shape) * dtype.itemsize
        have = info.file_size - header
        if need != have:
            raise CheckpointError(f"{where}: header says shape {shape} of {dtype} ({need} "
                                  f"bytes) but the member holds {have} bytes of data")
        raw = np.empty(need, dtype=np.uint8)
        if _read_exact_into(fp, raw) != need:
            raise CheckpointError(f"{where}: truncated data")
        fp.read(1)  # reading to the member's end makes zipfile verify its CRC-32
    return _bytes_to_array(raw, dtype, shape, fortran)


# ----------------------------------------------------------------------------- by suffix

def _format_of(path: PathLike, fname: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in (".safetensors", ".npz"):
        raise ValueError(f"{fname}: cannot tell the format of {os.fspath(path)!r}: expected a "
                         f".safetensors or .npz suffix, got {suffix or 'none'!r}")
    return suffix


def save_arrays(path: PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """Save to .safetensors or .npz, chosen by the suffix of `path`."""
    if _format_of(path, "save_arrays") == ".safetensors":
        save_safetensors(path, arrays)
    else:
        save_npz(path, arrays)


def load_arrays(path: PathLike) -> dict[str, np.ndarray]:
    """Load a .safetensors or .npz file, chosen by the suffix of `path`."""
    if _format_of(path, "load_arrays") == ".safetensors":
        return load_safetensors(path)
    return load_npz(path)


__all__ = ["CheckpointError", "SafetensorsHeader", "atomic_open", "atomic_write",
           "atomic_write_text", "load_arrays",
           "load_npz", "load_safetensors", "read_safetensors_metadata", "save_arrays",
           "save_npz", "save_safetensors"]
