"""Backend parity: every kernel in `backends.reference.KERNELS`, on every backend, in float32 and
float64, against the NumPy reference, under one tolerance table (parity_helpers.py); and every
override's signature against the table in backends/reference.py. The ops built on the kernels
are compared across backends in test_op_parity.py.

Inputs come from BUILDERS, a table of input builders keyed by kernel name. Adding a kernel to
the reference adds its parity tests here automatically, and fails them until a builder says what
to feed it. Cases cover -inf masks and fully masked rows, ignore_index rows, logits of 1e4,
non-contiguous (transposed) views, odd sizes (1 row, 1 column) and MobileBERT shapes at a
reduced batch. The harness also checks that no kernel writes into its inputs (the optimizer
updates excepted: they must update w, m and v in place exactly as the reference does).
"""
from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pytest

import backends
from backends import reference
from parity_helpers import (
    DTYPES,
    NEG_INF,
    NORMWISE_FLOAT32,
    assert_close,
    normal,
    padding_mask,
    transposed,
)

class Case(NamedTuple):
    label: str
    args: tuple
    in_place: tuple = ()          # indices of args the kernel updates in place (optimizers)


class Seed(NamedTuple):
    """Stands for `backend.rng(seed)` in a kernel's arguments (dropout_mask)."""
    seed: int


# --- input builders ------------------------------------------------------------------------------

def softmax_cases(rng, dt) -> list[Case]:
    x = normal(rng, dt, 2, 3, 5, 7)
    mask = padding_mask(dt, 2, 7, 3)
    mask[0] = NEG_INF                                   # batch 0: every row fully masked
    x_inf = x.copy()
    x_inf[0, 0, 0, 2:5] = NEG_INF
    x_inf[1, 2, 4, :] = NEG_INF                         # a fully -inf row in x itself
    scores = normal(rng, dt, 2, 4, 128, 128, scale=3.0)
    return [
        Case("(2,3,5,7) scale 0.5, (2,1,1,7) mask with -inf, batch 0 fully masked",
             (x, mask, 0.5)),
        Case("no mask", (x, None, 1.0)),
        Case("logits of 1e4", (x * dt(1e4), None, 1.0)),
        Case("-inf entries and a fully -inf row in x", (x_inf, None, 1.0)),
        Case("mask of x's shape", (x, np.where(x > 1, NEG_INF, 0.0).astype(dt), 2.0)),
        Case("(2,3,5,1) mask", (x, np.where(x[..., :1] > 0, -1e4, 0.0).astype(dt), 1.0)),
        Case("1-d float64 mask", (x, np.array([0, 0, NEG_INF, 0, -3.5, 0, 0]), 1.0)),
        Case("transposed view", (transposed(x), mask, 0.25)),
        Case("1 row, 1 column", (normal(rng, dt, 1, 1), None, 1.0)),
        Case("1 row, 1 column, masked", (normal(rng, dt, 1, 1), np.full((1, 1), NEG_INF), 1.0)),
        Case("1 row", (normal(rng, dt, 1, 9), None, 1.0)),
        Case("1 column", (normal(rng, dt, 9, 1), None, 3.0)),
        Case("MobileBERT scores (2,4,128,128), (2,1,1,128) mask",
             (scores, padding_mask(dt, 2, 128, 28), 1 / math.sqrt(32))),
    ]


def softmax_bwd_cases(rng, dt) -> list[Case]:
    out = []
    for case in softmax_cases(rng, dt):
        x, mask, scale = case.args
        y = reference.softmax_fwd(x, mask, scale)
        gy = normal(rng, dt, *y.shape)
        out.append(Case(case.label, (y, scale, gy)))
    out.append(Case("transposed gradient", (out[0].args[0], 0.5, transposed(out[0].args[2]))))
    return out


