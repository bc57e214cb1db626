"""Observers: what static quantization learns about a layer's input from calibration batches.

An observer sees each batch of a layer's float input and finally gives the range [lo, hi]
that the int8 model will quantize that input into (`quantize_u8_static`; values outside
clip). Two are provided, as in PyTorch's and ONNX Runtime's calibrators:

- `MinMaxObserver`: the smallest and largest value ever seen. Nothing is clipped on the
  calibration data; one outlier token widens the step for every other value.
- `PercentileObserver`: per batch, the (100 - p)-th and p-th percentiles of the values, averaged
  over batches (p = 99.99 by default). A few extreme values are clipped in exchange for a finer
  step everywhere else; MobileBERT's NoNorm activations, which reach 1e3-1e4 in a handful of
  channels, are the case it is for. Averaging per-batch percentiles (instead of keeping a
  histogram of every value, as TensorRT does) keeps its memory at two numbers per layer.

Both refuse inf and nan: a calibrated range must be finite, and a model that produces either on
real text is broken. The attention mask never reaches an observer: it is added inside the float
softmax, not to any Linear's input (docs/int8.md).
"""
from __future__ import annotations

import numpy as np

DEFAULT_PERCENTILE = 99.99


class MinMaxObserver:
    """The running minimum and maximum of everything observed."""

    name = "minmax"

    def __init__(self) -> None:
        self.lo, self.hi, self.batches = np.inf, -np.inf, 0

    def update(self, x: np.ndarray) -> None:
        lo, hi = float(x.min()), float(x.max())
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError("observer: the calibration activations hold inf or nan")
        self.lo, self.hi, self.batches = min(self.lo, lo), max(self.hi, hi), self.batches + 1

    def range(self) -> tuple[float, float]:
        if not self.batches:
            raise ValueError("observer: no calibration batch reached this layer")
        return self.lo, self.hi


class PercentileObserver:
    """The mean over batches of the per-batch (100 - p)-th and p-th percentiles."""

    name = "percentile"

    def __init__(self, percentile: float = DEFAULT_PERCENTILE) -> None:
        if not 50.0 < percentile <= 100.0:
            raise ValueError(f"PercentileObserver: percentile must lie in (50, 100], got "
                             f"{percentile}")
        self.percentile = percentile
        self.lo_sum = self.hi_sum = 0.0
        self.batches = 0

    def update(self, x: np.ndarray) -> None:
        flat = np.asarray(x, np.float32).reshape(-1)
        if not np.isfinite(flat).all():
            raise ValueError("observer: the calibration activations hold inf or nan")
        lo, hi = np.percentile(flat, [100.0 - self.percentile, self.percentile])
        self.lo_sum, self.hi_sum = self.lo_sum + float(lo), self.hi_sum + float(hi)
        self.batches += 1

    def range(self) -> tuple[float, float]:
        if not self.batches:
            raise ValueError("observer: no calibration batch reached this layer")
        return self.lo_sum / self.batches, self.hi_sum / self.batches


def make_observer(name: str, percentile: float | None = None) -> MinMaxObserver | \
        PercentileObserver:
    if name == "minmax":
        return MinMaxObserver()
    if name == "percentile":
        return PercentileObserver(DEFAULT_PERCENTILE if percentile is None else percentile)
    raise ValueError(f"unknown observer {name!r}; known: minmax, percentile")


__all__ = ["DEFAULT_PERCENTILE", "MinMaxObserver", "PercentileObserver", "make_observer"]
