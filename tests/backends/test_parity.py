"""Backend parity: every kernel in `backends.reference.KERNELS`, on every backend, in float32 and
float64, against the NumPy reference, under one tolerance table; then the ops built on them
(forward and backward through Tensors) on every backend against the numpy backend.

Inputs come from BUILDERS, a table of input builders keyed by kernel name. Adding a kernel to
the reference adds its parity tests here automatically, and fails them until a builder says what
to feed it. Cases cover -inf masks and fully masked rows, ignore_index rows, logits of 1e4,
non-contiguous (transposed) views, odd sizes (1 row, 1 column) and MobileBERT shapes at a
reduced batch. The harness also checks that no kernel writes into its inputs (the optimizer
updates excepted: they must update w, m and v in place exactly as the reference does).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pytest

import autograd.functional as F
import backends
from autograd.tensor import Tensor
from backends import reference

# One tolerance table: |got - want| <= atol + rtol * |want|, element-wise, nan where nan.
# float32: a few ulp of the output, plus what float32 summation order changes in row and
# column sums (the overrides sum in float64; NumPy sums float32 pairwise or row by row).
TOLERANCE = {np.dtype(np.float32): (1e-5, 1e-6), np.dtype(np.float64): (1e-12, 1e-12)}
# Where the float32 reference is itself the less accurate side, these outputs are compared
# norm-wise instead: atol = rtol * max|reference|. Each checked against a float64 computation.
NORMWISE_FLOAT32 = {
    # Column sums over B*T rows: NumPy adds the float32 rows one after another (error ~ rows *
    # eps of the largest sum), the overrides add in float64. At (2,128,512) the reference is
    # ~5e-7 of max|sum| from float64, Numba 5e-8; near-zero sums then differ by far more than
    # rtol of themselves.
    "layer_norm_bwd": (1, 2), "no_norm_bwd": (1, 2),
    # The tanh form's 0.5 * (1 + tanh(u)) cancels for x < -3 (absolute error ~1e-6 * |gy| in the
    # reference); Numba computes the same derivative as a sigmoid, without the cancellation.
    "gelu_bwd": (0,),
}
DTYPES = [np.float32, np.float64]
NEG_INF = -np.inf


class Case(NamedTuple):
    label: str
    args: tuple
    in_place: tuple = ()          # indices of args the kernel updates in place (optimizers)


class Seed(NamedTuple):
    """Stands for `backend.rng(seed)` in a kernel's arguments (dropout_mask)."""
    seed: int


# --- input builders ------------------------------------------------------------------------------

def _transposed(a: np.ndarray) -> np.ndarray:
    """A copy of `a` (same values and shape) laid out as a non-contiguous, transposed view."""
    return np.swapaxes(a, -1, -2).copy().swapaxes(-1, -2)


