"""Tests for backends/special.py: erf against Python's libm-backed `math.erf`.

The reference is independent of our code: CPython's math.erf calls the C library's erf.
Timing is measured by benchmarks, never asserted here.
"""
from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backends import special
from backends.special import erf, erf_derivative

_math_erf = np.frompyfunc(math.erf, 1, 1)


def erf_expected(x: np.ndarray) -> np.ndarray:
    return _math_erf(np.asarray(x, dtype=np.float64)).astype(np.float64)


def assert_close_to_libm(x: np.ndarray, y: np.ndarray) -> None:
    """rel err < 1e-15 or abs err < 1e-16 (about 1-2 ulp), NaN exactly where libm gives NaN."""
    ref = erf_expected(x)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    ok = ~np.isnan(ref)
    err = np.abs(y[ok] - ref[ok])
    bad = ~((err <= 1e-16) | (err <= 1e-15 * np.abs(ref[ok])))
    if bad.any():
        k = np.flatnonzero(bad)[0]
        pytest.fail(f"erf({x[ok][k]!r}) = {y[ok][k]!r}, libm says {ref[ok][k]!r} "
                    f"({bad.sum()} of {ok.sum()} points out of tolerance)")


def test_erf_million_points_in_minus_10_10():
    rng = np.random.default_rng(1234)
    x = rng.uniform(-10.0, 10.0, size=1_000_000)
    y = erf(x)
    assert y.dtype == np.float64 and y.shape == x.shape
    assert_close_to_libm(x, y)


def test_erf_branch_edges_and_their_neighbours():
    # fdlibm's branch edges, plus one ulp either side of each: the pieces must join cleanly.
    edges = np.array([2.0 ** -28, 0.84375, 1.25, 1.0 / 0.35, 6.0])
    x = np.concatenate([edges, np.nextafter(edges, 0.0), np.nextafter(edges, np.inf)])
    x = np.concatenate([x, -x])
    assert_close_to_libm(x, erf(x))


def test_erf_special_values():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, 1e-310, -1e-310,
                  np.finfo(np.float64).tiny, 1e-300, 2.0 ** -30, 30.0, -30.0, 1e300, -1e300])
    y = erf(x)
    assert_close_to_libm(x, y)
    assert y[0] == 0.0 and not np.signbit(y[0])
    assert y[1] == 0.0 and np.signbit(y[1]), "erf(-0.0) keeps the sign of zero"
    assert y[2] == 1.0 and y[3] == -1.0
    assert np.isnan(y[4])
    # Subnormals: erf(x) ~ 1.128 x, still nonzero and exact to libm's rounding.
    assert y[5] == math.erf(5e-324) and y[7] == math.erf(1e-310)


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True))
def test_erf_any_double(v):
    x = np.array([v, -v])
    assert_close_to_libm(x, erf(x))


def test_erf_is_odd():
    x = np.random.default_rng(0).uniform(-7.0, 7.0, size=10_000)
    np.testing.assert_array_equal(erf(-x), -erf(x))


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_erf_narrow_floats_keep_dtype_and_round_once(dtype):
    x = np.random.default_rng(3).uniform(-6.0, 6.0, size=100_000).astype(dtype)
    y = erf(x)
    assert y.dtype == dtype
    expected = erf_expected(x.astype(np.float64)).astype(dtype)  # libm, then one rounding
    tol = 1e-7 if dtype == np.float32 else 1e-3
    np.testing.assert_allclose(y.astype(np.float64), expected.astype(np.float64), rtol=0, atol=tol)


@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2), (2, 3, 4)])
def test_erf_shapes(shape):
    x = np.random.default_rng(0).standard_normal(shape)
    y = erf(x)
    assert isinstance(y, np.ndarray) and y.shape == x.shape
    assert_close_to_libm(x.reshape(-1), y.reshape(-1))


def test_erf_does_not_modify_its_input_and_accepts_views():
    x = np.linspace(-3, 3, 24).reshape(4, 6)
    before = x.copy()
    y = erf(x.T[::2])
    np.testing.assert_array_equal(x, before)
    assert_close_to_libm(x.T[::2].reshape(-1), y.reshape(-1))


