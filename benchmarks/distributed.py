"""Data-parallel cost on this machine: step time and all-reduce time at 1, 2 and 4 processes.

For every (config, process count) it starts `mpiexec -n N python benchmarks/distributed.py
--worker ...` (N = 1: one plain process, no MPI at all) and prints one JSON document.

- `step` rows: the full pre-training step that `tinybert pretrain` takes (forward, backward, the
  gradient all-reduce in `optimizer_step`'s hook, clipping, LAMB) on a synthetic global batch
  of --batch-size sequences of --seq-len tokens with 20 masked positions each, split over the
  N processes. Reported per step on rank 0: the step's seconds and the seconds inside
  `allreduce_gradients` (which include waiting for the slowest process), median over --steps
  after one warm-up step; then `allreduce_synced`: the same reduction of the same gradients
  right after a barrier, i.e. communication alone.
- `allreduce` rows: only the gradient all-reduce, for a model's exact parameter shapes
  (`parameter_shapes`, nothing else allocated), so IB-BERT-LARGE's 1.18 GB of gradients can be
  measured where its training step would not fit in memory four times.

Bandwidths: `algbw` = gradient bytes / seconds; `busbw` = algbw x 2(N-1)/N, the bytes each
process sends and receives in a ring all-reduce per second (NCCL-tests' convention), the
figure to compare with a network link.

    python benchmarks/distributed.py [--processes 1 2 4] [--step-configs mobilebert ...]
        [--allreduce-configs mobilebert ib-bert-large] [--batch-size 8] [--steps 3]

`--project RESULT.json` prints, instead, the ring all-reduce projection over N machines from a
saved result (docs/distributed.md): per step each machine sends and receives 2(N-1)/N x the
gradient bytes, so at a link of B bytes/s communication takes t_c = 2(N-1)/N x bytes / B
(bandwidth term only; latency, 2(N-1) messages per bucket, ignored), and with no overlap of
communication and backward a machine that computes a step in t_s (its 1-process step time at
the same per-machine batch) runs at efficiency t_s / (t_s + t_c) of perfect scaling.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cli  # noqa: E402,F401  (first: per-process thread counts under mpiexec, before NumPy)
import numpy as np  # noqa: E402


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                return [f for f in ("avx2", "avx512f", "avx512_vnni") if f in flags]
    except OSError:
        pass
    return []


# ----- workers (run inside the MPI job) ------------------------------------------------------

def synthetic_batch(config: Any, rows: int, seq_len: int, predictions: int, seed: int) -> Any:
    from tinybert_core.data.pretraining import PretrainingBatch
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, config.vocab_size, (rows, seq_len))
    positions = np.sort(np.stack([rng.choice(np.arange(1, seq_len), predictions, replace=False)
                                  for _ in range(rows)]), axis=1)
    return PretrainingBatch(ids, np.zeros_like(ids), np.ones_like(ids), positions,
                            np.take_along_axis(ids, positions, 1),
                            np.ones((rows, predictions), np.float32),
                            rng.integers(0, 2, rows))


def step_worker(args: argparse.Namespace) -> dict[str, Any]:
    from autograd import optim
    from autograd.distributed import DataParallel
    from tinybert_core import MobileBertConfig, MobileBertForPreTraining
    from tinybert_core.distillation.strategies import pretraining_loss
    from tinybert_core.training.step import optimizer_step

    dp = DataParallel(bucket_mb=args.bucket_mb, busy_wait=args.busy_wait) if args.mpi else None
    rank, size = (dp.rank, dp.size) if dp else (0, 1)
    config = MobileBertConfig.from_pretrained(args.config)
    model = MobileBertForPreTraining(config, seed=0)
    model.train()
    broadcast_s = 0.0
    if dp:
        dp.seed_dropout(model)
        start = time.perf_counter()
        dp.broadcast_parameters(model)
        broadcast_s = time.perf_counter() - start
    opt = optim.LAMB(model, lr=1e-4)
    rows = args.batch_size // size
    steps, reduced = [], []
    for step in range(args.steps + 1):
        batch = synthetic_batch(config, rows, args.seq_len, 20, seed=1000 * step + rank)
        start = time.perf_counter()
        masked = float(batch.masked_lm_weights.sum())
        if dp:
            masked = float(dp.sum([masked])[0])
        num_items = masked / size
        before = dp.stats.allreduce_seconds if dp else 0.0
        optimizer_step(model, opt, [batch],
                       lambda b: pretraining_loss(model, None, b, num_items), 1.0,
                       dp.allreduce_gradients if dp else None)
        if step:                                                  # step 0 warms up
            steps.append(time.perf_counter() - start)
            reduced.append((dp.stats.allreduce_seconds - before) if dp else 0.0)
    out = {"kind": "step", "config": args.config, "processes": size,
           "global_batch": args.batch_size, "batch_per_process": rows, "seq_len": args.seq_len,
           "parameters": sum(p.size for p in model.parameters()),
           "step_s": {"median": statistics.median(steps), "min": min(steps)},
           "allreduce_in_step_s": {"median": statistics.median(reduced), "min": min(reduced)},
           "broadcast_s": broadcast_s, "busy_wait": bool(args.busy_wait),
           "bucket_mb": args.bucket_mb}
    if dp:
        grads = [np.random.default_rng(rank).standard_normal(p.shape).astype(p.dtype)
                 for p in model.parameters()]
        out["allreduce_synced_s"] = synced_allreduce(dp, model, grads, args.repeat)
        out["buckets_per_step"] = dp.stats.buckets // dp.stats.reductions
    return out


def synced_allreduce(dp: Any, model: Any, grads: list[np.ndarray], repeat: int
                     ) -> dict[str, float]:
    times = []
    for _ in range(repeat):
        for p, g in zip(model.parameters(), grads):
            p.grad = g
        dp.barrier()
        start = time.perf_counter()
        dp.allreduce_gradients(model)
        times.append(time.perf_counter() - start)
    return {"median": statistics.median(times), "min": min(times)}


def allreduce_worker(args: argparse.Namespace) -> dict[str, Any]:
    from autograd import nn
    from autograd.distributed import DataParallel
    from tinybert_core import MobileBertConfig
    from tinybert_core.models.counting import parameter_shapes

    dp = DataParallel(bucket_mb=args.bucket_mb, busy_wait=args.busy_wait)
    config = MobileBertConfig.from_pretrained(args.config)
    shapes = parameter_shapes(config, "ForPreTraining")
    model = nn.Module()
    params = []
    for i, shape in enumerate(shapes.values()):
        p = nn.Parameter(np.zeros(shape, np.float32))   # zero pages: never touched
        setattr(model, f"p{i}", p)
        params.append(p)
    rng = np.random.default_rng(dp.rank)
    grads = [rng.standard_normal(p.shape, dtype=np.float32) for p in params]
    out = {"kind": "allreduce", "config": args.config, "processes": dp.size,
           "parameters": int(sum(p.size for p in params)), "busy_wait": bool(args.busy_wait),
           "bucket_mb": args.bucket_mb,
           "allreduce_synced_s": synced_allreduce(dp, model, grads, args.repeat),
           "buckets_per_step": None}
    out["buckets_per_step"] = dp.stats.buckets // dp.stats.reductions
    return out


# ----- the driver ----------------------------------------------------------------------------

def launch(kind: str, config: str, processes: int, args: argparse.Namespace) -> dict[str, Any]:
    worker = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--config", config,
              "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len), "--steps",
              str(args.steps), "--repeat", str(args.repeat), "--bucket-mb", str(args.bucket_mb)]
    if args.busy_wait:
        worker.append("--busy-wait")
    if processes > 1 or kind == "allreduce":
        mpiexec = str(Path(sys.executable).parent / "mpiexec")
        if not Path(mpiexec).is_file():
            mpiexec = shutil.which("mpiexec") or "mpiexec"
        cmd = [mpiexec, "-n", str(processes), *worker, "--mpi"]
    else:
        cmd = worker
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        return {"kind": kind, "config": config, "processes": processes,
                "error": (result.stderr or result.stdout)[-2000:]}
    row = json.loads(result.stdout.strip().splitlines()[-1])
    row["wall_s"] = time.perf_counter() - start
    return row


def add_bandwidth(row: dict[str, Any]) -> None:
    n, synced = row.get("processes", 1), row.get("allreduce_synced_s")
    if not synced or n < 2:
        return
    nbytes = 4 * row["parameters"]
    row["gradient_mb"] = nbytes / 1e6
    row["algbw_gb_s"] = nbytes / synced["min"] / 1e9
    row["busbw_gb_s"] = row["algbw_gb_s"] * 2 * (n - 1) / n


def projection(result: dict[str, Any], gbits: list[float], machines: list[int]
               ) -> dict[str, Any]:
    """The ring all-reduce projection (module docstring) for every config of `result`."""
    step_s = {r["config"]: r["step_s"]["median"] for r in result["rows"]
              if r.get("kind") == "step" and r.get("processes") == 1 and "step_s" in r}
    params = {r["config"]: r["parameters"] for r in result["rows"] if "parameters" in r}
    out = []
    for config, n_params in params.items():
        nbytes = 4 * n_params
        for gbit in gbits:
            link = gbit * 1e9 / 8
            for n in machines:
                comm = 2 * (n - 1) / n * nbytes / link
                row = {"config": config, "gradient_mb": nbytes / 1e6, "link_gbit_s": gbit,
                       "machines": n, "sent_per_machine_mb": 2 * (n - 1) / n * nbytes / 1e6,
                       "allreduce_s": comm,
                       "step_s_for_90pct": 9 * comm}
                if config in step_s:
                    row["step_s"] = step_s[config]
                    row["efficiency"] = step_s[config] / (step_s[config] + comm)
                out.append(row)
    return {"assumes": "ring all-reduce, bandwidth term only, no overlap with backward; step_s "
                       "= the measured 1-process step on this machine", "cpu": result.get("cpu"),
            "rows": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--step-configs", nargs="*", default=["mobilebert", "ib-bert-small"])
    ap.add_argument("--allreduce-configs", nargs="*", default=["mobilebert", "ib-bert-large"])
    ap.add_argument("--batch-size", type=int, default=8, help="global batch (sequences)")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up")
    ap.add_argument("--repeat", type=int, default=3, help="synced all-reduces timed")
    ap.add_argument("--busy-wait", action="store_true", help="MPI's spinning wait")
    ap.add_argument("--bucket-mb", type=float, default=25.0, help="gradient bucket cap (MB)")
    ap.add_argument("--project", type=Path, help="a saved result: print the projection")
    ap.add_argument("--link-gbit", type=float, nargs="+", default=[1, 10, 100],
                    help="link bandwidths for --project (Gbit/s)")
    ap.add_argument("--machines", type=int, nargs="+", default=[2, 4, 8, 16, 64],
                    help="machine counts for --project")
    ap.add_argument("--worker", choices=["step", "allreduce"], help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    ap.add_argument("--mpi", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.project:
        result = json.loads(args.project.read_text())
        print(json.dumps(projection(result, args.link_gbit, args.machines), indent=1))
        return
    if args.worker:
        row = (step_worker if args.worker == "step" else allreduce_worker)(args)
        rank = int(os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0")))
        if rank == 0:
            print(json.dumps(row), flush=True)
        return
    rows = []
    for config in args.step_configs:
        for n in args.processes:
            rows.append(launch("step", config, n, args))
    for config in args.allreduce_configs:
        for n in args.processes:
            if n > 1:
                rows.append(launch("allreduce", config, n, args))
    for row in rows:
        add_bandwidth(row)
    from autograd.distributed import mpi_status
    print(json.dumps({"cpu": cpu_name(), "cpu_flags": cpu_flags(), "cores": os.cpu_count(),
                      "mpi": mpi_status(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
