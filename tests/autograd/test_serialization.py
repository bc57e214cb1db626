"""Tests for autograd/serialization.py: round trips, byte compatibility, corrupt files (the
atomic writer has test_atomic_writes.py).

Where the `safetensors` package is installed, files are cross-checked against it (skipped when
absent). Corrupt-file tests assert both the exception type and the message.
"""
from __future__ import annotations

import json
import struct
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.lib import format as npy_format

from autograd.serialization import (
    CheckpointError,
    load_arrays,
    load_npz,
    load_safetensors,
    read_safetensors_metadata,
    save_arrays,
    save_npz,
    save_safetensors,
)

FORMATS = ["safetensors", "npz"]
DTYPES = [np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.int8, np.uint8,
          np.uint16, np.uint32, np.uint64, np.bool_]
SHAPES = [(), (0,), (2, 0, 3), (1,), (3, 4), (2, 3, 5)]


def _sample(dtype, shape, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    a = rng.standard_normal(shape).astype(dtype)
    if a.size >= 4:  # the values a bitwise round trip must keep
        a.flat[:4] = [np.nan, np.inf, -np.inf, -0.0]
    return a


def _save(fmt, path, arrays):
    (save_safetensors if fmt == "safetensors" else save_npz)(path, arrays)


def _load(fmt, path):
    return (load_safetensors if fmt == "safetensors" else load_npz)(path)


def assert_same_arrays(got: dict, expected: dict) -> None:
    assert sorted(got) == sorted(expected)
    for k, e in expected.items():
        g = got[k]
        assert isinstance(g, np.ndarray), k
        assert g.dtype == e.dtype.newbyteorder("=") and g.shape == e.shape, k
        assert g.flags.c_contiguous and g.flags.writeable and g.dtype.isnative, k
        assert g.tobytes() == np.ascontiguousarray(e).astype(g.dtype).tobytes(), k  # bitwise


# ----------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_round_trip_every_dtype_and_shape(tmp_path, fmt, dtype):
    arrays = {f"t{i}": _sample(dtype, shape, seed=i) for i, shape in enumerate(SHAPES)}
    path = tmp_path / f"ckpt.{fmt}"
    _save(fmt, path, arrays)
    assert_same_arrays(_load(fmt, path), arrays)


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_mixed_dtypes_views_and_big_endian(tmp_path, fmt):
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    arrays = {
        "layer.0.weight": base.T,                                  # Fortran-ordered view
        "layer.1.weight": base[::2, 1::3],                         # strided view
        "big": np.arange(5, dtype=">i4"),                          # big-endian
        "scalar": np.float32(2.5),                                 # NumPy scalar
        "mask": np.array([True, False, True]),
        "é/ü name": np.zeros((0, 2), np.int8),
        "": np.ones(3, np.uint8),                                  # empty name is allowed
    }
    path = tmp_path / f"ckpt.{fmt}"
    _save(fmt, path, arrays)
    assert_same_arrays(_load(fmt, path), {k: np.asarray(v) for k, v in arrays.items()})


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_dict_round_trips(tmp_path, fmt):
    path = tmp_path / f"empty.{fmt}"
    _save(fmt, path, {})
    assert _load(fmt, path) == {}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), fmt=st.sampled_from(FORMATS))
def test_round_trip_property(tmp_path_factory, data, fmt):
    names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
                    max_size=12).filter(lambda s: s != "__metadata__")
    dtypes = st.sampled_from(DTYPES).map(np.dtype)
    arrays = data.draw(st.dictionaries(names, dtypes.flatmap(
        lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0,
                                                   max_side=4))), max_size=5))
    path = tmp_path_factory.mktemp("prop") / f"ckpt.{fmt}"
    _save(fmt, path, arrays)
    assert_same_arrays(_load(fmt, path), arrays)


def test_safetensors_metadata_and_header_only_read(tmp_path):
    path = tmp_path / "m.safetensors"
    arrays = {"w": np.zeros((2, 3), np.float32), "b": np.zeros(3, np.int64)}
    save_safetensors(path, arrays, metadata={"format": "np", "step": "12", "note": "é\n\"q\""})
    header = read_safetensors_metadata(path)
    metadata, tensors = header  # a NamedTuple unpacks
    assert metadata == {"format": "np", "step": "12", "note": "é\n\"q\""}
    assert tensors == {"b": ("I64", (3,)), "w": ("F32", (2, 3))}
    assert header.tensors is tensors
    assert read_safetensors_metadata(tmp_path / "m.safetensors").metadata["step"] == "12"


