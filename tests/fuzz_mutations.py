"""The ways `loader_fuzz.py` breaks a file: bytes, JSON structure, zip and .npy internals,
checkpoint metadata, config semantics, file kinds and path traversal.

Every function takes a seeded `numpy.random.Generator` and a path, rewrites the file (or puts
something else in its place) and returns `(mutation name, must the loader refuse it)`.
"""
from __future__ import annotations

import io
import json
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

# JSON text that replaces a value: wrong types, extremes, non-standard literals, deep nesting.
NASTY = ["5", "-1", "0", "1e308", "-1e308", "1e12", "100000", "18446744073709551616", "1.5",
         '"abc"', '""', "[]", "{}", "null", "true", "false", "Infinity", "-Infinity", "NaN",
         '"' + "x" * 100_000 + '"', "[" * 50_000 + "]" * 50_000, '{"a": ' * 5000 + "1" +
         "}" * 5000, "[[1, 2], [3]]", '{"a": 1}', '"\\ud800"', "[1, 2, 3]"]
_SNIP = "\u0000SNIP\u0000"
_DUP = "\u0001DUP\u0001"


def _pick(rng: np.random.Generator, seq: list) -> Any:
    return seq[int(rng.integers(len(seq)))]


# ----------------------------------------------------------------------------- file kinds

def FILE_KINDS(rng: np.random.Generator, path: Path) -> str:  # noqa: N802 - a table of cases
    """Put something that is not a regular file where `path` was."""
    kinds = ["directory", "fifo", "dangling symlink", "symlink to a directory"]
    if os.path.exists("/dev/zero"):
        kinds.append("symlink to /dev/zero")
    kind = _pick(rng, kinds)
    path.unlink()
    if kind == "directory":
        path.mkdir()
        (path / "inside").write_text("x")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dangling symlink":
        path.symlink_to(path.parent / "nowhere")
    elif kind == "symlink to a directory":
        path.symlink_to(path.parent)
    else:
        path.symlink_to("/dev/zero")
    return f"file kind: {kind}"


# ----------------------------------------------------------------------------- bytes

