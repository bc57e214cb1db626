"""Data parallelism over MPI: every process holds the whole model and trains on its own slice of
each global batch; the gradients are averaged so that every process applies the same update.

The order a training run meets it in (ChainerMN's flat communicator and PyTorch DDP's reducer,
written for NumPy arrays):
1. `broadcast_parameters(model)`: before the first step, after checking that every process
   built the same parameter names, shapes and dtypes, rank 0's weights are copied to all (DDP's
   `_sync_module_states`), packed into the same flat buckets as the gradients.
2. Each process runs forward and backward on its slice (data sharding: `data/pretraining.py`).
3. `allreduce_gradients(model)`, the `reduce_gradients` hook of `training/step.py`: the
   gradients are packed, in reverse parameter order (roughly the order backward finishes them),
   into flat buckets of at most `bucket_mb` MB (DDP's default is 25 MB); each bucket is summed
   across processes by one in-place `Iallreduce` on its NumPy buffer (mpi4py's buffer API: the
   pickling lower-case `allreduce` is about 13x slower) and scaled by 1 / size; each gradient
   then becomes a view of its reduced bucket (DDP's `gradient_as_bucket_view`; every reduction
   allocates fresh buckets, so no later step writes into them). A parameter with a gradient on
   any process is reduced, with zeros where it had none (ChainerMN's `zero_fill`); one with no
   gradient anywhere keeps None, as it would in one process.
4. Clipping and the optimizer run on the averaged gradient, identical everywhere, so the
   optimizer state is never communicated.

Waiting. MPI libraries wait for a message by spinning on a core, which on an oversubscribed
machine takes the core from a process that is still computing. By default a process here waits
with `MPI_Testall` and a sleep of 20 us doubling up to 200 us (up to 5 ms once it has waited
a second: rank 0 evaluating, or building the token cache). Measured here (2-core Zen 4, MPICH
5.0.2, four 25 MB buckets): with 4 processes on 2 cores, rank 0's 0.43 s computation took
0.87 s while the 3 others spun in MPI's wait, 0.45 s while they slept; the all-reduce itself
took 42 ms (2 processes) and 105 ms (4) spinning, 46 and 105 ms sleeping (a 1 ms cap: 58 and
123 ms). `busy_wait=True` uses the library's own blocking wait.

mpi4py is imported only when a `DataParallel` is created or `mpi_status` is called, so tinybert
needs it only for MPI runs (`pip install "tinybert[mpi]"`). Small metadata (layouts, generator
states) travels as JSON in byte buffers: nothing here pickles.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from autograd import nn
from autograd.module import Module, Parameter

DEFAULT_BUCKET_MB = 25.0
INSTALL_HINT = 'pip install "tinybert[mpi]" (mpi4py and MPICH from PyPI)'


class MPIUnavailable(RuntimeError):
    """mpi4py (or the MPI library under it) cannot be loaded."""


def import_mpi() -> Any:
    """`mpi4py.MPI` (initialising MPI on first import), or MPIUnavailable saying what to install."""
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError, OSError) as e:  # no mpi4py, or no MPI library under it
        raise MPIUnavailable(f"data-parallel training needs mpi4py and an MPI library: "
                             f"{INSTALL_HINT} ({e})") from e
    return MPI


def mpi_status() -> dict[str, Any]:
    """What `tinybert backends` reports: is MPI usable here, which library, and this process's
    rank and world size (1 when not started by mpiexec)."""
    try:
        MPI = import_mpi()
    except MPIUnavailable as e:
        return {"available": False, "reason": str(e)}
    import mpi4py
    return {"available": True, "reason": None, "mpi4py_version": mpi4py.__version__,
            "library": " ".join(MPI.Get_library_version().splitlines()[0].split()),
            "world_size": MPI.COMM_WORLD.Get_size(), "rank": MPI.COMM_WORLD.Get_rank()}


def bucket_plan(sizes: Sequence[int], dtypes: Sequence[Any], cap_bytes: int) -> list[list[int]]:
    """Indices of the tensors in each bucket: tensors taken in reverse order, one open bucket
    per dtype, a bucket closed when the next tensor would take it past `cap_bytes` (a tensor
    larger than the cap gets a bucket of its own). Buckets come in the order they were closed,
    so the last parameters' gradients, the first ready, go first."""
    if cap_bytes <= 0:
        raise ValueError(f"bucket_plan: cap_bytes must be positive, got {cap_bytes}")
    done: list[list[int]] = []
    open_: dict[str, tuple[list[int], int]] = {}
    for i in range(len(sizes) - 1, -1, -1):
        dtype = np.dtype(dtypes[i])
        nbytes = int(sizes[i]) * dtype.itemsize
        members, held = open_.get(dtype.str, ([], 0))
        if members and held + nbytes > cap_bytes:
            done.append(members)
            members, held = [], 0
        open_[dtype.str] = (members + [i], held + nbytes)
    done.extend(members for members, _ in open_.values() if members)
    return done