def _normal(rng, dt, *shape, scale=1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(dt)


def _padding_mask(dt, batch: int, t: int, pad: int) -> np.ndarray:
    mask = np.zeros((batch, 1, 1, t), dt)
    mask[..., t - pad:] = NEG_INF
    return mask


def softmax_cases(rng, dt) -> list[Case]:
    x = _normal(rng, dt, 2, 3, 5, 7)
    mask = _padding_mask(dt, 2, 7, 3)
    mask[0] = NEG_INF                                   # batch 0: every row fully masked
    x_inf = x.copy()
    x_inf[0, 0, 0, 2:5] = NEG_INF
    x_inf[1, 2, 4, :] = NEG_INF                         # a fully -inf row in x itself
    scores = _normal(rng, dt, 2, 4, 128, 128, scale=3.0)
    return [
        Case("(2,3,5,7) scale 0.5, (2,1,1,7) mask with -inf, batch 0 fully masked",
             (x, 0.5, mask)),
        Case("no mask", (x, 1.0, None)),
        Case("logits of 1e4", (x * dt(1e4), 1.0, None)),
        Case("-inf entries and a fully -inf row in x", (x_inf, 1.0, None)),
        Case("mask of x's shape", (x, 2.0, np.where(x > 1, NEG_INF, 0.0).astype(dt))),
        Case("(2,3,5,1) mask", (x, 1.0, np.where(x[..., :1] > 0, -1e4, 0.0).astype(dt))),
        Case("1-d float64 mask", (x, 1.0, np.array([0, 0, NEG_INF, 0, -3.5, 0, 0]))),
        Case("transposed view", (_transposed(x), 0.25, mask)),
        Case("1 row, 1 column", (_normal(rng, dt, 1, 1), 1.0, None)),
        Case("1 row, 1 column, masked", (_normal(rng, dt, 1, 1), 1.0, np.full((1, 1), NEG_INF))),
        Case("1 row", (_normal(rng, dt, 1, 9), 1.0, None)),
        Case("1 column", (_normal(rng, dt, 9, 1), 3.0, None)),
        Case("MobileBERT scores (2,4,128,128), (2,1,1,128) mask",
             (scores, 1 / math.sqrt(32), _padding_mask(dt, 2, 128, 28))),
    ]


def softmax_bwd_cases(rng, dt) -> list[Case]:
    out = []
    for case in softmax_cases(rng, dt):
        x, scale, mask = case.args
        y = reference.softmax_fwd(x, scale, mask)
        gy = _normal(rng, dt, *y.shape)
        out.append(Case(case.label, (y, gy, scale)))
    out.append(Case("transposed gradient", (out[0].args[0], _transposed(out[0].args[1]), 0.5)))
    return out


def log_softmax_cases(rng, dt) -> list[Case]:
    x = _normal(rng, dt, 5, 7)
    x_inf = x.copy()
    x_inf[1, 3:] = NEG_INF
    x_inf[2] = NEG_INF                                  # a fully -inf row gives nan in both
    return [Case("(5,7)", (x,)), Case("logits of 1e4", (x * dt(1e4),)),
            Case("-inf entries and a fully -inf row", (x_inf,)),
            Case("transposed view", (_transposed(x),)),
            Case("1 row, 1 column", (_normal(rng, dt, 1, 1),)),
            Case("1 column", (_normal(rng, dt, 9, 1),)),
            Case("(2,3,4,5)", (_normal(rng, dt, 2, 3, 4, 5),)),
            Case("vocabulary rows (40,30522)", (_normal(rng, dt, 40, 30522, scale=2.0),))]


def log_softmax_bwd_cases(rng, dt) -> list[Case]:
    out = []
    for case in log_softmax_cases(rng, dt):
        y = reference.log_softmax_fwd(case.args[0])
        if not np.isnan(y).any():
            out.append(Case(case.label, (y, _normal(rng, dt, *y.shape))))
    return out + [Case("transposed gradient", (out[0].args[0], _transposed(out[0].args[1])))]


def cross_entropy_cases(rng, dt) -> list[Case]:
    logits = _normal(rng, dt, 6, 11, scale=3.0)
    target = rng.integers(0, 11, 6)
    target[2] = -100
    custom = rng.integers(0, 11, 6)
    custom[[1, 4]] = 3
    vocab = _normal(rng, dt, 64, 30522, scale=2.0)
    vocab_target = rng.integers(0, 30522, 64)
    vocab_target[rng.random(64) < 0.85] = -100          # MLM on all positions: 85% ignored
    return [
        Case("(6,11), one ignored row", (logits, target, -100)),
        Case("every row ignored", (logits, np.full(6, -100), -100)),
        Case("ignore_index=3", (logits, custom, 3)),
        Case("int32 targets", (logits, target.astype(np.int32), -100)),
        Case("logits of 1e4", (logits * dt(1e4), target, -100)),
        Case("transposed view", (_transposed(logits), target, -100)),
        Case("1 row, 1 column", (_normal(rng, dt, 1, 1), np.zeros(1, np.int64), -100)),
        Case("a negative target wraps like NumPy indexing",
             (logits, np.where(target == -100, -100, target - 11), -100)),
        Case("vocabulary rows (40,30522)",
             (_normal(rng, dt, 40, 30522, scale=2.0), rng.integers(0, 30522, 40), -100)),
        Case("vocabulary rows (64,30522), 85% ignored", (vocab, vocab_target, -100)),
    ]


def cross_entropy_bwd_cases(rng, dt) -> list[Case]:
    out = []
    for case in cross_entropy_cases(rng, dt):
        logits, target, ignore = case.args
        _, lse = reference.cross_entropy_fwd(logits, target, ignore)
        g_rows = _normal(rng, dt, logits.shape[0])
        out.append(Case(case.label, (logits, lse, target, ignore, g_rows)))
    logits, lse, target, ignore, _ = out[0].args
    out.append(Case("broadcast (stride 0) row gradient",
                    (logits, lse, target, ignore, np.broadcast_to(dt(0.25), target.shape))))
    return out


def layer_norm_cases(rng, dt) -> list[Case]:
    x = _normal(rng, dt, 2, 3, 8, scale=2.0) + dt(1.0)
    gamma, beta = _normal(rng, dt, 8), _normal(rng, dt, 8)
    constant = np.repeat(_normal(rng, dt, 4, 1), 6, axis=1)      # zero variance: rstd = eps**-.5
    cases = [Case("(2,3,8)", (x, gamma, beta, 1e-12)),
             Case("no gamma, no beta", (x, None, None, 1e-12)),
             Case("gamma only, eps 1e-5", (x, gamma, None, 1e-5)),
             Case("constant rows", (constant, gamma[:6], beta[:6], 1e-5)),
             Case("values of 1e4", (x * dt(1e4), gamma, beta, 1e-12)),
             Case("transposed view", (_transposed(x), gamma, beta, 1e-12)),
             Case("1 row, 1 column", (_normal(rng, dt, 1, 1), gamma[:1], beta[:1], 1e-12))]
    for width in (512, 128):
        cases.append(Case(f"MobileBERT (2,128,{width})",
                          (_normal(rng, dt, 2, 128, width), _normal(rng, dt, width),
                           _normal(rng, dt, width), 1e-12)))
    return cases


def layer_norm_bwd_cases(rng, dt) -> list[Case]:
    out = []
    for case in layer_norm_cases(rng, dt):
        x, gamma, beta, eps = case.args
        _, mean, rstd = reference.layer_norm_fwd(x, gamma, beta, eps)
        out.append(Case(case.label, (x, gamma, mean, rstd, _normal(rng, dt, *x.shape))))
    x, gamma, mean, rstd, gy = out[0].args
    return out + [Case("transposed gradient", (x, gamma, mean, rstd, _transposed(gy)))]


def no_norm_cases(rng, dt) -> list[Case]:
    x, res = _normal(rng, dt, 2, 3, 8), _normal(rng, dt, 2, 3, 8)
    gamma, beta = _normal(rng, dt, 8), _normal(rng, dt, 8)
    return [Case("(2,3,8) with residual", (x, gamma, beta, res)),
            Case("no residual", (x, gamma, beta, None)),
            Case("transposed views", (_transposed(x), gamma, beta, _transposed(res))),
            Case("1 row, 1 column", (_normal(rng, dt, 1, 1), gamma[:1], beta[:1],
                                     _normal(rng, dt, 1, 1))),
            Case("MobileBERT (2,128,512)", (_normal(rng, dt, 2, 128, 512), _normal(rng, dt, 512),
                                            _normal(rng, dt, 512), _normal(rng, dt, 2, 128, 512)))]


def no_norm_bwd_cases(rng, dt) -> list[Case]:
    return [Case(c.label, (c.args[0], c.args[3], c.args[1], _normal(rng, dt, *c.args[0].shape)))
            for c in no_norm_cases(rng, dt)]


def _activation_inputs(rng, dt) -> list[tuple[str, np.ndarray]]:
    edges = np.array([0.0, -0.0, 1e-30, -1e-30, 0.5, -0.84375, 1.25, -3.0, 5.9, -6.1, 30.0,
                      -30.0], dt)
    x = _normal(rng, dt, 4, 50, scale=4.0)
    return [("edge values", edges), ("(4,50) in about [-12, 12]", x),
            ("transposed view", _transposed(x)), ("1 element", _normal(rng, dt, 1, 1)),
            ("MobileBERT (2,128,512)", _normal(rng, dt, 2, 128, 512, scale=3.0))]


def gelu_cases(rng, dt) -> list[Case]:
    return [Case(f"{label}, {'tanh' if a else 'erf'}", (x, a))
            for label, x in _activation_inputs(rng, dt) for a in (False, True)]


def gelu_bwd_cases(rng, dt) -> list[Case]:
    return [Case(f"{label}, {'tanh' if a else 'erf'}", (x, _normal(rng, dt, *x.shape), a))
            for label, x in _activation_inputs(rng, dt) for a in (False, True)]


def relu_cases(rng, dt) -> list[Case]:
    special = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 2.0, -2.0], dt)
    return [Case(label, (x,)) for label, x in _activation_inputs(rng, dt)] + [
        Case("nan and infinities", (special,))]


