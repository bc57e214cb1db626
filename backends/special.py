"""Special functions NumPy lacks, written once for any array module (`xp` = numpy or cupy).

`erf` is needed by the exact GELU, `0.5 * x * (1 + erf(x / sqrt(2)))` (Hendrycks & Gimpel,
"Gaussian Error Linear Units", 2016, eq. 1; HF `ACT2FN["gelu"]`), and NumPy has no erf while
SciPy is not a dependency. We port the piecewise rational approximation of fdlibm's `s_erf.c`
(Sun Microsystems, 1993: "Permission to use, copy, modify, and distribute this software is
freely granted, provided that this notice is preserved"; the same code lives on as
FreeBSD/musl `lib/msun/src/s_erf.c`, and QuantLib's `ql/math/errorfunction.cpp` is a readable
copy of it). Its coefficients are below, with their IEEE-754 bit patterns checked in
`tests/backends/test_special.py`. fdlibm states an error under one ulp for erf.

Only `xp.asarray`, `xp.abs`, `xp.sign`, `xp.copysign`, `xp.exp`, `xp.minimum`, `xp.nonzero`,
integer-index gathers/scatters and arithmetic are used, so the same code runs under NumPy and
CuPy.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

# erf(1) rounded to 24 bits: the [0.84375, 1.25) piece approximates erf(1 + s) - ERX.
ERX = 8.45062911510467529297e-01
# 2/sqrt(pi) - 1: erf(x) = x + EFX * x to double precision once |x| < 2**-28.
EFX = 1.28379167095512586316e-01
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)

# Coefficients in increasing powers. P are numerators; Q and S denominators with a leading 1.
# |x| < 0.84375: erf(x) = x + x * P(x^2) / Q(x^2).
PP = (1.28379167095512558561e-01, -3.25042107247001499370e-01, -2.84817495755985104766e-02,
      -5.77027029648944159157e-03, -2.37630166566501626084e-05)
QQ = (1.0, 3.97917223959155352819e-01, 6.50222499887672944485e-02, 5.08130628187576562776e-03,
      1.32494738004321644526e-04, -3.96022827877536812320e-06)
# 0.84375 <= |x| < 1.25, s = |x| - 1: erf(x) = sign(x) * (ERX + P(s) / Q(s)).
PA = (-2.36211856075265944077e-03, 4.14856118683748331666e-01, -3.72207876035701323847e-01,
      3.18346619901161753674e-01, -1.10894694282396677476e-01, 3.54783043256182359371e-02,
      -2.16637559486879084300e-03)
QA = (1.0, 1.06420880400844228286e-01, 5.40397917702171048937e-01, 7.18286544141962662868e-02,
      1.26171219808761642112e-01, 1.36370839120290507362e-02, 1.19844998467991074170e-02)
# 1.25 <= |x| < 1/0.35, z = 1/x^2: erfc(|x|) = exp(-x^2 - 0.5625 + R(z) / S(z)) / |x|.
RA = (-9.86494403484714822705e-03, -6.93858572707181764372e-01, -1.05586262253232909814e+01,
      -6.23753324503260060396e+01, -1.62396669462573470355e+02, -1.84605092906711035994e+02,
      -8.12874355063065934246e+01, -9.81432934416914548592e+00)
SA = (1.0, 1.96512716674392571292e+01, 1.37657754143519042600e+02, 4.34565877475229228821e+02,
      6.45387271733267880336e+02, 4.29008140027567833386e+02, 1.08635005541779435134e+02,
      6.57024977031928170135e+00, -6.04244152148580987438e-02)
# 1/0.35 <= |x| < 6: the same form with a second fit.
RB = (-9.86494292470009928597e-03, -7.99283237680523006574e-01, -1.77579549177547519889e+01,
      -1.60636384855821916062e+02, -6.37566443368389627722e+02, -1.02509513161107724954e+03,
      -4.83519191608651397019e+02)
SB = (1.0, 3.03380607434824582924e+01, 3.25792512996573918826e+02, 1.53672958608443695994e+03,
      3.19985821950859553908e+03, 2.55305040643316442583e+03, 4.74528541206955367215e+02,
      -2.24409524465858183362e+01)

# Branch edges. Past 6, 1 - erfc(x) rounds to exactly 1 in float64 (erfc(6) ~ 2e-17).
SMALL, MID, TAIL_SPLIT, BIG = 0.84375, 1.25, 1.0 / 0.35, 6.0
TINY = 2.0 ** -28


def _horner(coeffs: tuple[float, ...], z: Any) -> Any:
    """sum(c_k * z**k), nested as fdlibm does; updated in place to avoid one temporary per step."""
    acc = z * coeffs[-1]
    acc += coeffs[-2]
    for c in coeffs[-3::-1]:
        acc *= z
        acc += c
    return acc


def _in_range(ax: Any, lo: float, hi: float, xp: Any) -> Any:
    """Flat indices of lo <= ax < hi (nan is in no range). Integer indices, because NumPy
    gathers and scatters with them several times faster than with a boolean mask."""
    return xp.nonzero((ax >= lo) & (ax < hi))[0]


def _float_dtype(x: Any, fname: str) -> Any:
    """The dtype a result keeps: the input's for floats, float64 for integers and bools."""
    kind = x.dtype.kind
    if kind == "f":
        return x.dtype
    if kind in "biu":
        return np.dtype(np.float64)
    raise TypeError(f"{fname}: expected a real (float, int or bool) array, got dtype {x.dtype}")