def mutate_bytes(rng: np.random.Generator, path: Path, text: bool = False) -> tuple[str, bool]:
    data = bytearray(path.read_bytes())
    ops = ["flip", "truncate", "insert", "append", "empty", "garbage", "zero-run"]
    if text:
        ops += ["invalid utf-8", "invalid utf-8", "nul", "blank line", "duplicate line",
                "huge line", "crlf"]
    op = _pick(rng, ops)
    n = len(data)
    must = False
    if op == "flip" and n:
        for _ in range(int(rng.integers(1, 9))):
            data[int(rng.integers(n))] ^= int(rng.integers(1, 256))
    elif op == "truncate":
        data = data[:int(rng.integers(0, max(n, 1)))]
    elif op == "insert":
        at = int(rng.integers(0, n + 1))
        data[at:at] = rng.bytes(int(rng.integers(1, 64)))
    elif op == "append":
        data += rng.bytes(int(rng.integers(1, 64)))
    elif op == "empty":
        data, must = bytearray(), True
    elif op == "garbage":
        data = bytearray(rng.bytes(int(rng.integers(1, 4096))))
    elif op == "zero-run" and n:
        at = int(rng.integers(n))
        data[at:at + int(rng.integers(1, 64))] = b"\0" * len(data[at:at + 64][:64])
    elif op == "invalid utf-8":
        at = int(rng.integers(0, n + 1))
        data[at:at] = _pick(rng, [b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"])
        must = True
    elif op == "nul":
        at = int(rng.integers(0, n + 1))
        data[at:at] = b"\0"
    elif op == "blank line":
        lines = data.split(b"\n")
        lines.insert(int(rng.integers(0, len(lines))), b"")
        data = bytearray(b"\n".join(lines))
    elif op == "duplicate line":
        lines = data.split(b"\n")
        i = int(rng.integers(0, len(lines)))
        lines.insert(i, lines[i])
        data = bytearray(b"\n".join(lines))
    elif op == "huge line":
        data += b"x" * 2_000_000
    elif op == "crlf":
        data = bytearray(data.replace(b"\n", b"\r\n"))
    path.write_bytes(bytes(data))
    return f"bytes: {op}", must


# ----------------------------------------------------------------------------- JSON

def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


def _get(node: Any, path: tuple) -> Any:
    for p in path:
        node = node[p]
    return node


def json_mutation(rng: np.random.Generator, text: str) -> tuple[str, str, bool]:
    """(new text, mutation name, must fail) for one structural change of a JSON document."""
    try:
        doc = json.loads(text)
    except ValueError:
        return text + "}", "json: unparsable plus a brace", True
    paths = _paths(doc)
    path = paths[int(rng.integers(len(paths)))]
    op = _pick(rng, ["replace"] * 6 + ["delete", "duplicate", "deep", "top-level"])
    if op == "deep":
        return "[" * 100_000 + "]" * 100_000, "json: nested 100,000 deep", True
    if op == "top-level":
        snippet = _pick(rng, ['"text"', "5", "[]", "null"])
        return snippet, f"json: top level {snippet}", True
    if op in ("delete", "duplicate") and path and isinstance(_get(doc, path[:-1]), dict):
        parent, key = _get(doc, path[:-1]), path[-1]
        if op == "delete":
            del parent[key]
            return json.dumps(doc), f"json: delete {key!r}", False
        parent[_DUP] = _SNIP
        snippet = _pick(rng, NASTY[:19])
        out = json.dumps(doc).replace(json.dumps(_DUP), json.dumps(key), 1)
        return out.replace(json.dumps(_SNIP), snippet, 1), f"json: duplicate {key!r}", True
    snippet = _pick(rng, NASTY)
    if not path:                          # an object may be a valid (if empty) document
        return snippet, f"json: document replaced by {snippet[:20]}", not snippet.startswith("{")
    parent = _get(doc, path[:-1])
    parent[path[-1]] = _SNIP
    name = f"json: {'/'.join(map(str, path))[:60]} = {snippet[:20]}"
    must = snippet in ("Infinity", "-Infinity", "NaN") or snippet.startswith(("[[[", '{"a": {'))
    return json.dumps(doc).replace(json.dumps(_SNIP), snippet, 1), name, must


def mutate_json(rng: np.random.Generator, path: Path) -> tuple[str, bool]:
    text, name, must = json_mutation(rng, path.read_text(encoding="utf-8"))
    path.write_text(text, encoding="utf-8")
    return name, must


# (key, value, must a config loader refuse it, must a model loader refuse it)
_CONFIG_CASES = [
    ("num_hidden_layers", "100000", True, True), ("num_hidden_layers", "1000000000000", True, True),
    ("num_hidden_layers", "1", False, True), ("num_hidden_layers", "3", False, True),
    ("vocab_size", "100000000", True, True), ("vocab_size", "13", False, True),
    ("hidden_size", "65536", False, True), ("max_position_embeddings", "100000000", True, True),
    ("intermediate_size", "1000000", False, True),
    ("num_feedforward_networks", "100000", True, True),
    ("initializer_range", "Infinity", True, True), ("initializer_range", "NaN", True, True),
    ("layer_norm_eps", "Infinity", True, True), ("layer_norm_eps", "-1e-12", True, True),
    ("hidden_dropout_prob", "1.0", True, True), ("hidden_dropout_prob", "NaN", True, True),
    ("num_attention_heads", "3", True, True), ("pad_token_id", "1000000000", True, True),
    ("id2label", '{"a": "x"}', True, True), ("architectures", "5", True, True),
    ("architectures", '[5]', True, True), ("num_labels", "1000000000", True, True),
    ("true_hidden_size", "999", True, True), ("model_type", '"bert"', True, True),
    ("type_vocab_size", "100000000", True, True), ("embedding_size", "100000000", True, True),
    ("attention_mask_value", "Infinity", True, True), ("hidden_act", '"swish9"', True, True),
    ("torch_dtype", '"float16"', False, False), ("unknown_field", "[1, 2]", False, False),
]


def semantic_config(rng: np.random.Generator, path: Path, model: bool) -> tuple[str, bool]:
    """A config.json value that a careful loader refuses (or, for a few, accepts)."""
    text = path.read_text(encoding="utf-8")
    if rng.random() < 0.15:
        key = _pick(rng, ["num_hidden_layers", "vocab_size", "hidden_size", "initializer_range"])
        doc = json.loads(text)
        doc[_DUP] = _SNIP
        out = json.dumps(doc).replace(json.dumps(_DUP), json.dumps(key))
        path.write_text(out.replace(json.dumps(_SNIP), json.dumps(doc[key])), encoding="utf-8")
        return f"config: duplicate key {key!r}", True
    key, value, must_config, must_model = _CONFIG_CASES[int(rng.integers(len(_CONFIG_CASES)))]
    doc = json.loads(text)
    doc[key] = _SNIP
    path.write_text(json.dumps(doc).replace(json.dumps(_SNIP), value), encoding="utf-8")
    return f"config: {key} = {value}", must_model if model else must_config


# ----------------------------------------------------------------------------- zip and npy

def _zip_members(path: Path) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as zf:
        return [(i.filename, zf.read(i)) for i in zf.infolist()]


def build_zip(members: list[dict[str, Any]]) -> bytes:
    """A zip archive written by hand, so sizes, CRCs and methods can lie.

    Each member: name, data (the stored bytes), and optionally method (0 stored, 8 deflate,
    12 bzip2, 14 lzma), size (claimed uncompressed size), crc. Sizes over 4 GiB go into a
    zip64 extra field, as numpy's own files do.
    """
    out, central = io.BytesIO(), []
    for m in members:
        name = m["name"].encode("utf-8")
        data = m["data"]
        method = m.get("method", 0)
        size = m.get("size", len(data))
        crc = m.get("crc", zlib.crc32(data) & 0xFFFFFFFF)
        zip64 = size > 0xFFFFFFFF or len(data) > 0xFFFFFFFF
        extra = struct.pack("<HHQQ", 1, 16, size, len(data)) if zip64 else b""
        s32 = (0xFFFFFFFF, 0xFFFFFFFF) if zip64 else (len(data), size)
        offset = out.tell()
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 45 if zip64 else 20, 0, method, 0,
                              0x21, crc, s32[0], s32[1], len(name), len(extra)) + name + extra)
        out.write(data)
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45 if zip64 else 20,
                                   0, method, 0, 0x21, crc, s32[0], s32[1], len(name),
                                   len(extra), 0, 0, 0, 0, offset) + name + extra)
    start = out.tell()
    for c in central:
        out.write(c)
    size = out.tell() - start
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central), size,
                          start, 0))
    return out.getvalue()