def test_safetensors_layout_is_aligned_and_sorted(tmp_path):
    path = tmp_path / "layout.safetensors"
    save_safetensors(path, {"b": np.zeros(3, np.uint8), "a": np.zeros(1, np.float64),
                            "c": np.zeros(1, np.float64)})
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0 and raw[8 + n - 1:8 + n] in (b"}", b" ")
    header = json.loads(raw[8:8 + n])
    # widest dtype first, then by name: a, c (F64), b (U8); offsets tile the data section
    assert list(header) == ["a", "c", "b"]
    assert [header[k]["data_offsets"] for k in header] == [[0, 8], [8, 16], [16, 19]]
    assert len(raw) == 8 + n + 19


def _bf16_file(path, words: list[int], shape) -> None:
    data = np.array(words, dtype="<u2").tobytes()
    header = {"x": {"dtype": "BF16", "shape": list(shape), "data_offsets": [0, len(data)]}}
    path.write_bytes(_craft(header, data))


def test_bf16_loads_as_float32(tmp_path):
    path = tmp_path / "bf16.safetensors"
    _bf16_file(path, [0x3F80, 0xC000, 0x7F80, 0xFF80, 0x3F81, 0x0000, 0x8000], (7,))
    x = load_safetensors(path)["x"]
    assert x.dtype == np.float32 and x.flags.c_contiguous and x.flags.writeable
    np.testing.assert_array_equal(x, [1.0, -2.0, np.inf, -np.inf, 1.0078125, 0.0, -0.0])
    assert np.signbit(x[6])
    assert read_safetensors_metadata(path).tensors == {"x": ("BF16", (7,))}


def test_npz_interoperates_with_numpy(tmp_path):
    arrays = {"a": np.arange(6.0).reshape(2, 3), "f": np.asfortranarray(np.ones((3, 2), "i4")),
              "c": np.array([1 + 2j], np.complex64)}
    ours = tmp_path / "ours.npz"
    save_npz(ours, arrays)
    with np.load(ours, allow_pickle=False) as z:
        assert_same_arrays({k: z[k] for k in z.files}, arrays)
    theirs = tmp_path / "theirs.npz"
    np.savez(theirs, **arrays)  # keeps the Fortran order of "f" in the file
    assert_same_arrays(load_npz(theirs), arrays)
    np.savez_compressed(theirs, **arrays)
    assert_same_arrays(load_npz(theirs), arrays)


def test_npz_is_deterministic(tmp_path):
    arrays = {"a": np.arange(4.0), "b": np.ones(2, bool)}
    save_npz(tmp_path / "1.npz", arrays)
    save_npz(tmp_path / "2.npz", arrays)
    assert (tmp_path / "1.npz").read_bytes() == (tmp_path / "2.npz").read_bytes()


def test_loaded_arrays_do_not_hold_the_file(tmp_path):
    for name in ("x.safetensors", "x.npz"):
        path = tmp_path / name
        save_arrays(path, {"a": np.arange(3.0)})
        loaded = load_arrays(path)
        path.unlink()  # would fail on Windows if the file were still mapped/open
        loaded["a"][0] = 7.0
        assert loaded["a"].base is None or not isinstance(loaded["a"].base, np.memmap)


def test_dispatch_by_suffix(tmp_path):
    arrays = {"a": np.arange(3, dtype=np.int32)}
    for name in ("x.safetensors", "x.npz", "X.NPZ"):
        save_arrays(tmp_path / name, arrays)
        assert_same_arrays(load_arrays(tmp_path / name), arrays)
    assert (tmp_path / "x.safetensors").read_bytes()[8:9] == b"{"
    assert zipfile.is_zipfile(tmp_path / "x.npz")
    with pytest.raises(ValueError, match=r"save_arrays: cannot tell the format of .*x\.pt.*"
                                         r"expected a \.safetensors or \.npz suffix"):
        save_arrays(tmp_path / "x.pt", arrays)
    with pytest.raises(ValueError, match=r"load_arrays: .*got 'none'"):
        load_arrays(tmp_path / "weights")


# ----------------------------------------------------------------------------- byte compat