def log_softmax_cases(rng, dt) -> list[Case]:
    x = normal(rng, dt, 5, 7)
    x_inf = x.copy()
    x_inf[1, 3:] = NEG_INF
    x_inf[2] = NEG_INF                                  # a fully -inf row gives nan in both
    return [Case("(5,7)", (x,)), Case("logits of 1e4", (x * dt(1e4),)),
            Case("-inf entries and a fully -inf row", (x_inf,)),
            Case("transposed view", (transposed(x),)),
            Case("1 row, 1 column", (normal(rng, dt, 1, 1),)),
            Case("1 column", (normal(rng, dt, 9, 1),)),
            Case("(2,3,4,5)", (normal(rng, dt, 2, 3, 4, 5),)),
            Case("vocabulary rows (40,30522)", (normal(rng, dt, 40, 30522, scale=2.0),))]


def log_softmax_bwd_cases(rng, dt) -> list[Case]:
    out = []
    for case in log_softmax_cases(rng, dt):
        y = reference.log_softmax_fwd(case.args[0])
        if not np.isnan(y).any():
            out.append(Case(case.label, (y, normal(rng, dt, *y.shape))))
    return out + [Case("transposed gradient", (out[0].args[0], transposed(out[0].args[1])))]


def cross_entropy_cases(rng, dt) -> list[Case]:
    logits = normal(rng, dt, 6, 11, scale=3.0)
    target = rng.integers(0, 11, 6)
    target[2] = -100
    custom = rng.integers(0, 11, 6)
    custom[[1, 4]] = 3
    vocab = normal(rng, dt, 64, 30522, scale=2.0)
    vocab_target = rng.integers(0, 30522, 64)
    vocab_target[rng.random(64) < 0.85] = -100          # MLM on all positions: 85% ignored
    return [
        Case("(6,11), one ignored row", (logits, target, -100)),
        Case("every row ignored", (logits, np.full(6, -100), -100)),
        Case("ignore_index=3", (logits, custom, 3)),
        Case("int32 targets", (logits, target.astype(np.int32), -100)),
        Case("logits of 1e4", (logits * dt(1e4), target, -100)),
        Case("transposed view", (transposed(logits), target, -100)),
        Case("1 row, 1 column", (normal(rng, dt, 1, 1), np.zeros(1, np.int64), -100)),
        Case("a negative target wraps like NumPy indexing",
             (logits, np.where(target == -100, -100, target - 11), -100)),
        Case("vocabulary rows (40,30522)",
             (normal(rng, dt, 40, 30522, scale=2.0), rng.integers(0, 30522, 40), -100)),
        Case("vocabulary rows (64,30522), 85% ignored", (vocab, vocab_target, -100)),
    ]


def cross_entropy_bwd_cases(rng, dt) -> list[Case]:
    out = []
    for case in cross_entropy_cases(rng, dt):
        logits, target, ignore = case.args
        _, lse = reference.cross_entropy_fwd(logits, target, ignore)
        g_rows = normal(rng, dt, logits.shape[0])
        out.append(Case(case.label, (logits, lse, target, ignore, g_rows)))
    logits, lse, target, ignore, _ = out[0].args
    out.append(Case("broadcast (stride 0) row gradient",
                    (logits, lse, target, ignore, np.broadcast_to(dt(0.25), target.shape))))
    return out


def layer_norm_cases(rng, dt) -> list[Case]:
    x = normal(rng, dt, 2, 3, 8, scale=2.0) + dt(1.0)
    gamma, beta = normal(rng, dt, 8), normal(rng, dt, 8)
    constant = np.repeat(normal(rng, dt, 4, 1), 6, axis=1)      # zero variance: rstd = eps**-.5
    cases = [Case("(2,3,8)", (x, gamma, beta, 1e-12)),
             Case("no gamma, no beta", (x, None, None, 1e-12)),
             Case("gamma only, eps 1e-5", (x, gamma, None, 1e-5)),
             Case("constant rows", (constant, gamma[:6], beta[:6], 1e-5)),
             Case("values of 1e4", (x * dt(1e4), gamma, beta, 1e-12)),
             Case("transposed view", (transposed(x), gamma, beta, 1e-12)),
             Case("1 row, 1 column", (normal(rng, dt, 1, 1), gamma[:1], beta[:1], 1e-12))]
    for width in (512, 128):
        cases.append(Case(f"MobileBERT (2,128,{width})",
                          (normal(rng, dt, 2, 128, width), normal(rng, dt, width),
                           normal(rng, dt, width), 1e-12)))
    return cases