@dataclass
class CommStats:
    """Time and volume of the gradient all-reduces (packing, reduction, unpacking)."""

    allreduce_seconds: float = 0.0
    allreduce_bytes: int = 0
    buckets: int = 0
    reductions: int = 0


class DataParallel:
    """One process's view of a data-parallel job: its rank, the world size, and the collectives
    the training loop needs (see the module docstring).

    `comm` defaults to MPI.COMM_WORLD; `bucket_mb` is the gradient bucket cap in MB (10^6
    bytes, as DDP's bucket_cap_mb); `busy_wait` uses MPI's spinning wait instead of sleeping.
    """

    def __init__(self, comm: Any = None, *, bucket_mb: float = DEFAULT_BUCKET_MB,
                 busy_wait: bool = False) -> None:
        if not bucket_mb > 0:
            raise ValueError(f"DataParallel: bucket_mb must be positive, got {bucket_mb}")
        self.MPI = import_mpi()
        self.comm = self.MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.bucket_bytes = max(1, int(bucket_mb * 1e6))
        self.busy_wait = busy_wait
        self.stats = CommStats()

    def __repr__(self) -> str:
        return f"DataParallel(rank={self.rank}, size={self.size})"

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that prints, logs, checkpoints and saves the model."""
        return self.rank == 0

    # --- waiting and small collectives --------------------------------------------------------
    def wait(self, requests: list[Any]) -> None:
        """Complete `requests`, sleeping between polls unless `busy_wait` (module docstring)."""
        if self.busy_wait:
            self.MPI.Request.Waitall(requests)
            return
        start, delay = time.perf_counter(), 2e-5
        while not self.MPI.Request.Testall(requests):
            time.sleep(delay)
            cap = 2e-4 if time.perf_counter() - start < 1.0 else 5e-3
            delay = min(2 * delay, cap)

    def barrier(self) -> None:
        self.wait([self.comm.Ibarrier()])

    def sum(self, values: Sequence[float]) -> np.ndarray:
        """The element-wise sum over processes of `values`, in float64."""
        buf = np.array(values, dtype=np.float64)
        self.wait([self.comm.Iallreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)])
        return buf

    def average(self, values: dict[str, float]) -> dict[str, float]:
        """Each value averaged over processes (every process passes the same keys)."""
        names = sorted(values)                       # the same order in every process
        totals = dict(zip(names, (self.sum([values[k] for k in names]) / self.size).tolist()))
        return {k: totals[k] for k in values}

    def allgather_json(self, obj: Any) -> list[Any]:
        """`obj` (anything JSON can hold) from every process, in rank order."""
        data = np.frombuffer(json.dumps(obj).encode("utf-8"), dtype=np.uint8)
        lengths = np.zeros(self.size, dtype=np.int64)
        self.wait([self.comm.Iallgather(np.array([data.size], np.int64), lengths)])
        out = np.empty(int(lengths.sum()), dtype=np.uint8)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        self.wait([self.comm.Iallgatherv(data, [out, lengths, offsets, self.MPI.BYTE])])
        return [json.loads(out[o:o + n].tobytes().decode("utf-8"))
                for o, n in zip(offsets.tolist(), lengths.tolist())]

    def check_same(self, what: str, value: Any) -> None:
        """Raise ValueError on every process unless all hold the same JSON-able `value`."""
        values = self.allgather_json(value)
        differ = [r for r, v in enumerate(values) if v != values[0]]
        if not differ:
            return
        first, other = values[0], values[differ[0]]
        if isinstance(first, list) and isinstance(other, list):
            # Name the first differing entry, not two long lists.
            k = next((k for k, (a, b) in enumerate(zip(first, other)) if a != b),
                     min(len(first), len(other)))
            first = first[k] if k < len(first) else f"nothing at entry {k}"
            other = other[k] if k < len(other) else f"nothing at entry {k}"
        raise ValueError(f"data parallel: {what} differs between processes: rank 0 has "
                         f"{_short(first)}, rank {differ[0]} has {_short(other)}")

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Run the body on rank 0 first, then on the others: rank 0 creates shared files
        (token caches, a trained vocabulary) that the others then read."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()

    def abort(self, message: str, code: int = 1) -> NoReturn:
        """Print `message` on this process's stderr and end every process of the job.

        The short pause lets mpiexec forward the message before MPI_Abort tears the job down
        (without it, one run in eight lost it here)."""
        sys.stderr.write(message.rstrip("\n") + "\n")
        sys.stderr.flush()
        time.sleep(0.3)
        self.comm.Abort(code)
        raise SystemExit(code)  # not reached: Abort does not return

    # --- parameters and gradients -------------------------------------------------------------
    def broadcast_parameters(self, model: Module) -> None:
        """Copy rank 0's parameters to every process, after checking that all processes built
        the same parameter names, shapes and dtypes (the order of the buckets depends on it)."""
        named = list(model.named_parameters())
        self.check_same("the model's parameters (name, shape, dtype)",
                        [[n, list(p.shape), str(p.dtype)] for n, p in named])
        params = [p for _, p in named]
        buckets = self._buckets(params)
        for members in buckets:
            buf = self._pack([params[i].data for i in members], params, members)
            self.wait([self.comm.Ibcast(buf, root=0)])
            for i, view in zip(members, self._views(buf, params, members)):
                p = params[i]
                p.data = p.backend.asarray(view.copy())

    def check_in_sync(self, model: Module) -> None:
        """Raise ValueError on every process unless all hold bit-identical parameters (a
        SHA-256 of them; the training loop checks at every checkpoint)."""
        digest = hashlib.sha256()
        for _, p in model.named_parameters():
            digest.update(np.ascontiguousarray(p.backend.to_numpy(p.data)).tobytes())
        self.check_same("the model's weights (the processes diverged)", digest.hexdigest())

    def seed_dropout(self, model: Module) -> None:
        """Give every process its own dropout masks: rank r > 0 reseeds each Dropout from
        (its seed, r); rank 0 keeps its seeds, so a one-process job is the plain run."""
        if self.is_main:
            return
        for _, module in model.named_modules():
            if isinstance(module, nn.Dropout) and module.seed is not None:
                seed = np.random.SeedSequence([module.seed, self.rank]).generate_state(1)[0]
                module.reseed(int(seed))

    def allreduce_gradients(self, model: Module) -> None:
        """Replace every gradient by its average over the processes (module docstring, 3)."""
        start = time.perf_counter()
        params = model.parameters()
        present = np.array([p.grad is not None for p in params], dtype=np.uint8)
        self.wait([self.comm.Iallreduce(self.MPI.IN_PLACE, present, op=self.MPI.MAX)])
        chosen = [p for p, flag in zip(params, present.tolist()) if flag]
        filled, requests = [], []
        for members in self._buckets(chosen):
            buf = self._pack([chosen[i].grad for i in members], chosen, members)
            requests.append(self.comm.Iallreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM))
            filled.append((members, buf))
        self.wait(requests)
        scale = 1.0 / self.size
        for members, buf in filled:
            buf *= buf.dtype.type(scale)
            for i, view in zip(members, self._views(buf, chosen, members)):
                p = chosen[i]
                p.grad = p.backend.asarray(view)
            self.stats.allreduce_bytes += buf.nbytes
        self.stats.buckets += len(filled)
        self.stats.reductions += 1
        self.stats.allreduce_seconds += time.perf_counter() - start

    def _buckets(self, params: Sequence[Parameter]) -> list[list[int]]:
        return bucket_plan([p.size for p in params], [p.dtype for p in params],
                           self.bucket_bytes)

    @staticmethod
    def _pack(arrays: Sequence[Any], params: Sequence[Parameter],
              members: Sequence[int]) -> np.ndarray:
        """One flat host buffer holding `arrays` (None: zeros) back to back."""
        dtype = params[members[0]].dtype
        buf = np.empty(sum(params[i].size for i in members), dtype=dtype)
        offset = 0
        for i, array in zip(members, arrays):
            p = params[i]
            chunk = buf[offset:offset + p.size]
            if array is None:
                chunk[...] = 0
            else:
                chunk[...] = p.backend.to_numpy(array).reshape(-1)
            offset += p.size
        return buf

    @staticmethod
    def _views(buf: np.ndarray, params: Sequence[Parameter],
               members: Sequence[int]) -> Iterator[np.ndarray]:
        offset = 0
        for i in members:
            p = params[i]
            yield buf[offset:offset + p.size].reshape(p.shape)
            offset += p.size


def _short(value: Any, limit: int = 200) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "..."