def relu_bwd_cases(rng, dt) -> list[Case]:
    return [Case(c.label, (reference.relu_fwd(c.args[0]), _normal(rng, dt, *c.args[0].shape)))
            for c in relu_cases(rng, dt)]


def embedding_bwd_cases(rng, dt) -> list[Case]:
    ids = rng.integers(0, 9, (2, 5))
    ids[0, :3] = 4                                       # repeated ids accumulate
    gy = _normal(rng, dt, 2, 5, 6)
    return [Case("(2,5) ids into (9,6)", (ids, gy, 9)),
            Case("int32 ids", (ids.astype(np.int32), gy, 9)),
            Case("transposed gradient", (ids, _transposed(gy), 9)),
            Case("one id, width 1", (np.array([3]), _normal(rng, dt, 1, 1), 5)),
            Case("wide rows", (ids, _normal(rng, dt, 2, 5, 77), 9)),
            Case("MobileBERT ids (2,128) into (1000,128)",
                 (rng.integers(0, 1000, (2, 128)), _normal(rng, dt, 2, 128, 128), 1000))]


def dropout_cases(rng, dt) -> list[Case]:
    return [Case("(3,5) p=0.1", (Seed(0), (3, 5), 0.1, dt)),
            Case("(2,128,64) p=0.5", (Seed(1), (2, 128, 64), 0.5, dt))]


