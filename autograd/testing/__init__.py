"""autograd.testing: check your own ops the way tinybert checks its own.

    from autograd.testing import assert_gradients, check_op, assert_fused_matches_composite
    from autograd.testing.strategies import binary_shapes, floats, away_from

- `assert_gradients(fn, *inputs)`: float64 gradcheck that raises with the full report (every
  input's largest absolute and relative errors, where, and the tolerances).
- `assert_forward(out, expected)`: values, shape and dtype against a plain-NumPy expectation.
- `check_op(op, expected_forward, shapes, ...)`: both of those over hypothesis-drawn shapes and
  values, on every available backend (Chainer's op-test pattern in one call).
- `assert_backends_agree(fn, *arrays)`: each backend's output and gradients against NumPy's.
- `assert_fused_matches_composite(fused, composite, *arrays)`: a fused op against the
  composition of primitives it replaces, forward and backward.
- `autograd.testing.strategies`: the hypothesis strategies tinybert's op tests draw from
  (shapes, broadcastable pairs, matmul signatures, floats away from kinks).

The strategies and `check_op` need hypothesis (`pip install "tinybert[testing]"`); the other
checks need nothing beyond tinybert. docs/auditing.md walks through adding an op with them.
"""
from __future__ import annotations

from autograd.testing.checks import (
    assert_backends_agree,
    assert_forward,
    assert_fused_matches_composite,
    assert_gradients,
    available_backends,
    check_op,
    leaf,
)

__all__ = ["assert_backends_agree", "assert_forward", "assert_fused_matches_composite",
           "assert_gradients", "available_backends", "check_op", "leaf"]