def layer_norm_bwd_cases(rng, dt) -> list[Case]:
    out = []
    for case in layer_norm_cases(rng, dt):
        x, gamma, beta, eps = case.args
        _, mean, rstd = reference.layer_norm_fwd(x, gamma, beta, eps)
        out.append(Case(case.label, (x, gamma, mean, rstd, normal(rng, dt, *x.shape))))
    x, gamma, mean, rstd, gy = out[0].args
    return out + [Case("transposed gradient", (x, gamma, mean, rstd, transposed(gy)))]


def no_norm_cases(rng, dt) -> list[Case]:
    x, res = normal(rng, dt, 2, 3, 8), normal(rng, dt, 2, 3, 8)
    gamma, beta = normal(rng, dt, 8), normal(rng, dt, 8)
    return [Case("(2,3,8) with residual", (x, gamma, beta, res)),
            Case("no residual", (x, gamma, beta, None)),
            Case("transposed views", (transposed(x), gamma, beta, transposed(res))),
            Case("1 row, 1 column", (normal(rng, dt, 1, 1), gamma[:1], beta[:1],
                                     normal(rng, dt, 1, 1))),
            Case("MobileBERT (2,128,512)", (normal(rng, dt, 2, 128, 512), normal(rng, dt, 512),
                                            normal(rng, dt, 512), normal(rng, dt, 2, 128, 512)))]


def no_norm_bwd_cases(rng, dt) -> list[Case]:
    return [Case(c.label, (c.args[0], c.args[1], c.args[3], normal(rng, dt, *c.args[0].shape)))
            for c in no_norm_cases(rng, dt)]


def _activation_inputs(rng, dt) -> list[tuple[str, np.ndarray]]:
    edges = np.array([0.0, -0.0, 1e-30, -1e-30, 0.5, -0.84375, 1.25, -3.0, 5.9, -6.1, 30.0,
                      -30.0], dt)
    x = normal(rng, dt, 4, 50, scale=4.0)
    return [("edge values", edges), ("(4,50) in about [-12, 12]", x),
            ("transposed view", transposed(x)), ("1 element", normal(rng, dt, 1, 1)),
            ("MobileBERT (2,128,512)", normal(rng, dt, 2, 128, 512, scale=3.0))]


def gelu_cases(rng, dt) -> list[Case]:
    return [Case(f"{label}, {'tanh' if a else 'erf'}", (x, a))
            for label, x in _activation_inputs(rng, dt) for a in (False, True)]


def gelu_bwd_cases(rng, dt) -> list[Case]:
    return [Case(f"{label}, {'tanh' if a else 'erf'}", (x, a, normal(rng, dt, *x.shape)))
            for label, x in _activation_inputs(rng, dt) for a in (False, True)]


def relu_cases(rng, dt) -> list[Case]:
    special = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 2.0, -2.0], dt)
    return [Case(label, (x,)) for label, x in _activation_inputs(rng, dt)] + [
        Case("nan and infinities", (special,))]


def relu_bwd_cases(rng, dt) -> list[Case]:
    return [Case(c.label, (reference.relu_fwd(c.args[0]), normal(rng, dt, *c.args[0].shape)))
            for c in relu_cases(rng, dt)]