def erf(x: Any, xp: Any = np) -> Any:
    """The error function erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt, elementwise.

    fdlibm's method (see the module docstring), vectorised: each element is computed only by the
    branch its |x| falls in, on the gathered subset of elements in that range.

    - |x| < 0.84375:        x + x * P(x^2)/Q(x^2)   (x + 2/sqrt(pi)-1 times x below 2**-28)
    - 0.84375 <= |x| < 1.25: sign(x) * (erx + P(s)/Q(s)), s = |x| - 1
    - 1.25 <= |x| < 6:       sign(x) * (1 - exp(-x^2 - 0.5625 + R(z)/S(z)) / |x|), z = 1/x^2,
                             with one fit below 1/0.35 and another above
    - |x| >= 6 and +-inf:    sign(x), since erfc(6) is below half an ulp of 1; nan stays nan.

    Args:
        x: array (or scalar) of real values; float16/float32 are computed in float64 and
            rounded once at the end.
        xp: the array module of `x` (numpy or cupy).

    Returns:
        An array of x's shape; floating dtypes are kept, integers and bools give float64.
        Error: at most about 1 ulp in float64; float32 results are within 1e-7.
    """
    x = xp.asarray(x)
    dtype = _float_dtype(x, "erf")
    flat = x.astype(xp.float64).reshape(-1)  # a private copy we can index into
    ax = xp.abs(flat)
    # sign() already is the answer for |x| >= 6, +-inf and nan; the branches overwrite the rest.
    out = xp.sign(flat)

    # Below 2**-28 the fit equals x + efx*x to the last bit; fdlibm scales by 8 there so that
    # subnormal inputs keep their bits through the multiply. +-0 land here and keep their sign.
    i = _in_range(ax, 0.0, TINY, xp)
    xs = flat[i]
    out[i] = 0.125 * (8.0 * xs + (8.0 * EFX) * xs)

    i = _in_range(ax, TINY, SMALL, xp)
    xs = flat[i]
    zs = xs * xs
    out[i] = xs + xs * (_horner(PP, zs) / _horner(QQ, zs))

    i = _in_range(ax, SMALL, MID, xp)
    s = ax[i] - 1.0
    out[i] = xp.copysign(ERX + _horner(PA, s) / _horner(QA, s), flat[i])

    for lo, hi, r_coeffs, s_coeffs in ((MID, TAIL_SPLIT, RA, SA),
                                       (TAIL_SPLIT, BIG, RB, SB)):
        i = _in_range(ax, lo, hi, xp)
        at = ax[i]
        z = 1.0 / (at * at)
        # fdlibm splits x^2 into an exact high part here to keep erfc's *relative* error small;
        # erf = 1 - erfc only needs erfc to absolute accuracy, which the plain square gives.
        erfc = xp.exp(-at * at - 0.5625 + _horner(r_coeffs, z) / _horner(s_coeffs, z)) / at
        out[i] = xp.copysign(1.0 - erfc, flat[i])

    return out.reshape(x.shape).astype(dtype, copy=False)


def erf_derivative(x: Any, xp: Any = np) -> Any:
    """d/dx erf(x) = 2/sqrt(pi) * exp(-x^2), elementwise; same dtype rules as `erf`.

    Computed in float64 for narrower floats so the square does not lose bits before the exp.
    """
    x = xp.asarray(x)
    dtype = _float_dtype(x, "erf_derivative")
    # exp(-40^2) is already 0; clamping first keeps t*t from overflowing (and warning) for huge
    # |x|. minimum() propagates nan.
    t = xp.minimum(xp.abs(x.astype(xp.float64)), 40.0)
    # xp.asarray keeps a 0-d input a 0-d array (NumPy arithmetic would return a scalar).
    return xp.asarray(_TWO_OVER_SQRT_PI * xp.exp(-(t * t))).astype(dtype, copy=False)


# The coefficients and branch edges are public: the Numba backend's branch-free erf evaluates the
# same pieces, and the tests check their bit patterns against fdlibm's.
__all__ = ["erf", "erf_derivative", "ERX", "EFX", "PP", "QQ", "PA", "QA", "RA", "SA", "RB", "SB",
           "SMALL", "MID", "TAIL_SPLIT", "BIG", "TINY"]
