"""The int8 GEMM: packing, the NumPy reference against an independent int64 product, and every
Numba code path this CPU runs (plus the portable one) against the reference, bit for bit.

Shapes are hypothesis-drawn (M from 1, K up to 4,096, odd N); values come from a seeded
generator in one of several fills (uniform, the extremes -128/127 and 0/255, the int16
saturation pattern of a naive vpmaddubsw). The avx2 path takes 7-bit activations by contract,
so it is fed [0, 127] and its refusal of larger ones is tested. The dequantized float32 output
is checked bit for bit against the reference and within float32 rounding of a float64 product.

Slow (`-m slow`): a subprocess that targets an AVX2-only CPU (NUMBA_CPU_FEATURES without AVX-512)
with a Numba cache written by a native run, and reads the generated assembly of every path.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import backends
from backends import numba_int8, numba_quantize, reference
from backends.int8 import MAX_K, PackedInt8Weights, pack_int8_weights, quantize_params

ROOT = Path(__file__).resolve().parents[2]
PATHS = numba_int8.available_paths()          # what this CPU runs, "portable" always included
ACT_MAX = {"avx2": 127}                        # the 7-bit contract of the vpmaddubsw path
FILLS = ("uniform", "extreme", "saturating", "zeros")


def expected(a: np.ndarray, w: np.ndarray, zp) -> np.ndarray:
    """(a - zp) @ w.T in int64, written without the kernels' column-sum form."""
    zp = np.asarray(zp, np.int64)
    centred = a.astype(np.int64) - (zp[:, None] if zp.ndim else zp)
    return centred @ w.astype(np.int64).T


def make_operands(seed: int, m: int, k: int, n: int, fill: str, act_max: int = 255):
    """uint8 activations (m, k) and int8 weights (n, k) for a fill pattern."""
    rng = np.random.default_rng(seed)
    if fill == "uniform":
        a = rng.integers(0, act_max + 1, (m, k), dtype=np.uint8)
        w = rng.integers(-128, 128, (n, k)).astype(np.int8)
    elif fill == "extreme":                    # only the end points, in random places
        a = np.where(rng.random((m, k)) < 0.5, 0, act_max).astype(np.uint8)
        w = np.where(rng.random((n, k)) < 0.5, -128, 127).astype(np.int8)
    elif fill == "saturating":                 # every adjacent pair at max * +-127: the int16
        a = np.full((m, k), act_max, np.uint8)  # sum 255 * 127 * 2 = 64770 that vpmaddubsw clips
        w = np.full((n, k), 127, np.int8)
        w[::2] = -128
    else:
        a, w = np.zeros((m, k), np.uint8), np.zeros((n, k), np.int8)
    return a, w


# --- packing -------------------------------------------------------------------------------------