def matmul_cases(rng, dt) -> list[Case]:
    """Attention's stacked per-head products (the Numba backend runs them on one BLAS thread),
    a broadcast batch, a plain 2-D product and stacked slices large enough for every thread."""
    return [Case("scores (B, H, T, hs) @ (B, H, hs, T)",
                 (normal(rng, dt, 2, 4, 16, 8), normal(rng, dt, 2, 4, 8, 16))),
            Case("broadcast batch", (normal(rng, dt, 3, 5, 7), normal(rng, dt, 1, 7, 2))),
            Case("2-D", (normal(rng, dt, 33, 17), normal(rng, dt, 17, 9))),
            Case("large slices", (normal(rng, dt, 2, 96, 200), normal(rng, dt, 2, 200, 256)))]


def embedding_bwd_cases(rng, dt) -> list[Case]:
    ids = rng.integers(0, 9, (2, 5))
    ids[0, :3] = 4                                       # repeated ids accumulate
    gy = normal(rng, dt, 2, 5, 6)
    return [Case("(2,5) ids into (9,6)", (ids, 9, gy)),
            Case("int32 ids", (ids.astype(np.int32), 9, gy)),
            Case("transposed gradient", (ids, 9, transposed(gy))),
            Case("one id, width 1", (np.array([3]), 5, normal(rng, dt, 1, 1))),
            Case("wide rows", (ids, 9, normal(rng, dt, 2, 5, 77))),
            Case("MobileBERT ids (2,128) into (1000,128)",
                 (rng.integers(0, 1000, (2, 128)), 1000, normal(rng, dt, 2, 128, 128)))]


def dropout_cases(rng, dt) -> list[Case]:
    return [Case("(3,5) p=0.1", (Seed(0), (3, 5), 0.1, dt)),
            Case("(2,128,64) p=0.5", (Seed(1), (2, 128, 64), 0.5, dt))]


