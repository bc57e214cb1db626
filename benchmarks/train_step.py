"""Seconds per training step of the full MobileBERT pre-training model (batch 8, seq 128).

Prints one JSON document: for each available backend, the median seconds of a full step
(forward, backward, LAMB update), tokens/s, peak resident memory, and a breakdown of where the
time goes — time inside each op's forward/backward (matmul vs the rest), the optimizer, and the
remainder (Python: graph building, module code, dispatch). When PyTorch and transformers happen
to be importable, Hugging Face's MobileBertForPreTraining runs the same shapes side by side in
this process (eager CPU, same thread count) and the ratio tinybert / torch is printed; they are
never dependencies.

Two tinybert variants are timed: "gathered" computes MLM logits only at the 20 masked positions
per sequence (Google's pre-training path, what `tinybert pretrain` runs) and "all_positions"
computes them at every position like HF's MobileBertForPreTraining, so the torch ratio is for
the same work.

    python benchmarks/train_step.py [--steps 3] [--config mobilebert] [--backends numpy,numba]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import backends  # noqa: E402
from autograd import optim  # noqa: E402
from autograd.function import Function  # noqa: E402
from tinybert_core import MobileBertConfig, MobileBertForPreTraining  # noqa: E402

MATMUL_OPS = {"Linear", "MatMul"}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class OpTimer:
    """Accumulates wall time spent in every Function subclass's forward and backward."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._saved: list = []

    def __enter__(self) -> "OpTimer":
        for cls in _all_functions():
            for kind in ("forward", "backward"):
                original = cls.__dict__.get(kind)
                if original is None:
                    continue
                self._saved.append((cls, kind, original))
                setattr(cls, kind, self._wrap(original, f"{cls.__name__}.{kind}"))
        return self

    def _wrap(self, fn, key):
        seconds = self.seconds

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[key] += time.perf_counter() - start
        return timed

    def __exit__(self, *exc) -> None:
        for cls, kind, original in self._saved:
            setattr(cls, kind, original)


def _all_functions() -> list[type]:
    out, stack = [], [Function]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            out.append(sub)
            stack.append(sub)
    return out


def make_batch(config: MobileBertConfig, batch: int, seq: int, predictions: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, config.vocab_size, (batch, seq))
    positions = np.sort(np.stack([rng.choice(np.arange(1, seq), predictions, replace=False)
                                  for _ in range(batch)]), axis=1)
    labels = rng.integers(5, config.vocab_size, (batch, predictions))
    full_labels = np.full((batch, seq), -100)
    np.put_along_axis(full_labels, positions, labels, axis=1)
    return dict(ids=ids, positions=positions, labels=labels, full_labels=full_labels,
                nsp=rng.integers(0, 2, batch), types=np.zeros_like(ids), mask=np.ones_like(ids))


def time_tinybert(config, data, steps: int, device: str, gathered: bool, profile: bool) -> dict:
    model = MobileBertForPreTraining(config, seed=0).to(device)
    model.train()
    opt = optim.LAMB(model, lr=1e-4)

    def step():
        if gathered:
            out = model(data["ids"], attention_mask=data["mask"], token_type_ids=data["types"],
                        labels=data["labels"], next_sentence_label=data["nsp"],
                        masked_positions=data["positions"])
        else:
            out = model(data["ids"], attention_mask=data["mask"], token_type_ids=data["types"],
                        labels=data["full_labels"], next_sentence_label=data["nsp"])
        out.loss.backward()
        t_opt = time.perf_counter()
        opt.step()
        opt.zero_grad()
        return time.perf_counter() - t_opt

    step()                                                     # warm-up (and JIT compile)
    times, opt_times = [], []
    for _ in range(steps):
        start = time.perf_counter()
        opt_times.append(step())
        times.append(time.perf_counter() - start)
    result = {"seconds_per_step": float(np.median(times)), "all_steps": times,
              "optimizer_seconds": float(np.median(opt_times)),
              "tokens_per_s": data["ids"].size / float(np.median(times))}
    if profile:
        with OpTimer() as timer:
            start = time.perf_counter()
            opt_s = step()
            total = time.perf_counter() - start
        ops = dict(sorted(timer.seconds.items(), key=lambda kv: -kv[1]))
        matmul = sum(v for k, v in ops.items() if k.split(".")[0] in MATMUL_OPS)
        in_ops = sum(ops.values())
        result["profile"] = {
            "step_seconds": total, "matmul_seconds": matmul,
            "other_op_seconds": in_ops - matmul, "optimizer_seconds": opt_s,
            "python_and_glue_seconds": total - in_ops - opt_s,
            "top_ops": {k: round(v, 4) for k, v in list(ops.items())[:12]},
        }
    return result


def time_torch(config, data, steps: int) -> dict | None:
    try:
        import torch
        import transformers
    except ImportError:
        return None
    cfg = transformers.MobileBertConfig(**{k: v for k, v in config.to_dict().items()
                                           if k not in ("architectures",)})
    model = transformers.MobileBertForPreTraining(cfg)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    t = {k: torch.from_numpy(np.ascontiguousarray(v)).long()
         for k, v in data.items() if k != "positions"}

    def step():
        out = model(input_ids=t["ids"], attention_mask=t["mask"], token_type_ids=t["types"],
                    labels=t["full_labels"], next_sentence_label=t["nsp"])
        out.loss.backward()
        opt.step()
        opt.zero_grad()

    step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"version": torch.__version__, "threads": torch.get_num_threads(),
            "optimizer": "torch.optim.AdamW (torch has no LAMB; same per-element work order)",
            "seconds_per_step": float(np.median(times)), "all_steps": times,
            "tokens_per_s": data["ids"].size / float(np.median(times))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="mobilebert")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--predictions", type=int, default=20)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--backends", default=None, help="comma list (default: every available)")
    p.add_argument("--no-torch", action="store_true")
    args = p.parse_args()

    config = MobileBertConfig.from_pretrained(args.config)
    data = make_batch(config, args.batch, args.seq, args.predictions)
    avail = backends.availability()
    names = args.backends.split(",") if args.backends else [n for n, why in avail.items()
                                                            if why is None]
    out: dict = {"config": args.config, "batch": args.batch, "seq": args.seq,
                 "parameters": MobileBertForPreTraining(config, seed=0).num_parameters(),
                 "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                             "numpy": np.__version__},
                 "unavailable_backends": {n: why for n, why in avail.items() if why}}
    rss_before = peak_rss_mb()
    for name in names:
        out[name] = {
            "gathered": time_tinybert(config, data, args.steps, name, True, profile=True),
            "all_positions": time_tinybert(config, data, args.steps, name, False, False),
        }
    out["peak_rss_mb_tinybert"] = peak_rss_mb()
    out["peak_rss_mb_at_start"] = rss_before
    torch_result = None if args.no_torch else time_torch(config, data, args.steps)
    out["torch"] = torch_result
    if torch_result:
        out["peak_rss_mb_after_torch"] = peak_rss_mb()
        out["ratio_vs_torch"] = {
            f"{name}_{variant}": out[name][variant]["seconds_per_step"]
            / torch_result["seconds_per_step"]
            for name in names for variant in ("gathered", "all_positions")}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