@given(st.integers(1, 40), st.integers(1, 70), st.integers(0, 2**32 - 1))
@settings(max_examples=25)
def test_pack_round_trips_and_sums_channels(n: int, k: int, seed: int) -> None:
    w = np.random.default_rng(seed).integers(-128, 128, (n, k)).astype(np.int8)
    packed = pack_int8_weights(w)
    assert packed.data.dtype == np.int8 and packed.data.shape == (-(-n // 16), -(-k // 4), 16, 4)
    np.testing.assert_array_equal(packed.unpack(), w)
    sums = np.zeros(packed.data.shape[0] * 16, np.int64)
    sums[:n] = w.astype(np.int64).sum(axis=1)
    np.testing.assert_array_equal(packed.col_sums, sums)
    # One 64-byte row of a panel: 4 consecutive k of 16 consecutive channels.
    np.testing.assert_array_equal(packed.data[0, 0, :min(n, 16), :min(k, 4)],
                                  w[:16, :4])


@pytest.mark.parametrize("bad, message", [
    (np.zeros((3, 4), np.float32), "2-D int8"),
    (np.zeros(4, np.int8), "2-D int8"),
    (np.zeros((2, MAX_K + 1), np.int8), "in_features"),
])
def test_pack_rejects_bad_weights(bad: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pack_int8_weights(bad)


# --- the reference -------------------------------------------------------------------------------

@given(st.integers(1, 12), st.integers(1, 300), st.integers(1, 40), st.sampled_from(FILLS),
       st.integers(0, 255), st.integers(0, 2**32 - 1))
@settings(max_examples=30)
def test_reference_is_the_exact_product(m, k, n, fill, zp, seed) -> None:
    a, w = make_operands(seed, m, k, n, fill)
    got = reference.int8_matmul(a, pack_int8_weights(w), zp)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, expected(a, w, zp))


def test_reference_keeps_leading_axes_and_per_row_zero_points() -> None:
    a, w = make_operands(1, 6, 9, 5, "uniform")
    zp = np.arange(6) * 40
    got = reference.int8_matmul(a.reshape(2, 3, 9), pack_int8_weights(w), zp)
    assert got.shape == (2, 3, 5)
    np.testing.assert_array_equal(got.reshape(6, 5), expected(a, w, zp))


def test_reference_is_exact_at_the_largest_k() -> None:
    """255 * 128 * 2**16 is within int32 only because 2**16 is the largest K allowed."""
    a = np.full((1, MAX_K), 255, np.uint8)
    w = np.full((1, MAX_K), -128, np.int8)
    got = reference.int8_matmul(a, pack_int8_weights(w), 0)
    assert int(got[0, 0]) == -255 * 128 * MAX_K


@pytest.mark.parametrize("args, error, message", [
    (lambda a, w: (a.astype(np.int8), w), ValueError, "uint8"),
    (lambda a, w: (a, w.unpack()), TypeError, "pack_int8_weights"),
    (lambda a, w: (a[:, :-1], w), ValueError, "inner dimensions"),
    (lambda a, w: (a, w, 256), ValueError, r"\[0, 255\]"),
    (lambda a, w: (a, w, np.array([1, -1, 0])), ValueError, r"\[0, 255\]"),
    (lambda a, w: (a, w, np.zeros(2, np.int64)), ValueError, "per row"),
    (lambda a, w: (a, w, 0.5), ValueError, "integer"),
    (lambda a, w: (a, w, 0, 0.1), ValueError, "both"),
    (lambda a, w: (a, w, 0, None, None, np.zeros(4)), ValueError, "bias"),
    (lambda a, w: (a, w, 0, 0.1, np.ones(3)), ValueError, "w_scale"),
])
@pytest.mark.parametrize("kernel", [reference.int8_matmul, numba_int8.int8_matmul],
                         ids=["reference", "numba"])
def test_bad_arguments_are_one_line_errors(kernel, args, error, message) -> None:
    a, w = make_operands(0, 3, 8, 4, "uniform")
    with pytest.raises(error, match=message):
        kernel(*args(a, pack_int8_weights(w)))


# --- every path against the reference ------------------------------------------------------------

@st.composite
def gemm_cases(draw, max_m: int = 40, max_k: int = 4096, max_n: int = 71):
    m = draw(st.integers(1, max_m))
    k = draw(st.one_of(st.integers(1, 64), st.integers(1, max_k)))
    n = draw(st.one_of(st.integers(1, 33), st.integers(1, max_n // 2).map(lambda h: 2 * h + 1)))
    fill = draw(st.sampled_from(FILLS))
    per_row = draw(st.booleans())
    zp = draw(st.integers(0, 255))
    return m, k, n, fill, per_row, zp, draw(st.integers(0, 2**32 - 1))


@pytest.mark.parametrize("path", PATHS)
@given(case=gemm_cases())
@settings(max_examples=30)
def test_path_equals_reference_bit_for_bit(path: str, case) -> None:
    m, k, n, fill, per_row, zp, seed = case
    a, w = make_operands(seed, m, k, n, fill, ACT_MAX.get(path, 255))
    if per_row:
        zp = np.random.default_rng(seed).integers(0, 256, m)
    packed = pack_int8_weights(w)
    want = reference.int8_matmul(a, packed, zp)
    got = numba_int8.int8_matmul(a, packed, zp, path=path)
    assert got.dtype == np.int32 and got.shape == (m, n)
    np.testing.assert_array_equal(got, want, err_msg=f"{path}: m={m} k={k} n={n} {fill}")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("fill", ["extreme", "saturating"])
@pytest.mark.parametrize("m, k, n", [(1, 4096, 17), (13, 4096, 64), (7, 1, 1), (97, 515, 33)])
def test_path_at_the_extremes(path: str, fill: str, m: int, k: int, n: int) -> None:
    """Largest |accumulators| (K = 4096 at the end points), zero points 0 and 255, and tiles
    that are partial in rows (13, 97 rows), panels (17, 33 channels) and k groups (515)."""
    a, w = make_operands(m * k + n, m, k, n, fill, ACT_MAX.get(path, 255))
    packed = pack_int8_weights(w)
    for zp in (0, 255):
        np.testing.assert_array_equal(numba_int8.int8_matmul(a, packed, zp, path=path),
                                      expected(a, w, zp))


def test_avx2_path_refuses_8_bit_activations_and_auto_dispatch_stays_exact() -> None:
    """vpmaddubsw adds u8 x s8 pairs into a saturating int16: 255 * 127 * 2 = 64770 would clip
    to 32767. Forced, the avx2 path refuses such input; chosen automatically, it is never used
    for it (the portable path runs instead on an AVX2-only CPU)."""
    a, w = make_operands(3, 5, 64, 16, "saturating", 255)
    packed = pack_int8_weights(w)
    if "avx2" in PATHS:
        with pytest.raises(ValueError, match=r"\[0, 127\]"):
            numba_int8.int8_matmul(a, packed, path="avx2")
        a7, _ = make_operands(3, 5, 64, 16, "saturating", 127)
        np.testing.assert_array_equal(numba_int8.int8_matmul(a7, packed, path="avx2"),
                                      expected(a7, w, 0))
    assert numba_int8.choose_path(a) != "avx2"
    np.testing.assert_array_equal(numba_int8.int8_matmul(a, packed), expected(a, w, 0))


def test_unknown_or_missing_paths_are_errors() -> None:
    a, w = make_operands(0, 2, 8, 4, "uniform")
    with pytest.raises(ValueError, match="unknown path"):
        numba_int8.int8_matmul(a, pack_int8_weights(w), path="sse2")
    missing = [p for p in numba_int8.PATHS if p not in PATHS]
    for path in missing:
        with pytest.raises(ValueError, match="lacks"):
            numba_int8.int8_matmul(a, pack_int8_weights(w), path=path)


def test_path_order_and_activation_range() -> None:
    assert PATHS[-1] == "portable" and set(PATHS) <= set(numba_int8.PATHS)
    assert list(PATHS) == [p for p in numba_int8.PATHS if p in PATHS]
    assert numba_int8.activation_max() == (127 if PATHS[0] == "avx2" else 255)


def test_backend_table_has_the_override() -> None:
    from backends.numba_backend import int8_matmul
    assert backends.get_backend("numba").kernel("int8_matmul") is int8_matmul
    assert backends.get_backend("numba").kernel("quantize_u8") is numba_quantize.quantize_u8
    assert backends.get_backend("numpy").kernel("int8_matmul") is reference.int8_matmul


# --- the dequantized float32 result --------------------------------------------------------------

@pytest.mark.parametrize("path", ["reference", *PATHS])
@given(case=gemm_cases(max_m=20, max_k=1024, max_n=41), per_row_scale=st.booleans(),
       with_bias=st.booleans())
@settings(max_examples=15)
def test_dequantized_result(path: str, case, per_row_scale: bool, with_bias: bool) -> None:
    """y = float32(acc) * (a_scale * w_scale[n]) + bias[n]: the same bits on every path as the
    reference's float32 operations, and within float32 rounding of the float64 value."""
    m, k, n, fill, _, zp, seed = case
    rng = np.random.default_rng(seed)
    a, w = make_operands(seed, m, k, n, fill, ACT_MAX.get(path, 255))
    a_scale = (rng.random(m) + 0.5).astype(np.float32) / 50 if per_row_scale else 0.023
    w_scale = (rng.random(n) + 0.5).astype(np.float32) / 100
    bias = rng.standard_normal(n).astype(np.float32) if with_bias else None
    packed = pack_int8_weights(w)
    if path == "reference":
        got = reference.int8_matmul(a, packed, zp, a_scale, w_scale, bias)
    else:
        got = numba_int8.int8_matmul(a, packed, zp, a_scale, w_scale, bias, path=path)
        np.testing.assert_array_equal(
            got, reference.int8_matmul(a, packed, zp, a_scale, w_scale, bias))
    assert got.dtype == np.float32 and got.shape == (m, n)
    acc = expected(a, w, zp).astype(np.float64)
    a_s = np.broadcast_to(np.asarray(a_scale, np.float32).astype(np.float64), (m,))[:, None]
    scaled = acc * a_s * w_scale.astype(np.float64)
    want = scaled + (bias.astype(np.float64) if with_bias else 0.0)
    # Four float32 roundings: acc to float32, a_scale * w_scale, the product, the bias add.
    eps = np.finfo(np.float32).eps
    tol = 2 * eps * (2 * np.abs(scaled) + np.abs(want)) + np.finfo(np.float32).tiny
    assert np.all(np.abs(got - want) <= tol), f"{path}: max error {np.abs(got - want).max()}"


# --- dynamic activation quantization ------------------------------------------------------------

@given(st.integers(1, 9), st.integers(1, 700), st.sampled_from([255, 127]), st.booleans(),
       st.floats(1e-3, 1e4), st.integers(0, 2**32 - 1))
@settings(max_examples=30)
def test_quantize_u8_round_trips_within_half_a_step(m, k, qmax, per_row, spread, seed) -> None:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((m, k)) * spread + rng.normal() * spread).astype(np.float32)
    x[0, 0] = 0.0
    codes, scale, zp = reference.quantize_u8(x, qmax, per_row)
    got = numba_quantize.quantize_u8(x, qmax, per_row)
    for mine, theirs in zip(got, (codes, scale, zp)):
        np.testing.assert_array_equal(mine, theirs)
        assert np.asarray(mine).dtype == np.asarray(theirs).dtype
    assert codes.dtype == np.uint8 and codes.max() <= qmax
    s = scale[:, None] if per_row else scale
    z = zp[:, None] if per_row else zp
    assert codes[0, 0] == (zp[0] if per_row else zp)            # 0.0 is exactly a code
    back = (codes.astype(np.float64) - z) * s
    assert np.all(np.abs(back - x) <= 0.5 * s * (1 + 1e-5) + 1e-30)


def test_quantize_params_per_tensor_equals_per_row() -> None:
    """The per-tensor shortcut on scalars gives the bits of the per-row array code."""
    rng = np.random.default_rng(5)
    lo = np.concatenate([-np.exp(rng.normal(0, 4, 300)), [0.0, 0.0, 3.0]]).astype(np.float32)
    hi = np.concatenate([np.exp(rng.normal(0, 4, 300)), [0.0, 2.5, 7.0]]).astype(np.float32)
    for qmax in (255, 127, 1):
        scales, zps = quantize_params(lo, hi, qmax)
        for i in range(lo.shape[0]):
            scale, zp = quantize_params(lo[i], hi[i], qmax)
            assert scale.dtype == np.float32 and zp.dtype == np.int32
            assert (scale, zp) == (scales[i], zps[i]), (qmax, lo[i], hi[i])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("kernel", [reference.quantize_u8, numba_quantize.quantize_u8],
                         ids=["reference", "numba"])
def test_quantize_u8_rejects_non_finite_input(kernel, bad) -> None:
    x = np.ones((3, 40), np.float32)
    x[2, 17] = bad
    with pytest.raises(ValueError, match="inf or nan"):
        kernel(x)


# --- static (calibrated) activation quantization -------------------------------------------------

@given(st.integers(1, 9), st.integers(1, 300), st.sampled_from([255, 127]),
       st.floats(1e-3, 1e4), st.floats(0.2, 3.0), st.integers(0, 2**32 - 1))
@settings(max_examples=30)
def test_quantize_u8_static(m, k, qmax, spread, width, seed) -> None:
    """The fixed range's codes: equal on both backends; equal to the dynamic per-tensor codes
    when the range is x's own; within half a step inside the range; clipped outside it."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((m, k)) * spread).astype(np.float32)
    own = reference.quantize_u8(x, qmax, False)
    for kernel in (reference.quantize_u8_static, numba_quantize.quantize_u8_static):
        got = kernel(x, float(x.min()), float(x.max()), qmax)
        for mine, theirs in zip(got, own):
            np.testing.assert_array_equal(mine, theirs)
    lo, hi = -width * spread, 0.5 * width * spread
    codes, scale, zp = reference.quantize_u8_static(x, lo, hi, qmax)
    np.testing.assert_array_equal(numba_quantize.quantize_u8_static(x, lo, hi, qmax)[0], codes)
    back = (codes.astype(np.float64) - zp) * scale
    inside = (x >= lo) & (x <= hi)
    assert np.all(np.abs(back - x)[inside] <= 0.5 * scale * (1 + 1e-5) + 1e-30)
    assert np.all(codes[x > hi + scale] == qmax) and np.all(codes[x < lo - scale] == 0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("kernel", [reference.quantize_u8_static,
                                    numba_quantize.quantize_u8_static], ids=["reference", "numba"])
def test_quantize_u8_static_rejects_non_finite_input(kernel, bad) -> None:
    x = np.ones((3, 40), np.float32)
    x[1, 5] = bad
    with pytest.raises(ValueError, match="inf or nan"):
        kernel(x, -1.0, 1.0, 255)


def test_qmax_none_is_the_backends_choice() -> None:
    """None: all 8 bits for the reference's exact GEMM; the Numba GEMM's own preference."""
    x = np.linspace(-3, 5, 600, dtype=np.float32).reshape(6, 100)
    assert reference.quantize_u8(x)[0].max() == 255
    assert reference.quantize_u8_static(x, -3.0, 5.0)[0].max() == 255
    top = numba_int8.activation_max()
    assert numba_quantize.quantize_u8(x)[0].max() == top
    assert numba_quantize.quantize_u8_static(x, -3.0, 5.0)[0].max() == top


# --- an AVX2-only target, and the instructions each path compiles to (slow: fresh compiles) ------

_PROBE = textwrap.dedent("""
    import json, sys
    import numpy as np
    import backends
    backends.get_backend("numba")
    from backends import numba_int8
    from backends.int8 import pack_int8_weights
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (37, 515), dtype=np.uint8)
    w = rng.integers(-128, 128, (45, 515)).astype(np.int8)
    packed = pack_int8_weights(w)
    want = (a.astype(np.int64) - 9) @ w.astype(np.int64).T
    report = {"paths": list(numba_int8.available_paths()), "exact": {}, "asm": {}}
    for path in numba_int8.available_paths():
        x = a // 2 if path == "avx2" else a
        want_p = (x.astype(np.int64) - 9) @ w.astype(np.int64).T
        got = numba_int8.int8_matmul(x, packed, 9, path=path)
        report["exact"][path] = bool((got == want_p).all())
        asm = "\\n".join(numba_int8._DRIVERS[path].inspect_asm().values())
        report["asm"][path] = {word: word in asm for word in
                               ("vpdpbusd", "vpmaddubsw", "zmm", "ymm16", "{vex}")}
        report["asm"][path]["lines"] = asm.count("\\n")   # 1 when loaded from a cache
    report["auto_exact"] = bool((numba_int8.int8_matmul(a, packed, 9) == want).all())
    try:
        numba_int8.int8_matmul(a, packed, path="avx512_vnni")
        report["forced_vnni"] = "ran"
    except ValueError as e:
        report["forced_vnni"] = str(e)
    print(json.dumps(report))
""")


def _probe(env: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_avx2_only_target_never_compiles_avx512(tmp_path: Path) -> None:
    """A native run fills a Numba cache; a run targeting the same CPU without AVX-512 and VNNI
    (as a Zen 3 is) then shares that cache directory: it must not load the native code, must
    offer only avx2 and portable, stay exact, refuse a forced VNNI path, and its avx2 code must
    use no AVX-512 register."""
    import llvmlite.binding as ll
    native = _probe({"NUMBA_CACHE_DIR": str(tmp_path / "cache")})
    for path, exact in native["exact"].items():
        assert exact, path
    assert native["auto_exact"]
    if "avx512_vnni" in native["paths"]:
        assert native["asm"]["avx512_vnni"]["vpdpbusd"] and native["asm"]["avx512_vnni"]["zmm"]
        assert native["asm"]["avx_vnni"]["vpdpbusd"]
    if "avx2" in native["paths"]:
        assert native["asm"]["avx2"]["vpmaddubsw"]
    if "avx2" not in native["paths"]:
        pytest.skip("this CPU has no AVX2 to emulate an AVX2-only machine with")
    features = ll.get_host_cpu_features()
    for name in list(features):
        if name.startswith(("avx512", "avxvnni", "amx", "avx10")):
            features[name] = False
    avx2_only = _probe({"NUMBA_CACHE_DIR": str(tmp_path / "cache"), "NUMBA_CPU_NAME": "znver3",
                        "NUMBA_CPU_FEATURES": features.flatten()})
    assert avx2_only["paths"] == ["avx2", "portable"]
    assert all(avx2_only["exact"].values()) and avx2_only["auto_exact"]
    assert "lacks" in avx2_only["forced_vnni"]
    assert avx2_only["asm"]["avx2"]["vpmaddubsw"]
    for path in avx2_only["paths"]:
        assert avx2_only["asm"][path]["lines"] > 100, f"{path}: compiled code was not inspected"
        assert not avx2_only["asm"][path]["zmm"] and not avx2_only["asm"][path]["ymm16"], path


def test_packed_weights_are_a_plain_named_tuple() -> None:
    """The quantization layer stores the packed weights' fields; nothing hides in them."""
    packed = pack_int8_weights(np.ones((3, 5), np.int8))
    assert isinstance(packed, PackedInt8Weights) and packed.shape == (3, 5)
    assert packed._fields == ("data", "col_sums", "out_features", "in_features")


def test_fused_per_row_params_equal_quantize_params() -> None:
    """The per-row kernel computes scale and zero point itself (`numba_quantize._params`): the
    bits of `quantize_params` for ranges across the float32 range (tiny, huge, one-signed,
    constant, zero and -0.0 rows), and enough rows to run on every thread."""
    rng = np.random.default_rng(11)
    n = 3000
    lo = -np.exp(rng.normal(0, 12, n)).astype(np.float32)
    hi = np.exp(rng.normal(0, 12, n)).astype(np.float32)
    lo[::7], hi[::11] = -lo[::7], -hi[::11]                     # rows of one sign
    lo[::13] = hi[::13]                                         # constant rows
    lo[5] = hi[5] = 0.0
    lo[6] = hi[6] = -0.0
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    x = np.linspace(lo, hi, 64, axis=1, dtype=np.float32)       # each row spans [lo, hi]
    x[:, 0], x[:, -1] = lo, hi
    for qmax in (255, 127):
        codes, scale, zp = numba_quantize.quantize_u8(x, qmax, per_row=True)
        want_scale, want_zp = quantize_params(lo, hi, qmax)
        np.testing.assert_array_equal(scale, want_scale)
        np.testing.assert_array_equal(zp, want_zp)
        np.testing.assert_array_equal(codes, reference.quantize_u8(x, qmax, per_row=True)[0])


@pytest.mark.parametrize("qmax", [0, 256])
@pytest.mark.parametrize("per_row", [False, True])
@pytest.mark.parametrize("kernel", [reference.quantize_u8, numba_quantize.quantize_u8],
                         ids=["reference", "numba"])
def test_quantize_u8_rejects_a_qmax_outside_uint8(kernel, per_row, qmax) -> None:
    with pytest.raises(ValueError, match=r"qmax must lie in \[1, 255\], got " + str(qmax)):
        kernel(np.ones((3, 40), np.float32), qmax, per_row)
