"""Examples per second of a sequence-classification fine-tuning step (MobileBERT, batch 32,
seq 128), tinybert against transformers + torch side by side.

One step is what `tinybert finetune` runs: forward with labels, backward, global-norm clip
and AdamW with bias correction (`training/step.py: optimizer_step`). The torch side runs
Hugging Face's MobileBertForSequenceClassification with loss.backward(),
clip_grad_norm_ and torch.optim.AdamW, eager CPU, with torch's default thread count (reported)
in this process. Steps alternate between the two (ours, torch, ours, ...) after one warm-up
step each, so a change in machine load hits both; the median step of each is reported, and
`speedup_vs_torch` = torch seconds / ours (above 1: tinybert is faster). Dropout is on, as in
fine-tuning. PyTorch and transformers are never dependencies; without them only tinybert runs.

Run on an otherwise idle machine (team rule: under both locks):

    flock /tmp/tinybert-train.lock flock /tmp/tinybert-cpu.lock \\
        /work/refvenv/bin/python benchmarks/finetune.py --backends numba,numpy

Prints one JSON document, with the CPU model and instruction-set flags that matter for the
GEMMs (avx2, avx512f, avx512_vnni).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import backends  # noqa: E402
from autograd import optim  # noqa: E402
from tinybert_core import MobileBertConfig, MobileBertForSequenceClassification  # noqa: E402
from tinybert_core.training.step import optimizer_step  # noqa: E402

LR, EPS, WEIGHT_DECAY, CLIP = 5e-5, 1e-6, 0.01, 1.0


def cpu() -> dict:
    """CPU model and the GEMM-relevant instruction-set flags, from /proc/cpuinfo."""
    info = {"model": platform.processor() or platform.machine(), "cpus": os.cpu_count()}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    info.update({"model": fields.get("model name", info["model"]),
                 "family": fields.get("cpu family"), "model_number": fields.get("model"),
                 "isa": [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl",
                                     "avx512_vnni", "avx512_bf16") if f in flags]})
    return info


def make_batch(config: MobileBertConfig, batch: int, seq: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"input_ids": rng.integers(5, config.vocab_size, (batch, seq)),
            "token_type_ids": np.concatenate([np.zeros((batch, seq // 2), np.int64),
                                              np.ones((batch, seq - seq // 2), np.int64)], 1),
            "attention_mask": np.ones((batch, seq), np.int64),
            "labels": rng.integers(0, config.num_labels, batch)}


class Ours:
    def __init__(self, config: MobileBertConfig, data: dict, device: str) -> None:
        self.model = MobileBertForSequenceClassification(config, seed=0).to(device).train()
        self.opt = optim.AdamW(self.model, lr=LR, eps=EPS, weight_decay=WEIGHT_DECAY,
                               bias_correction=True)
        self.data = data

    def step(self) -> None:
        optimizer_step(self.model, self.opt, [self.data],
                       lambda b: {"loss": self.model(**b).loss}, CLIP)


class Torch:
    def __init__(self, config: MobileBertConfig, data: dict) -> None:
        import torch
        import transformers
        self.torch = torch
        cfg = transformers.MobileBertConfig(**{k: v for k, v in config.to_dict().items()
                                               if k != "architectures"})
        self.model = transformers.MobileBertForSequenceClassification(cfg).train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=LR, eps=EPS,
                                     weight_decay=WEIGHT_DECAY)
        self.data = {k: torch.from_numpy(np.ascontiguousarray(v)).long()
                     for k, v in data.items()}

    def step(self) -> None:
        self.model(**self.data).loss.backward()
        self.torch.nn.utils.clip_grad_norm_(self.model.parameters(), CLIP)
        self.opt.step()
        self.opt.zero_grad()


def timed(step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="mobilebert")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--steps", type=int, default=3, help="timed steps per side")
    p.add_argument("--backends", default=None, help="comma list (default: every available)")
    p.add_argument("--no-torch", action="store_true")
    args = p.parse_args()

    config = MobileBertConfig.from_pretrained(args.config, num_labels=3)
    data = make_batch(config, args.batch, args.seq)
    avail = backends.availability()
    names = args.backends.split(",") if args.backends else [n for n, why in avail.items()
                                                            if why is None]
    out: dict = {"what": "sequence-classification fine-tuning step (forward, backward, clip, "
                         "AdamW)", "config": args.config, "batch": args.batch, "seq": args.seq,
                 "parameters": MobileBertForSequenceClassification(config, seed=0)
                 .num_parameters(), "cpu": cpu(),
                 "python": platform.python_version(), "numpy_version": np.__version__}
    sides = {name: Ours(config, data, name) for name in names}
    if not args.no_torch:
        try:
            sides["torch"] = Torch(config, data)
            out["torch"] = {"version": sides["torch"].torch.__version__,
                            "threads": sides["torch"].torch.get_num_threads()}
        except ImportError as e:
            out["torch"] = f"not installed ({e})"
    for side in sides.values():
        side.step()                                  # warm-up: JIT compile, allocations
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.steps):
        for name, side in sides.items():
            times[name].append(timed(side.step))
    for name, ts in times.items():
        median = float(np.median(ts))
        out[name if name != "torch" else "torch_timing"] = {
            "seconds_per_step": median, "all_steps": ts,
            "examples_per_s": args.batch / median}
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if "torch" in times:
        t = float(np.median(times["torch"]))
        out["speedup_vs_torch"] = {name: t / float(np.median(times[name])) for name in names}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