def _optimizer_cases(rng, dt, lamb: bool) -> list[Case]:
    def state(*shape):
        return (_normal(rng, dt, *shape, scale=0.05), _normal(rng, dt, *shape, scale=1e-2),
                _normal(rng, dt, *shape, scale=1e-3), np.abs(_normal(rng, dt, *shape, scale=1e-4)))
    hyper = (1e-3, 0.9, 0.999, 1e-6)
    w, g, m, v = state(50, 30)
    cases = [
        Case("(50,30), weight decay", (w, g, m, v, *hyper, 0.01, 1.0, 1.0)),
        Case("bias corrected, no weight decay", (w, g, m, v, *hyper, 0.0, 0.1, 0.001)),
        Case("transposed gradient", (w, _transposed(g), m, v, *hyper, 0.01, 1.0, 1.0)),
        Case("w, m, v transposed views, updated through the view",
             (_transposed(w), g, _transposed(m), _transposed(v), *hyper, 0.01, 1.0, 1.0)),
        Case("1 element", (*state(1), *hyper, 0.01, 1.0, 1.0)),
        Case("MobileBERT embedding (1000,128)", (*state(1000, 128), *hyper, 0.01, 1.0, 1.0)),
        Case("MobileBERT (512,512)", (*state(512, 512), *hyper, 0.01, 0.5, 0.25)),
    ]
    if lamb:
        cases += [Case("zero weights: trust ratio 1", (np.zeros_like(w), g, m, v, *hyper, 0.0)),
                  Case("adapt=False", (w, g, m, v, *hyper, 0.01, 1.0, 1.0, False))]
    return [Case(c.label, c.args, in_place=(0, 2, 3)) for c in cases]


