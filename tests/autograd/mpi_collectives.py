"""The collectives of autograd/distributed.py checked inside an MPI job; run by
tests/autograd/test_distributed.py as `mpiexec -n 3 python mpi_collectives.py [--busy-wait]`.

Every process prints "ok <rank>" at the end; a failed check prints its traceback and aborts the
whole job, so no process is left waiting in a collective.
"""
from __future__ import annotations

import sys
import traceback

import numpy as np

from autograd import Tensor, nn
from autograd.distributed import DataParallel


class Model(nn.Module):
    """float32 and float64 parameters, initialised differently on every rank."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.a = nn.Parameter(rng.standard_normal((3, 5)).astype(np.float32))
        self.b = nn.Parameter(rng.standard_normal(7))
        self.c = nn.Parameter(rng.standard_normal((4, 4)).astype(np.float32))
        self.unused = nn.Parameter(np.zeros(2, np.float32))
        self.drop = nn.Dropout(0.5, seed=11)


def gradients(rank: int) -> dict[str, np.ndarray | None]:
    """Rank-dependent gradients; `c` has none on rank 1, `unused` none anywhere."""
    return {"a": (rank + 1) * np.arange(15, dtype=np.float32).reshape(3, 5),
            "b": np.arange(7.0) * (rank + 1) + 0.25,
            "c": None if rank == 1 else np.full((4, 4), rank + 1.0, np.float32)}


def main(busy_wait: bool) -> None:
    dp = DataParallel(bucket_mb=40e-6, busy_wait=busy_wait)   # 40 bytes: a bucket each
    rank, size = dp.rank, dp.size

    model = Model(seed=rank)
    dp.broadcast_parameters(model)
    for (name, p), (_, q) in zip(model.named_parameters(), Model(seed=0).named_parameters()):
        assert np.array_equal(p.data, q.data) and p.dtype == q.dtype, name

    for name, g in gradients(rank).items():
        getattr(model, name).grad = g
    dp.allreduce_gradients(model)
    every = [gradients(k) for k in range(size)]
    for name in ("a", "b", "c"):
        expected = sum(g[name] for g in every if g[name] is not None) / size
        got = getattr(model, name).grad
        assert got.dtype == getattr(model, name).dtype, (name, got.dtype)
        np.testing.assert_allclose(got, expected, rtol=1e-6, err_msg=name)
    assert model.unused.grad is None
    assert dp.stats.buckets == 3 and dp.stats.reductions == 1, dp.stats

    assert dp.sum([rank, 1.5]).tolist() == [size * (size - 1) / 2, 1.5 * size]
    assert dp.average({"x": float(rank), "y": 2.0}) == {"x": (size - 1) / 2, "y": 2.0}
    assert dp.allgather_json({"r": rank}) == [{"r": k} for k in range(size)]
    dp.check_same("a value", [1, 2, 3])
    try:
        dp.check_same("the value", ["x", rank, 3])
    except ValueError as e:
        assert str(e) == ("data parallel: the value differs between processes: rank 0 has 0, "
                          "rank 1 has 1"), str(e)
    else:
        raise AssertionError("check_same accepted different values")

    dp.check_in_sync(model)
    if rank == 2:
        model.b.data = model.b.data + 1e-12
    try:
        dp.check_in_sync(model)
    except ValueError as e:
        assert "the model's weights (the processes diverged)" in str(e)
    else:
        raise AssertionError("check_in_sync accepted different weights")

    # Dropout: rank 0 keeps its seed (one process = the plain run), the others differ.
    dp.seed_dropout(model)
    mask = (model.drop(Tensor(np.ones(256, np.float32))).numpy() != 0)
    masks = [np.array(m, bool) for m in dp.allgather_json(mask.tolist())]
    plain = nn.Dropout(0.5, seed=11)(Tensor(np.ones(256, np.float32))).numpy() != 0
    assert np.array_equal(masks[0], plain)
    assert all(not np.array_equal(masks[i], masks[j])
               for i in range(size) for j in range(i + 1, size))

    with dp.main_first():
        pass
    dp.barrier()
    print(f"ok {rank}", flush=True)


if __name__ == "__main__":
    from mpi4py import MPI
    try:
        main(busy_wait="--busy-wait" in sys.argv)
    except BaseException:
        sys.stderr.write(f"rank {MPI.COMM_WORLD.Get_rank()}: {traceback.format_exc()}")
        sys.stderr.flush()
        MPI.COMM_WORLD.Abort(1)
