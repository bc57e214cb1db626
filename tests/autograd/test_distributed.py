"""autograd/distributed.py: the bucket plan (no MPI needed) and the collectives inside a real
3-process MPI job (`mpi` tests, skipped with a reason when mpi4py or mpiexec is missing)."""
from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autograd.distributed import bucket_plan
from mpi_launch import needs_mpi, run
from paths import TESTS


def test_buckets_take_parameters_in_reverse_order_up_to_the_cap():
    f32 = np.float32
    assert bucket_plan([10, 10, 10], [f32] * 3, cap_bytes=80) == [[2, 1], [0]]
    # A parameter larger than the cap gets a bucket of its own.
    assert bucket_plan([100, 1, 1], [f32] * 3, cap_bytes=40) == [[2, 1], [0]]
    assert bucket_plan([1, 100, 1], [f32] * 3, cap_bytes=40) == [[2], [1], [0]]
    # One open bucket per dtype; float64 and float32 never share a buffer.
    assert bucket_plan([2, 2, 2, 2], [f32, np.float64, f32, np.float64], cap_bytes=1000) == \
        [[3, 1], [2, 0]]
    with pytest.raises(ValueError, match="cap_bytes must be positive"):
        bucket_plan([1], [f32], cap_bytes=0)


@given(st.lists(st.tuples(st.integers(0, 50), st.sampled_from(["f4", "f8"])), max_size=30),
       st.integers(1, 400))
def test_bucket_plan_properties(params, cap):
    sizes = [s for s, _ in params]
    dtypes = [d for _, d in params]
    plan = bucket_plan(sizes, dtypes, cap)
    flat = [i for bucket in plan for i in bucket]
    assert sorted(flat) == list(range(len(params)))                  # each exactly once
    itemsize = {"f4": 4, "f8": 8}
    last_of_dtype: dict[str, list[int]] = {}
    for bucket in plan:
        assert bucket and bucket == sorted(bucket, reverse=True)       # reverse order
        assert len({dtypes[i] for i in bucket}) == 1                   # one dtype
        nbytes = sum(sizes[i] * itemsize[dtypes[i]] for i in bucket)
        assert nbytes <= cap or len(bucket) == 1                       # the cap, or alone
        prev = last_of_dtype.get(dtypes[bucket[0]])
        if prev is not None:                                           # greedy: it did not fit
            held = sum(sizes[i] * itemsize[dtypes[i]] for i in prev)
            assert held + sizes[bucket[0]] * itemsize[dtypes[bucket[0]]] > cap
        last_of_dtype[dtypes[bucket[0]]] = bucket


@needs_mpi
@pytest.mark.parametrize("wait", ["sleeping", "busy"])
def test_collectives_in_three_processes(wait):
    argv = [str(TESTS / "autograd" / "mpi_collectives.py")]
    if wait == "busy":
        argv.append("--busy-wait")
    result, _ = run(3, argv, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    # mpiexec forwards each process's lines as they come, not necessarily one per line.
    assert sorted(re.findall(r"ok \d", result.stdout)) == ["ok 0", "ok 1", "ok 2"], result.stdout