def int8_matmul_cases(rng, dt) -> list[Case]:
    """uint8 activations x packed int8 weights (the float dtype only picks the output: int32
    for float64's run, the dequantized float32 for float32's). The full matrix of paths,
    shapes and extreme values is in tests/backends/test_int8_matmul.py."""
    from backends.int8 import pack_int8_weights

    def weights(n, k):
        return pack_int8_weights(rng.integers(-128, 128, (n, k)).astype(np.int8))

    a = rng.integers(0, 256, (2, 7, 33), dtype=np.uint8)
    w, w_odd = weights(70, 33), weights(5, 3)
    a_odd = rng.integers(0, 256, (1, 3), dtype=np.uint8)
    if dt == np.float64:
        return [Case("(2,7,33) x (70,33), zero point 7", (a, w, 7)),
                Case("1 row, K=3, N=5, per-row zero point", (a_odd, w_odd, np.array([255]))),
                Case("all 255 x all -128", (np.full((3, 33), 255, np.uint8),
                                             pack_int8_weights(np.full((17, 33), -128, np.int8)),
                                             0))]
    w_scale = rng.random(70).astype(np.float32) / 100
    bias = rng.standard_normal(70).astype(np.float32)
    return [Case("(2,7,33) x (70,33) dequantized with bias", (a, w, 128, 0.02, w_scale, bias)),
            Case("per-row activation scales, no bias",
                 (a, w, 3, rng.random(14).astype(np.float32), w_scale, None))]


def quantize_u8_cases(rng, dt) -> list[Case]:
    x = _normal(rng, dt, 2, 7, 33, scale=3.0)
    relu = np.maximum(x, 0)
    return [Case("(2,7,33) per tensor", (x, 255, False)),
            Case("(2,7,33) per row, 7-bit", (x, 127, True)),
            Case("ReLU output (all >= 0)", (relu, 255, False)),
            Case("a row of zeros, per row", (np.concatenate([x[0], np.zeros((1, 33), dt)]), 255,
                                             True)),
            Case("transposed view", (_transposed(x), 255, True)),
            Case("1 element", (np.array([-2.5], dt), 255, False)),
            Case("values of 1e4, per row", (x * dt(1e4), 255, True)),
            Case("MobileBERT (2,128,512)", (_normal(rng, dt, 2, 128, 512, scale=10.0), 255,
                                            False))]


BUILDERS: dict[str, Callable[[np.random.Generator, Any], list[Case]]] = {
    "softmax_fwd": softmax_cases, "softmax_bwd": softmax_bwd_cases,
    "log_softmax_fwd": log_softmax_cases, "log_softmax_bwd": log_softmax_bwd_cases,
    "cross_entropy_fwd": cross_entropy_cases, "cross_entropy_bwd": cross_entropy_bwd_cases,
    "layer_norm_fwd": layer_norm_cases, "layer_norm_bwd": layer_norm_bwd_cases,
    "no_norm_fwd": no_norm_cases, "no_norm_bwd": no_norm_bwd_cases,
    "gelu_fwd": gelu_cases, "gelu_bwd": gelu_bwd_cases,
    "relu_fwd": relu_cases, "relu_bwd": relu_bwd_cases,
    "embedding_bwd": embedding_bwd_cases, "dropout_mask": dropout_cases,
    "adamw_update": lambda rng, dt: _optimizer_cases(rng, dt, lamb=False),
    "lamb_update": lambda rng, dt: _optimizer_cases(rng, dt, lamb=True),
    "int8_matmul": int8_matmul_cases, "quantize_u8": quantize_u8_cases,
}