def test_byte_compatible_with_safetensors_library(tmp_path):
    st_numpy = pytest.importorskip("safetensors.numpy")
    from safetensors import safe_open

    arrays = {f"{np.dtype(dt).name}.{i}": _sample(dt, shape, seed=i)
              for dt in DTYPES for i, shape in enumerate([(), (0,), (3, 2), (5,)])}
    arrays["z.first"] = np.zeros(3, np.uint8)  # odd-sized data before wider types would misalign
    for metadata in (None, {"format": "np"}):
        ours = tmp_path / "ours.safetensors"
        save_safetensors(ours, arrays, metadata=metadata)
        theirs_bytes = st_numpy.save(arrays, metadata=metadata)
        assert ours.read_bytes() == theirs_bytes
        assert_same_arrays(st_numpy.load_file(str(ours)), arrays)
        theirs = tmp_path / "theirs.safetensors"
        theirs.write_bytes(theirs_bytes)
        assert_same_arrays(load_safetensors(theirs), arrays)
        with safe_open(str(ours), framework="np") as f:
            assert (f.metadata() or {}) == (metadata or {})
    # Several metadata keys: the library writes them in hash order, we sort; both must load.
    many = {f"k{i}": str(i) for i in range(6)}
    save_safetensors(tmp_path / "m.safetensors", arrays, metadata=many)
    with safe_open(str(tmp_path / "m.safetensors"), framework="np") as f:
        assert f.metadata() == many
    (tmp_path / "t.safetensors").write_bytes(st_numpy.save(arrays, metadata=many))
    assert read_safetensors_metadata(tmp_path / "t.safetensors").metadata == many


# ----------------------------------------------------------------------------- corrupt files

