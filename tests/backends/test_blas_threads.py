"""`backends.blas.blas_threads` and the Numba backend's `matmul` kernel, which uses it."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import backends
from backends import blas, reference


@pytest.mark.skipif(not blas.controllable(), reason="NumPy's BLAS is not an OpenBLAS found here")
def test_blas_threads_sets_and_restores_the_count() -> None:
    setter = blas._setter()
    before = setter(1)              # read the count (by setting one: never more threads than
    setter(before)                  # the pool has, which would start new ones), then restore
    with blas.blas_threads(1):
        assert setter(1) == 1       # inside: one thread
    assert setter(before) == before     # after: the count from before
    with pytest.raises(RuntimeError), blas.blas_threads(1):
        raise RuntimeError("restored on the way out, too")
    assert setter(before) == before


def test_blas_threads_is_a_no_op_without_a_controllable_blas(monkeypatch) -> None:
    monkeypatch.setattr(blas, "_setter", lambda: None)
    with blas.blas_threads(1):
        got = np.ones((4, 5), np.float32) @ np.ones((5, 3), np.float32)
    np.testing.assert_array_equal(got, np.full((4, 3), 5, np.float32))


@given(st.lists(st.integers(1, 3), min_size=0, max_size=2), st.integers(1, 40),
       st.integers(1, 40), st.integers(1, 40), st.booleans(), st.integers(0, 2**32 - 1))
@settings(max_examples=40, deadline=None)
def test_numba_matmul_equals_numpy(batch, m, k, n, broadcast, seed) -> None:
    """Stacked products (one BLAS thread), broadcasting batch axes and plain 2-D products all
    give np.matmul's result (float32 rounding of a different summation order at most)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((*batch, m, k)).astype(np.float32)
    b_batch = [1] * len(batch) if broadcast else batch
    b = rng.standard_normal((*b_batch, k, n)).astype(np.float32)
    got = backends.get_backend("numba").kernel("matmul")(a, b)
    want = reference.matmul(a, b)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.sqrt(k))


def test_matmul_op_runs_the_backend_kernel(monkeypatch) -> None:
    """MatMul's forward and backward go through the kernel table (one path per backend)."""
    from autograd import Tensor
    be = backends.get_backend("numba")
    calls = []
    real = be.kernel("matmul")
    monkeypatch.setitem(be._table, "matmul", lambda a, b: calls.append(a.shape) or real(a, b))
    a = Tensor(np.ones((2, 3, 4), np.float32), device="numba", requires_grad=True)
    b = Tensor(np.ones((2, 4, 5), np.float32), device="numba", requires_grad=True)
    (a @ b).sum().backward()
    assert len(calls) == 3                                  # forward, d/da, d/db
    np.testing.assert_array_equal(np.asarray(a.grad), np.full((2, 3, 4), 5, np.float32))