# --- comparison ----------------------------------------------------------------------------------

def assert_close(got: Any, want: Any, what: str, normwise: bool = False) -> None:
    """got (host copy of a backend result) equals the reference `want` within TOLERANCE,
    element-wise, or with `normwise` relative to the largest reference value."""
    if want is None or isinstance(want, float):
        if want is None:
            assert got is None, f"{what}: expected None, got {type(got).__name__}"
            return
        rtol, atol = TOLERANCE[np.dtype(np.float32)]     # a trust ratio: a float32 norm ratio
        assert abs(got - want) <= atol + rtol * abs(want), f"{what}: {got!r} != {want!r}"
        return
    assert isinstance(got, np.ndarray), f"{what}: expected an array, got {type(got).__name__}"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, reference {want.shape}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, reference {want.dtype}"
    if want.dtype.kind != "f":
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    rtol, atol = TOLERANCE[want.dtype]
    if normwise and want.size:
        atol = max(atol, rtol * float(np.nanmax(np.abs(want))))
    nan = np.isnan(want)
    bad = (np.isnan(got) != nan)
    same = (got == want) | nan                          # equal infinities, and the nans
    err = np.abs(got.astype(np.float64) - want)
    bad |= ~same & ~(err <= atol + rtol * np.abs(want.astype(np.float64)))
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, np.nan_to_num(err, nan=np.inf), -1)),
                             want.shape)
        pytest.fail(f"{what}: {int(bad.sum())} of {want.size} values out of tolerance "
                    f"(rtol={rtol}, atol={atol}); worst at {tuple(int(k) for k in i)}: "
                    f"got {got[i]!r}, reference {want[i]!r}")


def _same_layout_copy(a: np.ndarray) -> np.ndarray:
    """A private copy that keeps the layout, so that transposed cases stay transposed. Read-only
    views (np.broadcast_to's stride-0 arrays) are kept as they are: nothing can write to them."""
    if not a.flags.writeable:
        return a
    return _transposed(a) if a.ndim >= 2 and not a.flags.c_contiguous else a.copy()


def _to_backend(be: backends.Backend, arg: Any) -> Any:
    if isinstance(arg, Seed):
        return be.rng(arg.seed)
    if isinstance(arg, np.ndarray):
        return _same_layout_copy(arg) if be.xp is np else be.asarray(arg)
    return arg


def _host(be: backends.Backend, out: Any) -> Any:
    if isinstance(out, tuple):
        return tuple(_host(be, o) for o in out)
    if out is None or isinstance(out, float):
        return out
    return be.to_numpy(out)


def _reference_args(args: tuple) -> tuple:
    return tuple(np.random.default_rng(a.seed) if isinstance(a, Seed)
                 else _same_layout_copy(a) if isinstance(a, np.ndarray) else a for a in args)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", sorted(reference.KERNELS))
def test_kernel_matches_reference(name: str, dtype: Any, backend: backends.Backend) -> None:
    builder = BUILDERS.get(name)
    if builder is None:
        pytest.fail(f"kernel {name!r} has no input builder: add one to BUILDERS in "
                    f"tests/backends/test_parity.py so that its parity with the reference is "
                    f"tested on every backend")
    kernel, ref = backend.kernel(name), reference.KERNELS[name]
    with np.errstate(all="ignore"):                     # -inf and nan cases warn in NumPy
        for case in builder(np.random.default_rng(0), dtype):
            _check_case(name, case, dtype, backend, kernel, ref)