def _optimizer_cases(rng, dt, lamb: bool) -> list[Case]:
    def state(*shape):
        return (normal(rng, dt, *shape, scale=0.05), normal(rng, dt, *shape, scale=1e-2),
                normal(rng, dt, *shape, scale=1e-3), np.abs(normal(rng, dt, *shape, scale=1e-4)))
    hyper = (1e-3, 0.9, 0.999, 1e-6)
    w, g, m, v = state(50, 30)
    cases = [
        Case("(50,30), weight decay", (w, g, m, v, *hyper, 0.01, 1.0, 1.0)),
        Case("bias corrected, no weight decay", (w, g, m, v, *hyper, 0.0, 0.1, 0.001)),
        Case("transposed gradient", (w, transposed(g), m, v, *hyper, 0.01, 1.0, 1.0)),
        Case("w, m, v transposed views, updated through the view",
             (transposed(w), g, transposed(m), transposed(v), *hyper, 0.01, 1.0, 1.0)),
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
    x = normal(rng, dt, 2, 7, 33, scale=3.0)
    relu = np.maximum(x, 0)
    return [Case("(2,7,33) per tensor", (x, 255, False)),
            Case("(2,7,33) per row, 7-bit", (x, 127, True)),
            Case("ReLU output (all >= 0)", (relu, 255, False)),
            Case("a row of zeros, per row", (np.concatenate([x[0], np.zeros((1, 33), dt)]), 255,
                                             True)),
            Case("transposed view", (transposed(x), 255, True)),
            Case("1 element", (np.array([-2.5], dt), 255, False)),
            Case("values of 1e4, per row", (x * dt(1e4), 255, True)),
            Case("MobileBERT (2,128,512)", (normal(rng, dt, 2, 128, 512, scale=10.0), 255,
                                            False))]


def quantize_u8_static_cases(rng, dt) -> list[Case]:
    """A fixed (calibrated) range: inside x's own, around it, and the range of x itself
    (which must give quantize_u8's per-tensor codes; test_int8_matmul.py checks that)."""
    x = normal(rng, dt, 2, 7, 33, scale=3.0)
    return [Case("(2,7,33) range narrower than x: clipping at both ends", (x, -2.0, 1.5, 255)),
            Case("range wider than x, 7-bit", (x, -20.0, 30.0, 127)),
            Case("x's own range", (x, float(x.min()), float(x.max()), 255)),
            Case("range above 0 only (ReLU input)", (np.maximum(x, 0), 0.0, 4.0, 255)),
            Case("transposed view", (transposed(x), -3.0, 3.0, 255)),
            Case("1 element", (np.array([-2.5], dt), -1.0, 1.0, 255)),
            Case("values of 1e4 in a range of 1e3", (x * dt(1e4), -1e3, 1e3, 255)),
            Case("MobileBERT (2,128,512)", (normal(rng, dt, 2, 128, 512, scale=10.0), -25.0,
                                            31.0, 255))]


BUILDERS: dict[str, Callable[[np.random.Generator, Any], list[Case]]] = {
    "softmax_fwd": softmax_cases, "softmax_bwd": softmax_bwd_cases,
    "log_softmax_fwd": log_softmax_cases, "log_softmax_bwd": log_softmax_bwd_cases,
    "cross_entropy_fwd": cross_entropy_cases, "cross_entropy_bwd": cross_entropy_bwd_cases,
    "layer_norm_fwd": layer_norm_cases, "layer_norm_bwd": layer_norm_bwd_cases,
    "no_norm_fwd": no_norm_cases, "no_norm_bwd": no_norm_bwd_cases,
    "gelu_fwd": gelu_cases, "gelu_bwd": gelu_bwd_cases,
    "relu_fwd": relu_cases, "relu_bwd": relu_bwd_cases, "matmul": matmul_cases,
    "embedding_bwd": embedding_bwd_cases, "dropout_mask": dropout_cases,
    "adamw_update": lambda rng, dt: _optimizer_cases(rng, dt, lamb=False),
    "lamb_update": lambda rng, dt: _optimizer_cases(rng, dt, lamb=True),
    "int8_matmul": int8_matmul_cases, "quantize_u8": quantize_u8_cases,
    "quantize_u8_static": quantize_u8_static_cases,
}


# --- comparison ----------------------------------------------------------------------------------

def _same_layout_copy(a: np.ndarray) -> np.ndarray:
    """A private copy that keeps the layout, so that transposed cases stay transposed. Read-only
    views (np.broadcast_to's stride-0 arrays) are kept as they are: nothing can write to them."""
    if not a.flags.writeable:
        return a
    return transposed(a) if a.ndim >= 2 and not a.flags.c_contiguous else a.copy()


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


def _parameters(fn: Callable) -> list[str]:
    return list(inspect.signature(fn).parameters)


def test_kernel_signatures_are_the_documented_ones() -> None:
    # reference.py's docstring is the table of signatures; the functions must say the same.
    for name, fn in reference.KERNELS.items():
        match = re.search(rf"\b{name}\(([^)]*)\)", reference.__doc__)
        assert match, f"{name} is missing from the signature table in backends/reference.py"
        documented = [a.strip() for a in match.group(1).split(",") if a.strip()]
        assert documented == _parameters(fn), name
        if name.endswith("_bwd"):
            assert _parameters(fn)[-1] == "gy", f"{name}: the upstream gradient goes last"


def test_overrides_take_the_reference_signature(backend: backends.Backend) -> None:
    for name, fn in backend.kernels.items():
        assert _parameters(fn) == _parameters(reference.KERNELS[name]), \
            f"{backend.name}'s {name} takes {_parameters(fn)}"


def test_numba_overrides_only_reference_kernels() -> None:
    be = backends.get_backend("numba")
    assert be.kernels and set(be.kernels) <= set(reference.KERNELS)
    # dropout_mask stays the reference: its cost is NumPy's generator, which must stay NumPy's.
    assert "dropout_mask" not in be.kernels