def _npy(header: str, data: bytes = b"") -> bytes:
    raw = header.encode("latin1")
    raw += b" " * ((-(len(raw) + 11)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(raw)) + raw + data


def mutate_npz(rng: np.random.Generator, path: Path) -> tuple[str, bool]:
    """Break an .npz in its zip directory, its compression, or a member's .npy header."""
    members = [{"name": n, "data": d} for n, d in _zip_members(path)]
    m = members[int(rng.integers(len(members)))]
    op = _pick(rng, ["claims 1 TiB", "claims 3 GiB", "lzma garbage", "bzip2 garbage",
                     "deflate garbage", "header tokenize error", "header shape huge",
                     "header descr", "header not a dict", "bad crc", "duplicate member",
                     "non-npy member", "pickled object array", "header fortran", "header deep",
                     "claims less", "version 3"])
    if op.startswith("claims") and op != "claims less":
        count = (1 << 38) if "TiB" in op else (3 << 28)
        m["data"] = _npy(f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({count},), }}",
                         rng.bytes(64))
        m["size"] = len(m["data"]) - 64 + count * 4
    elif op == "claims less":
        m["size"] = max(0, len(m["data"]) - int(rng.integers(1, 16)))
    elif op.endswith("garbage"):
        m["method"] = {"lzma": 14, "bzip2": 12, "deflate": 8}[op.split()[0]]
        m["data"] = rng.bytes(int(rng.integers(16, 256)))
    elif op == "header tokenize error":
        m["data"] = _npy("{'descr': '''<f4, 'fortran_order': False, 'shape': (2,), }")
    elif op == "header shape huge":
        m["data"] = _npy("{'descr': '<f8', 'fortran_order': False, 'shape': "
                         "(10**12, 10**12), }".replace("10**12", str(10**12)), b"\0" * 8)
    elif op == "header descr":
        descr = _pick(rng, ["'<U5'", "'|V8'", "'|S3'", "'<M8[ns]'", "[('a', '<f4')]",
                            "'<f4' * 5", "'|O'", "5", "'<f1000000000000'"])
        m["data"] = _npy(f"{{'descr': {descr}, 'fortran_order': False, 'shape': (2,), }}",
                         b"\0" * 8)
    elif op == "header not a dict":
        m["data"] = _npy(_pick(rng, ["[1, 2]", "5", "{'descr': '<f4'}", "{1: 2, 3: 4, 5: 6}"]))
    elif op == "header fortran":
        m["data"] = _npy("{'descr': '<f4', 'fortran_order': 'yes', 'shape': (2,), }", b"\0" * 8)
    elif op == "header deep":
        m["data"] = _npy("{'descr': '<f4', 'fortran_order': False, 'shape': " + "(" * 3000 +
                         ")" * 3000 + ", }")
    elif op == "version 3":
        m["data"] = b"\x93NUMPY\x03\x00" + m["data"][8:]
    elif op == "bad crc":
        m["crc"] = (zlib.crc32(m["data"]) ^ 1) & 0xFFFFFFFF
    elif op == "duplicate member":
        members.append(dict(m))
    elif op == "non-npy member":
        members.append({"name": "notes.txt", "data": b"hello"})
    elif op == "pickled object array":
        buf = io.BytesIO()
        np.save(buf, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
        m["data"] = buf.getvalue()
    path.write_bytes(build_zip(members))
    return f"npz: {op}", op not in ("claims less",)


_SEED_ARRAYS: dict[str, tuple[bytes, dict[str, np.ndarray]]] = {}   # the unbroken checkpoint


def _meta_cases() -> list[tuple[str, Any]]:
    bad_gen = {"mobilebert.encoder.layer.0.attention.self.dropout": {"cpu": 5}}
    return [("config", 5), ("config", []), ("config", None), ("step", "abc"),
            ("step", float("inf")), ("step", -1), ("step", 10**30), ("step", True),
            ("step", 1.5), ("generators", bad_gen), ("generators", 5),
            ("generators", {"nope": {"numpy": {"bit_generator": "PCG64"}}}),
            ("generators", "GEN-SHAPE"), ("data", 5), ("data", {"epoch": [1]}),
            ("extra", []), ("format", "tinybert-training-checkpoint/0"), ("format", None)]


def mutate_npz_meta(rng: np.random.Generator, path: Path) -> tuple[str, bool]:
    """Break a training checkpoint's content: its meta JSON or its arrays."""
    cached = _SEED_ARRAYS.get(str(path.name))
    if cached is None or cached[0] != path.read_bytes():
        with np.load(path) as z:
            cached = _SEED_ARRAYS[str(path.name)] = (path.read_bytes(),
                                                     {k: z[k] for k in z.files})
    arrays = {k: v.copy() for k, v in cached[1].items()}
    meta_text = arrays["meta"].tobytes().decode("utf-8")
    meta = json.loads(meta_text)
    op = _pick(rng, ["meta value", "meta value", "meta json", "meta bytes", "meta missing",
                     "meta dtype", "array shape", "array dtype", "array nan", "array missing",
                     "array extra", "optim step", "optim shape"])
    keys = sorted(k for k in arrays if k != "meta")
    name, must = op, True
    if op == "meta value":
        key, value = _pick(rng, _meta_cases())
        if value == "GEN-SHAPE":
            gens = meta["generators"]
            mod = next(iter(gens))
            dev = next(iter(gens[mod]))
            state = gens[mod][dev]
            state["state"] = {"state": "abc", "inc": []}
            value = gens
        if key == "step" and rng.random() < 0.3:
            meta.pop("step")
            name = "meta: step missing"
        else:
            meta[key] = value
            name = f"meta: {key} = {json.dumps(value)[:40]}"
            # The data position is the caller's to check; a huge step is a valid integer.
            must = key != "data" and value != 10**30
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    elif op == "meta json":
        text, name, must = json_mutation(rng, meta_text)
        name = "meta " + name
        arrays["meta"] = np.frombuffer(text.encode("utf-8", "surrogatepass"), np.uint8)
    elif op == "meta bytes":
        arrays["meta"] = np.frombuffer(b"\xff\xfe" + meta_text.encode(), np.uint8)
    elif op == "meta missing":
        del arrays["meta"]
    elif op == "meta dtype":
        arrays["meta"] = arrays["meta"].astype(_pick(rng, [np.float32, np.int64])).reshape(-1, 1)
    elif op == "array shape":
        k = _pick(rng, keys)
        arrays[k] = np.zeros((3, 2), arrays[k].dtype)
        must = not k.startswith("data/")          # the data position is the caller's to check
        name = f"{op} {k}"
    elif op == "array dtype":
        k = _pick(rng, keys)
        dtype = _pick(rng, [np.complex64, np.int8, np.bool_, np.float16])
        arrays[k] = arrays[k].astype(dtype)
        must = k.startswith(("model/", "optim/")) and dtype != np.float16 and k != "optim/step"
        name = f"{op} {k} {np.dtype(dtype).name}"
    elif op == "array nan":
        k = _pick(rng, [k for k in keys if k.startswith("model/")])
        arrays[k] = arrays[k].copy()
        arrays[k].reshape(-1)[0] = _pick(rng, [np.nan, np.inf])
    elif op == "array missing":
        k = _pick(rng, keys)
        del arrays[k]
        must = k.startswith("model/") or k == "optim/step"   # a moment may be absent (frozen)
        name = f"{op} {k}"
    elif op == "array extra":
        arrays[_pick(rng, ["model/extra.weight", "optim/state.x.m", "surprise"])] = np.ones(2)
    elif op == "optim step":
        arrays["optim/step"] = _pick(rng, [np.array([1, 2]), np.array(np.nan), np.array("x")])
    elif op == "optim shape":
        k = _pick(rng, [k for k in keys if k.startswith("optim/state.")])
        arrays[k] = np.zeros(3, np.float32)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return f"checkpoint: {name}", must


def traversal(rng: np.random.Generator, index: Path, outside_src: Path) -> tuple[str, bool]:
    """Point a shard of the index outside the model directory (or at something odd)."""
    directory = index.parent
    outside = directory.parent / "outside.safetensors"
    outside.write_bytes((outside_src / "outside.safetensors").read_bytes())
    doc = json.loads(index.read_text())
    shard = sorted(set(doc["weight_map"].values()))[-1]
    op = _pick(rng, ["../", "absolute", "sub/../../", "fifo", "directory", "missing", "non-str",
                     "list", "empty name"])
    target: Any
    if op == "../":
        target = "../outside.safetensors"
    elif op == "absolute":
        target = str(outside)
    elif op == "sub/../../":
        (directory / "sub").mkdir()
        target = "sub/../../outside.safetensors"
    elif op == "fifo":
        os.mkfifo(directory / "pipe.safetensors")
        target = "pipe.safetensors"
    elif op == "directory":
        (directory / "dir.safetensors").mkdir()
        target = "dir.safetensors"
    elif op == "missing":
        target = "missing.safetensors"
    elif op == "non-str":
        target = _pick(rng, [5, None, [], {}])
    elif op == "empty name":
        target = ""
    else:
        doc["weight_map"] = list(doc["weight_map"].items())
        index.write_text(json.dumps(doc))
        return "index: weight_map is a list", True
    doc["weight_map"] = {k: (target if v == shard else v) for k, v in doc["weight_map"].items()}
    index.write_text(json.dumps(doc))
    return f"index: traversal {op}", True


def mutate_safetensors(rng: np.random.Generator, path: Path) -> tuple[str, bool]:
    """Break a safetensors file in its header: the JSON, a tensor's entry, the length field."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header, body = data[8:8 + n].decode("utf-8"), data[8 + n:]
    doc = json.loads(header)
    names = [k for k in doc if k != "__metadata__"]
    name = _pick(rng, names)
    op = _pick(rng, ["json", "json", "claims 1 TiB", "dtype", "offsets overlap", "offsets gap",
                     "length field", "metadata"])
    if op == "json":
        text, what, must = json_mutation(rng, header)
        header = text
    elif op == "claims 1 TiB":
        begin = doc[name]["data_offsets"][0]
        doc[name].update(shape=[1 << 18, 1 << 20], data_offsets=[begin, begin + (1 << 40)])
        header, what, must = json.dumps(doc), f"{name} claims 1 TiB", True
    elif op == "dtype":
        doc[name]["dtype"] = _pick(rng, ["F64", "I8", "BOOL", "F8_E4M3", "C64", 5])
        header, what, must = json.dumps(doc), f"{name} dtype {doc[name]['dtype']}", True
    elif op.startswith("offsets"):
        b, e = doc[name]["data_offsets"]
        shift = -4 if op.endswith("overlap") else 4
        doc[name]["data_offsets"] = [max(0, b + shift), max(0, e + shift)]
        header, what, must = json.dumps(doc), f"{name} {op}", b + shift >= 0
    elif op == "metadata":
        doc["__metadata__"] = _pick(rng, [{"format": 5}, [], "pt", {"a": {"b": "c"}}])
        header, what, must = json.dumps(doc), "__metadata__ of the wrong type", True
    else:
        raw = header.encode("utf-8")
        bad = _pick(rng, [0, 1, len(raw) + 1, 1 << 63, (1 << 64) - 1])
        path.write_bytes(struct.pack("<Q", bad) + raw + body)
        return f"safetensors: header length field {bad}", bad != len(raw)
    raw = header.encode("utf-8", "surrogatepass")
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)
    return f"safetensors: {what}", must