def _check_case(name: str, case: Case, dtype: Any, backend: backends.Backend,
                kernel: Callable, ref: Callable) -> None:
    """Run one case on `backend` and on the reference; compare outputs and inputs."""
    what = f"{name} on {backend.name}, {np.dtype(dtype)}, case {case.label!r}"
    ref_args = _reference_args(case.args)
    args = tuple(_to_backend(backend, a) for a in case.args)
    inputs_before = [backend.to_numpy(a).copy() if isinstance(a, backend.array_type)
                     else None for a in args]
    want, got = ref(*ref_args), _host(backend, kernel(*args))
    if name == "dropout_mask" and backend.xp is not np:
        _check_dropout_mask(got, want, case.args[2], what)  # another generator's stream
        return
    wants = want if isinstance(want, tuple) else (want,)
    gots = got if isinstance(got, tuple) else (got,)
    assert len(gots) == len(wants), f"{what}: {len(gots)} outputs, reference {len(wants)}"
    for k, (g, w) in enumerate(zip(gots, wants, strict=True)):
        normwise = dtype == np.float32 and k in NORMWISE_FLOAT32.get(name, ())
        assert_close(g, w, f"{what}, output {k}", normwise)
    for k, (a, before) in enumerate(zip(args, inputs_before, strict=True)):
        if k in case.in_place:
            assert_close(backend.to_numpy(a), ref_args[k], f"{what}, in-place argument {k}")
        elif before is not None:
            np.testing.assert_array_equal(backend.to_numpy(a), before,
                                          err_msg=f"{what}: input {k} was modified")


def _check_dropout_mask(got: np.ndarray, want: np.ndarray, p: float, what: str) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype, what
    scale = want.dtype.type(1.0 / (1.0 - p))
    assert set(np.unique(got).tolist()) <= {0.0, float(scale)}, what
    assert abs(float((got == 0).mean()) - p) < 0.1, what


def test_every_kernel_has_a_builder_and_every_builder_a_kernel() -> None:
    missing = sorted(set(reference.KERNELS) - set(BUILDERS))
    stale = sorted(set(BUILDERS) - set(reference.KERNELS))
    assert not missing, f"add input builders to BUILDERS for the new kernels {missing}"
    assert not stale, f"BUILDERS has entries for kernels that no longer exist: {stale}"


def test_numba_overrides_only_reference_kernels() -> None:
    be = backends.get_backend("numba")
    assert be.kernels and set(be.kernels) <= set(reference.KERNELS)
    # dropout_mask stays the reference: its cost is NumPy's generator, which must stay NumPy's.
    assert "dropout_mask" not in be.kernels


# --- numba's own vectorisable exp and erf, over their whole range --------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_numba_exp_is_within_2_ulp_of_numpy(dtype: Any) -> None:
    nb = pytest.importorskip("backends.numba_backend")
    from numba import njit

    exp = nb._exp

    @njit
    def apply(x, out):
        for i in range(x.shape[0]):
            out[i] = exp(x[i])

    lo, hi = (-110, 95) if dtype == np.float32 else (-750, 715)
    x = np.concatenate([np.linspace(lo, hi, 200_001), [0.0, -0.0, np.inf, -np.inf, np.nan]])
    x = x.astype(dtype)
    with np.errstate(over="ignore"):
        got, want = np.empty_like(x), np.exp(x.astype(np.float64)).astype(dtype)
    apply(x, got)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = np.isfinite(want) & (want != 0)
    np.testing.assert_array_equal(got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)])
    tiny = np.finfo(dtype).tiny                          # below it, subnormal spacing applies
    ulp = np.spacing(np.maximum(np.abs(want[finite]), tiny))
    assert (np.abs(got[finite] - want[finite]) <= 2 * ulp).all()


