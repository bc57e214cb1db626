"""The int8 layers against the dequantized math written out in NumPy (float64), on the numpy
and numba backends: QuantizedLinear (dynamic per tensor / per row, static), the shared input
quantization, QuantizedEmbedding, weight quantization, and the inference-only contract."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import backends
from autograd import Tensor, no_grad
from tinybert_core.quantization import (
    InputQuantizer,
    QuantizedEmbedding,
    QuantizedLinear,
    quantize_weight,
)


def dequantized_expected(x: np.ndarray, q: np.ndarray, scale: np.ndarray, bias, qmax: int,
                         per_row: bool, input_range=None) -> np.ndarray:
    """x quantized to uint8 codes by the written-out formula, then (codes - zp) * s_x times
    (q * s_w)^T plus bias, in float64: what an int8 Linear means."""
    rows = x.reshape(-1, x.shape[-1]).astype(np.float64)
    if input_range is not None:
        lo, hi = (np.full((rows.shape[0], 1), v) for v in input_range)
    elif per_row:
        lo, hi = rows.min(axis=1, keepdims=True), rows.max(axis=1, keepdims=True)
    else:
        lo, hi = np.full((rows.shape[0], 1), rows.min()), np.full((rows.shape[0], 1), rows.max())
    lo, hi = np.minimum(lo, 0), np.maximum(hi, 0)
    s_x = ((hi - lo) / qmax).astype(np.float32).astype(np.float64)
    s_x[s_x == 0] = 1
    # The divisions in float32, as the contract says (backends/int8.py: quantize_params): in
    # float64 an x within float32 rounding of a half-step rounds the other way (a one-code
    # flip, seen at m=9, k=13, n=1, seed=236).
    s32 = s_x.astype(np.float32)
    zp = np.clip(np.rint((-lo).astype(np.float32) / s32), 0, qmax).astype(np.float64)
    codes = np.clip(np.rint(rows.astype(np.float32) / s32) + zp, 0, qmax)
    a = (codes - zp) * s_x                                                # dequantized input
    w = q.astype(np.float64) * scale[:, None]                             # dequantized weight
    y = a @ w.T + (0 if bias is None else bias)
    return y.reshape(*x.shape[:-1], q.shape[0])


@pytest.mark.parametrize("device", ["numpy", "numba"])
@pytest.mark.parametrize("per_row", [False, True])
@given(m=st.integers(1, 9), k=st.integers(1, 70), n=st.integers(1, 40),
       bias=st.booleans(), seed=st.integers(0, 2**31))
@settings(max_examples=12, deadline=None)
def test_quantized_linear_is_the_dequantized_math(device, per_row, m, k, n, bias, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((2, m, k)) * 3 + rng.normal()).astype(np.float32)
    w = rng.standard_normal((n, k)).astype(np.float32)
    q, scale = quantize_weight(w)
    b = rng.standard_normal(n).astype(np.float32) if bias else None
    layer = QuantizedLinear(q, scale.reshape(-1), b, InputQuantizer(per_row))
    with no_grad():
        got = layer(Tensor(x, device=device))
    qmax = 255 if device == "numpy" else _numba_qmax()
    want = dequantized_expected(x, q, scale.reshape(-1), b, qmax, per_row)
    assert got.shape == (2, m, n) and got.dtype == np.float32 and got.device == device
    tol = 1e-5 * (np.abs(want).max() + 1)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=tol)


def _numba_qmax() -> int:
    from backends.numba_int8 import activation_max
    return activation_max()


@pytest.mark.parametrize("device", ["numpy", "numba"])
def test_static_layer_uses_its_calibrated_range_and_clips(device):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((4, 16)) * 2).astype(np.float32)
    x[0, 0] = 50.0                                       # far outside the calibrated range
    q, scale = quantize_weight(rng.standard_normal((6, 16)).astype(np.float32))
    layer = QuantizedLinear(q, scale.reshape(-1), None, InputQuantizer(), (-3.0, 4.0))
    got = layer(Tensor(x, device=device)).numpy()
    qmax = 255 if device == "numpy" else _numba_qmax()
    want = dequantized_expected(x, q, scale.reshape(-1), None, qmax, False, (-3.0, 4.0))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    clipped = x.copy()
    clipped[0, 0] = 4.0                                  # the outlier counts as the range's top
    np.testing.assert_allclose(got, dequantized_expected(clipped, q, scale.reshape(-1), None,
                                                         qmax, False, (-3.0, 4.0)),
                               rtol=1e-5, atol=1e-5)


def test_weight_quantization_is_symmetric_per_output_channel():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 9)).astype(np.float32) * np.array([[1e-3], [1], [10], [0], [2]],
                                                                    np.float32)
    q, scale = quantize_weight(w)
    assert q.dtype == np.int8 and scale.shape == (5, 1) and scale.dtype == np.float32
    assert np.abs(q).max() <= 127 and (np.abs(q).max(axis=1)[[0, 1, 2, 4]] == 127).all()
    assert scale[3, 0] == 1.0 and not q[3].any()         # an all-zero channel: scale 1, codes 0
    assert np.all(np.abs(q * scale - w) <= 0.5 * scale + 1e-7)
    q_cols, s_cols = quantize_weight(w, axis=0)           # one scale per column
    assert s_cols.shape == (1, 9)
    with pytest.raises(ValueError, match="finite"):
        quantize_weight(np.array([[1.0, np.nan]], np.float32))


def test_input_quantizer_quantizes_a_tensor_once_for_every_layer_that_reads_it(monkeypatch):
    calls = []
    be = backends.get_backend("numpy")
    real = be.kernel("quantize_u8")
    monkeypatch.setitem(be._table, "quantize_u8", lambda *a: calls.append(1) or real(*a))
    rng = np.random.default_rng(1)
    quantizer = InputQuantizer()
    layers = [QuantizedLinear(*_weights(rng, 8, 5), None, quantizer) for _ in range(3)]
    x, other = Tensor(rng.standard_normal((3, 5)).astype(np.float32)), \
        Tensor(rng.standard_normal((3, 5)).astype(np.float32))
    with no_grad():
        first = [layer(x).numpy() for layer in layers]      # query, key, value of one input
        assert len(calls) == 1
        layers[0](other)
        layers[1](x)                                        # still remembered (two entries)
        assert len(calls) == 2
        x.data = x.data * 2                                 # a new array: quantized anew
        layers[2](x)
        assert len(calls) == 3
    alone = QuantizedLinear(layers[1].int8_weight(), layers[1].weight_scale, None,
                            InputQuantizer())(Tensor(x.data / 2)).numpy()
    np.testing.assert_array_equal(first[1], alone)         # sharing changes no bit


def _weights(rng, n, k):
    q, s = quantize_weight(rng.standard_normal((n, k)).astype(np.float32))
    return q, s.reshape(-1)


def test_int8_layers_are_inference_only():
    rng = np.random.default_rng(2)
    layer = QuantizedLinear(*_weights(rng, 4, 3), None, InputQuantizer())
    x = Tensor(rng.standard_normal((2, 3)).astype(np.float32), requires_grad=True)
    with pytest.raises(RuntimeError, match="inference-only"):
        layer(x)
    with no_grad():
        y = layer(x)
    assert not y.requires_grad


def test_quantized_linear_checks_its_arrays():
    q = np.zeros((4, 3), np.int8)
    with pytest.raises(ValueError, match="weight_scale"):
        QuantizedLinear(q, np.ones(3, np.float32), None, InputQuantizer())
    with pytest.raises(ValueError, match="int8"):
        QuantizedLinear(q.astype(np.int16), np.ones(4, np.float32), None, InputQuantizer())
    with pytest.raises(ValueError, match="bias"):
        QuantizedLinear(q, np.ones(4, np.float32), np.ones(5, np.float32), InputQuantizer())


def test_quantized_embedding_dequantizes_rows_and_names_bad_ids():
    rng = np.random.default_rng(4)
    table = rng.standard_normal((10, 6)).astype(np.float32)
    q, scale = quantize_weight(table)
    emb = QuantizedEmbedding(q, scale.reshape(-1))
    ids = np.array([[1, 9, 0], [3, 3, 2]])
    out = emb(ids, "input_ids").numpy()
    np.testing.assert_array_equal(out, (q[ids].astype(np.float32) * scale[ids]))
    assert np.abs(out - table[ids]).max() <= 0.5 * scale.max() + 1e-7
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 10\)"):
        emb(np.array([[10]]), "input_ids")
    with pytest.raises(TypeError, match="integers"):
        emb(np.array([[1.0]]))