def test_erf_integer_input_gives_float64_and_scalars_work():
    y = erf(np.array([0, 1, -2]))
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, erf_expected(np.array([0.0, 1.0, -2.0])))
    assert erf(0.5).shape == () and float(erf(0.5)) == math.erf(0.5)


def test_erf_rejects_complex():
    with pytest.raises(TypeError, match=r"erf: expected a real .* got dtype complex128"):
        erf(np.array([1 + 1j]))


def test_erf_raises_no_floating_point_warnings():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, 1e300, 6.0, 1.25])
    # Underflow is expected (subnormal inputs, exp of -x^2) and NumPy ignores it by default.
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        erf(x)
        erf_derivative(x)


def test_erf_derivative_matches_formula_and_central_difference():
    x = np.random.default_rng(5).uniform(-4, 4, size=1000)
    d = erf_derivative(x)
    np.testing.assert_allclose(d, 2.0 / math.sqrt(math.pi) * np.exp(-x * x), rtol=1e-15)
    h = 1e-6
    numeric = (erf(x + h) - erf(x - h)) / (2 * h)
    np.testing.assert_allclose(d, numeric, rtol=1e-7, atol=1e-9)


def test_erf_derivative_dtypes_and_special_values():
    assert erf_derivative(np.float32([0.5])).dtype == np.float32
    assert erf_derivative(np.array(0.0)).shape == ()
    y = erf_derivative(np.array([0.0, np.inf, -np.inf, np.nan]))
    assert y[0] == 2.0 / math.sqrt(math.pi) and y[1] == 0.0 and y[2] == 0.0 and np.isnan(y[3])


def _bits(v: float) -> str:
    return struct.pack(">d", v).hex().upper()


def test_coefficients_match_fdlibm_bit_patterns():
    # The high/low words printed next to each constant in fdlibm s_erf.c, so that a typo in
    # a decimal literal cannot hide inside the 1-ulp tolerance.
    expected = {
        "ERX": "3FEB0AC160000000", "EFX": "3FC06EBA8214DB69",
        "PP": ["3FC06EBA8214DB68", "BFD4CD7D691CB913", "BF9D2A51DBD7194F", "BF77A291236668E4",
                "BEF8EAD6120016AC"],
        "QQ": ["3FF0000000000000", "3FD97779CDDADC09", "3FB0A54C5536CEBA", "3F74D022C4D36B0F",
                "3F215DC9221C1A10", "BED09C4342A26120"],
        "PA": ["BF6359B8BEF77538", "3FDA8D00AD92B34D", "BFD7D240FBB8C3F1", "3FD45FCA805120E4",
                "BFBC63983D3E28EC", "3FA22A36599795EB", "BF61BF380A96073F"],
        "QA": ["3FF0000000000000", "3FBB3E6618EEE323", "3FE14AF092EB6F33", "3FB2635CD99FE9A7",
                "3FC02660E763351F", "3F8BEDC26B51DD1C", "3F888B545735151D"],
        "RA": ["BF843412600D6435", "BFE63416E4BA7360", "C0251E0441B0E726", "C04F300AE4CBA38D",
                "C0644CB184282266", "C067135CEBCCABB2", "C054526557E4D2F2", "C023A0EFC69AC25C"],
        "SA": ["3FF0000000000000", "4033A6B9BD707687", "4061350C526AE721", "407B290DD58A1A71",
                "40842B1921EC2868", "407AD02157700314", "405B28A3EE48AE2C", "401A47EF8E484A93",
                "BFAEEFF2EE749A62"],
        "RB": ["BF84341239E86F4A", "BFE993BA70C285DE", "C031C209555F995A", "C064145D43C5ED98",
                "C083EC881375F228", "C09004616A2E5992", "C07E384E9BDC383F"],
        "SB": ["3FF0000000000000", "403E568B261D5190", "40745CAE221B9F0A", "409802EB189D5118",
                "40A8FFB7688C246A", "40A3F219CEDF3BE6", "407DA874E79FE763", "C03670E242712D62"],
    }
    for name, bits in expected.items():
        value = getattr(special, name)
        got = _bits(value) if isinstance(bits, str) else [_bits(c) for c in value]
        assert got == bits, name