def test_numba_erf_matches_the_reference_erf() -> None:
    nb = pytest.importorskip("backends.numba_backend")
    from numba import njit

    from backends.special import erf

    erf_nb = nb._erf

    @njit
    def apply(x, out):
        for i in range(x.shape[0]):
            out[i] = erf_nb(x[i])

    edges = np.array([2.0 ** -28, 0.84375, 1.25, 1 / 0.35, 6.0])
    x = np.concatenate([np.random.default_rng(3).uniform(-8, 8, 100_000), edges, -edges,
                        np.nextafter(edges, 0), [0.0, -0.0, 1e-310, np.inf, -np.inf, np.nan]])
    got = np.empty_like(x)
    apply(x, got)
    want = erf(x)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
    np.testing.assert_allclose(got, want, rtol=4e-16, atol=2e-16)


# --- op level: forward and backward through Tensors, each backend against numpy -----------------

def _run_op(be: backends.Backend, fn: Callable, arrays: dict, grads: tuple) -> dict:
    """fn(tensors) on backend `be`; returns host copies of the output and of the listed grads."""
    tensors = {k: Tensor(v, requires_grad=k in grads, device=be.name) for k, v in arrays.items()}
    y = fn(tensors, be)
    cot = np.random.default_rng(7).standard_normal(y.shape).astype(y.dtype)
    (y * Tensor(cot, device=be.name)).sum().backward()
    out = {"y": y.numpy()}
    out.update({f"grad {k}": tensors[k].grad for k in grads})
    return {k: be.to_numpy(v) if not isinstance(v, np.ndarray) else v for k, v in out.items()}


def _mask(be: backends.Backend, dt: Any) -> Any:
    mask = _padding_mask(dt, 2, 6, 2)
    mask[1] = NEG_INF
    return be.asarray(mask)


OPS = {
    "softmax": (lambda t, be: F.softmax(t["x"], scale=0.5, mask=_mask(be, t["x"].dtype)),
                lambda rng, dt: {"x": _normal(rng, dt, 2, 3, 4, 6)}, ("x",)),
    "layer_norm": (lambda t, be: F.layer_norm(t["x"], t["w"], t["b"], eps=1e-5),
                   lambda rng, dt: {"x": _normal(rng, dt, 3, 5, 8), "w": _normal(rng, dt, 8),
                                    "b": _normal(rng, dt, 8)}, ("x", "w", "b")),
    "cross_entropy": (lambda t, be: F.cross_entropy(t["x"], be.asarray(np.array([1, -100, 4, 0])),
                                                    reduction="none"),
                      lambda rng, dt: {"x": _normal(rng, dt, 4, 7, scale=3.0)}, ("x",)),
    "no_norm": (lambda t, be: F.no_norm(t["x"], t["w"], t["b"], residual=t["r"]),
                lambda rng, dt: {"x": _normal(rng, dt, 3, 5, 8), "w": _normal(rng, dt, 8),
                                 "b": _normal(rng, dt, 8), "r": _normal(rng, dt, 3, 5, 8)},
                ("x", "w", "b", "r")),
    "gelu": (lambda t, be: F.gelu(t["x"]) + F.gelu(t["x"], approximate=True),
             lambda rng, dt: {"x": _normal(rng, dt, 3, 17, scale=3.0)}, ("x",)),
    "embedding": (lambda t, be: F.embedding(be.asarray(np.array([[1, 4, 1], [0, 4, 4]])), t["w"]),
                  lambda rng, dt: {"w": _normal(rng, dt, 6, 5)}, ("w",)),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("op", sorted(OPS))
def test_op_forward_and_backward_match_numpy(op: str, dtype: Any,
                                             backend: backends.Backend) -> None:
    fn, make, grads = OPS[op]
    arrays = make(np.random.default_rng(1), dtype)
    want = _run_op(backends.get_backend("numpy"), fn, arrays, grads)
    got = _run_op(backend, fn, arrays, grads)
    for key in want:
        assert_close(got[key], want[key], f"F.{op} on {backend.name}, {np.dtype(dtype)}, {key}")