def _craft(header, data: bytes = b"", n: int | None = None) -> bytes:
    """A safetensors file from a header (dict or raw bytes), its data, and an optional lie
    about the header length."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text) if n is None else n) + text + data


GOOD = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "I64", "shape": [1], "data_offsets": [8, 16]}}
GOOD_DATA = bytes(16)


def _with(name, **changes):
    header = json.loads(json.dumps(GOOD))
    header[name].update(changes)
    return header


CORRUPT_SAFETENSORS = [
    ("empty", b"", r"the file is empty"),
    ("short", b"\x08\x00\x00", r"truncated: 3 bytes, too short for the 8-byte header length"),
    ("header longer than file", _craft(b"{}", n=64), r"header length 64 is larger than the file"),
    ("absurd header length", _craft(b"{}", n=2 ** 40), r"header length 1099511627776 exceeds"),
    ("invalid json", _craft(b'{"a": '), r"header: invalid JSON"),
    ("invalid utf-8", _craft(b'{"\xff": 1}'), r"the header is not UTF-8: invalid start byte"),
    ("duplicate key", _craft(b'{"a": {}, "a": {}}'), r"header: invalid JSON: duplicate key 'a'"),
    ("not an object", _craft(b"[1, 2]"), r"the header is a JSON list, not an object"),
    ("entry not object", _craft({"a": 3}), r"tensor 'a' needs dtype, shape and data_offsets"),
    ("unknown dtype", _craft(_with("a", dtype="F8_E4M3"), GOOD_DATA),
     r"tensor 'a' has unknown dtype 'F8_E4M3'"),
    ("negative dim", _craft(_with("a", shape=[-2]), GOOD_DATA), r"tensor 'a' has invalid shape"),
    ("float dim", _craft(_with("a", shape=[2.0]), GOOD_DATA), r"tensor 'a' has invalid shape"),
    ("bool dim", _craft(_with("a", shape=[True, 2]), GOOD_DATA), r"tensor 'a' has invalid shape"),
    ("offsets reversed", _craft(_with("a", data_offsets=[8, 0]), GOOD_DATA),
     r"tensor 'a' has invalid data_offsets \[8, 0\]"),
    ("three offsets", _craft(_with("a", data_offsets=[0, 4, 8]), GOOD_DATA),
     r"tensor 'a' has invalid data_offsets"),
    ("size mismatch", _craft(_with("a", shape=[3]), GOOD_DATA),
     r"tensor 'a': data_offsets \[0, 8\] span 8 bytes but dtype F32 and shape \[3\] need 12"),
    ("offsets past data", _craft(_with("b", data_offsets=[8, 16]), bytes(12)),
     r"truncated data: tensor 'b' ends at byte 16 of the data section, which has 12 bytes"),
    ("overlap", _craft(_with("b", shape=[1], data_offsets=[4, 12]), GOOD_DATA),
     r"tensor 'b' at data_offsets \[4, 12\] overlaps the previous tensor"),
    ("gap", _craft(_with("a", data_offsets=[4, 12]) | {"b": {"dtype": "I32", "shape": [1],
                                                              "data_offsets": [12, 16]}},
                   GOOD_DATA), r"tensor 'a' at data_offsets \[4, 12\] leaves a gap of 4 bytes"),
    ("truncated data", _craft(GOOD, GOOD_DATA[:-3]),
     r"truncated data: tensor 'b' ends at byte 16 .* which has 13 bytes"),
    ("trailing bytes", _craft(GOOD, GOOD_DATA + b"xx"), r"2 unexpected bytes after the last"),
    ("bad metadata", _craft({"__metadata__": {"k": 1}}), r"__metadata__ must map strings"),
]


@pytest.mark.parametrize("content,message", [c[1:] for c in CORRUPT_SAFETENSORS],
                         ids=[c[0] for c in CORRUPT_SAFETENSORS])
def test_corrupt_safetensors_raise_checkpoint_error(tmp_path, content, message):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    for reader in (load_safetensors, read_safetensors_metadata, load_arrays):
        with pytest.raises(CheckpointError, match=message) as info:
            reader(path)
        assert str(path) in str(info.value)
        assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_file_names_the_path(tmp_path, fmt):
    path = tmp_path / f"nope.{fmt}"
    with pytest.raises(FileNotFoundError, match="nope"):
        _load(fmt, path)


def _good_npz(tmp_path) -> bytes:
    path = tmp_path / "good.npz"
    save_npz(path, {"w": np.arange(10.0), "b": np.ones(3, np.int32)})
    return path.read_bytes()


def _npz_with_member(tmp_path, name: str, header: dict, data: bytes) -> bytes:
    path = tmp_path / "crafted.npz"
    with zipfile.ZipFile(path, "w") as zf, zf.open(name, "w") as fp:
        npy_format.write_array_header_1_0(fp, header)
        fp.write(data)
    return path.read_bytes()


def _corrupt_npz_cases(tmp_path):
    good = _good_npz(tmp_path)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, ok=np.ones(2), obj=np.array([{"x": 1}, None], dtype=object))
    plain_npy = tmp_path / "plain.npy"
    np.save(plain_npy, np.ones(3))
    flipped = bytearray(good)
    flipped[good.index(b"w.npy") + 200] ^= 0xFF  # inside w's data: the CRC check catches it
    f8 = {"descr": "<f8", "fortran_order": False}
    return [
        ("empty", b"", r"the file is empty"),
        ("garbage", b"not a zip at all" * 4, r"not a readable zip archive"),
        ("npy not npz", plain_npy.read_bytes(), r"not a readable zip archive"),
        ("cut in half", good[:len(good) // 2], r"not a readable zip archive"),
        ("cut by one byte", good[:-1], r"not a readable zip archive"),
        ("pickled objects", pickled.read_bytes(),
         r"array 'obj': holds pickled Python objects .* refusing to unpickle"),
        ("crc mismatch", bytes(flipped), r"array 'w' is corrupt: BadZipFile: Bad CRC-32"),
        ("not npy member", _npz_with_member(tmp_path, "readme.txt", {**f8, "shape": (1,)},
                                            bytes(8)), r"member 'readme.txt' is not a \.npy"),
        ("shape lies", _npz_with_member(tmp_path, "x.npy", {**f8, "shape": (10 ** 12,)},
                                        bytes(8)),
         r"array 'x': header says shape \(1000000000000,\) .* but the member holds 8 bytes"),
        ("bad npy magic", _npz_with_member(tmp_path, "x.npy", {**f8, "shape": (1,)},
                                           bytes(8)).replace(b"\x93NUMPY", b"\x93NUMPX"),
         r"array 'x' (is corrupt|is not a \.npy array)"),
        ("string dtype", _npz_with_member(tmp_path, "s.npy",
                                          {"descr": "<U3", "fortran_order": False,
                                           "shape": (1,)}, bytes(12)),
         r"array 's': unsupported dtype '<U3'"),
    ]


def test_corrupt_npz_raise_checkpoint_error(tmp_path):
    for case, content, message in _corrupt_npz_cases(tmp_path):
        path = tmp_path / "bad.npz"
        path.write_bytes(content)
        for reader in (load_npz, load_arrays):
            with pytest.raises(CheckpointError, match=message) as info:
                reader(path)
            assert str(path) in str(info.value), case


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncation_at_every_region_raises(tmp_path, fmt):
    path = tmp_path / f"t.{fmt}"
    _save(fmt, path, {"w": np.arange(40.0).reshape(5, 8), "b": np.ones(3, np.int16)})
    good = path.read_bytes()
    for cut in sorted({0, 1, 7, 8, 9, 20, len(good) // 2, len(good) - 9, len(good) - 1}):
        path.write_bytes(good[:cut])
        with pytest.raises(CheckpointError):
            _load(fmt, path)


def _fuzz_file(tmp_path_factory, fmt, arrays):
    path = tmp_path_factory.mktemp("fuzz") / f"f.{fmt}"
    _save(fmt, path, arrays)
    return path, path.read_bytes()


_FUZZ_ARRAYS = {"w": np.arange(12.0, dtype=np.float32).reshape(3, 4), "i": np.arange(3),
                "m": np.array([True, False]), "s": np.float64(1.5)}


@settings(max_examples=300, deadline=None)
@given(data=st.data(), fmt=st.sampled_from(FORMATS))
def test_fuzz_damaged_files_raise_only_checkpoint_error(tmp_path_factory, data, fmt):
    path, good = _fuzz_file(tmp_path_factory, fmt, _FUZZ_ARRAYS)
    content = bytearray(good)
    if fmt == "safetensors":
        (n,) = struct.unpack("<Q", good[:8])
        region = 8 + n  # the length and the JSON header
    else:
        region = len(good)
    for pos in data.draw(st.lists(st.integers(0, region - 1), max_size=4)):
        content[pos] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.one_of(st.none(), st.integers(0, len(content))))
    content = content[:cut] if cut is not None else content
    path.write_bytes(bytes(content))
    try:
        loaded = _load(fmt, path)
    except CheckpointError:
        return
    assert isinstance(loaded, dict)
    assert all(isinstance(v, np.ndarray) for v in loaded.values())


# ----------------------------------------------------------------------------- bad inputs

@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("arrays,error,message", [
    ({1: np.ones(2)}, TypeError, r"keys must be str, got int 1"),
    ({"a": [1.0, 2.0]}, TypeError, r"value for key 'a' is a list, not a numpy array"),
    ({"a": np.ones(1), "b": 3.0}, TypeError, r"value for key 'b' is a float"),
    ({"o": np.array([None])}, TypeError, r"array 'o' has dtype object, which would need pickle"),
    ({"s": np.array(["x"])}, TypeError, r"array 's' has unsupported dtype <U1"),
    ({"\udcff": np.ones(1)}, ValueError, r"cannot be encoded as UTF-8"),
    ([("a", np.ones(1))], TypeError, r"expected a dict of name -> numpy array, got list"),
])
def test_bad_inputs_to_save(tmp_path, fmt, arrays, error, message):
    path = tmp_path / f"x.{fmt}"
    with pytest.raises(error, match=message):
        _save(fmt, path, arrays)
    assert list(tmp_path.iterdir()) == []  # neither the target nor a temp file


def test_bad_inputs_specific_to_one_format(tmp_path):
    with pytest.raises(TypeError, match=r"array 'c' has unsupported dtype complex128"):
        save_safetensors(tmp_path / "x.safetensors", {"c": np.ones(1, complex)})
    with pytest.raises(ValueError, match=r"'__metadata__' is reserved"):
        save_safetensors(tmp_path / "x.safetensors", {"__metadata__": np.ones(1)})
    with pytest.raises(TypeError, match=r"metadata must map str -> str, got str 'k' -> int"):
        save_safetensors(tmp_path / "x.safetensors", {}, metadata={"k": 1})
    with pytest.raises(TypeError, match=r"metadata must be a dict"):
        save_safetensors(tmp_path / "x.safetensors", {}, metadata=["k"])
    with pytest.raises(ValueError, match=r"key 'a\\x00b' contains a NUL"):
        save_npz(tmp_path / "x.npz", {"a\0b": np.ones(1)})
    assert list(tmp_path.iterdir()) == []
