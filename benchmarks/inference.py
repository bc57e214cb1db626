"""Forward latency of MobileBERT and BERT-base (random weights, eval mode, no grad), as JSON.

For every available backend (`backends.availability()`): batch 1 and batch 8 at seq 128 by
default, the MobileBERT / BERT-base latency ratio, and, when torch + transformers can be
imported (never a dependency), the same for Hugging Face's eager PyTorch CPU forward (default
attention implementation and the "eager" one), plus tinybert / torch ratios. Each number is the
minimum and the median of --repeat timed calls after one warm-up call; minima are the stable
figure on a busy machine. Pass --profile to add a cProfile summary of one tinybert forward.

--interleaved times the backends (and PyTorch's eager sdpa forward) against each other instead:
for each model and batch size, --repeat rounds in which every candidate runs once, each call
after --gap seconds of idleness (so that no candidate's thread pool still spins while another
runs), in a rotating order (so that no candidate always follows the same one). Beside min and
median per candidate it reports the paired ratios: in each round, a backend's time over the
NumPy reference's (and over PyTorch's) from the same round, then their median and range. Load
from other processes hits both sides of a pair, so the paired median is the figure to trust.

Usage:
    python benchmarks/inference.py [--seq-len 128] [--batch-sizes 1 8] [--repeat 5] [--threads N]
    python benchmarks/inference.py --interleaved --repeat 15 --models mobilebert
    PYTHONPATH=. /work/refvenv/bin/python benchmarks/inference.py   # with the torch reference
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# --threads N must reach the BLAS / OpenMP / Numba pools before they start, i.e. before NumPy.
if "--threads" in sys.argv[:-1]:
    _n = sys.argv[sys.argv.index("--threads") + 1]
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                 "NUMBA_NUM_THREADS"):
        os.environ[_var] = _n

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import backends
from autograd import no_grad
from tinybert_core import MobileBertConfig, model_class

MODELS = ("mobilebert", "bert-base")


def timed(fn: Callable[[], Any], repeat: int) -> dict[str, float]:
    fn()                                                      # warm-up (allocations, caches)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"min_ms": round(min(times) * 1e3, 2),
            "median_ms": round(statistics.median(times) * 1e3, 2)}


def input_ids(config: MobileBertConfig, batch: int, seq_len: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, config.vocab_size, (batch, seq_len))


def bench_tinybert(device: str, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in args.models:
        config = MobileBertConfig.from_pretrained(name)
        model = model_class(config)(config, seed=0).to(device).eval()
        out[name] = {}
        for batch in args.batch_sizes:
            ids = input_ids(config, batch, args.seq_len)
            with no_grad():
                out[name][str(batch)] = timed(lambda m=model, x=ids: m(x), args.repeat)
    return out


def bench_torch(args: argparse.Namespace) -> dict[str, Any]:
    try:
        import torch
        import transformers
    except ImportError as e:
        return {"unavailable": f"torch/transformers not importable: {e}"}
    transformers.logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    out: dict[str, Any] = {"torch": torch.__version__, "transformers": transformers.__version__,
                           "threads": torch.get_num_threads()}
    for attn in ("sdpa", "eager"):
        res: dict[str, Any] = {}
        for name in args.models:
            config = MobileBertConfig.from_pretrained(name)
            fields = {k: v for k, v in config.to_dict().items()
                      if k not in ("attention_mask_value", "architectures", "true_hidden_size")}
            if config.model_type == "mobilebert":
                model = transformers.MobileBertModel(transformers.MobileBertConfig(
                    **fields, attn_implementation=attn))
            else:
                model = transformers.BertModel(transformers.BertConfig(
                    **fields, attn_implementation=attn))
            model.eval()
            res[name] = {}
            for batch in args.batch_sizes:
                ids = torch.from_numpy(input_ids(config, batch, args.seq_len))
                with torch.inference_mode():
                    res[name][str(batch)] = timed(lambda m=model, x=ids: m(x), args.repeat)
        out[f"attn_{attn}"] = res
    return out


def torch_model(name: str, attn: str = "sdpa") -> Any:
    import transformers
    transformers.logging.set_verbosity_error()
    config = MobileBertConfig.from_pretrained(name)
    fields = {k: v for k, v in config.to_dict().items()
              if k not in ("attention_mask_value", "architectures", "true_hidden_size")}
    if config.model_type == "mobilebert":
        return transformers.MobileBertModel(transformers.MobileBertConfig(
            **fields, attn_implementation=attn)).eval()
    return transformers.BertModel(transformers.BertConfig(
        **fields, attn_implementation=attn)).eval()


def bench_interleaved(devices: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Every candidate once per round, rotating order, --gap s idle before each call."""
    torch = None
    if not args.no_torch:
        try:
            import torch
            if args.threads:
                torch.set_num_threads(args.threads)
        except ImportError:
            torch = None
    out: dict[str, Any] = {}
    for name in args.models:
        config = MobileBertConfig.from_pretrained(name)
        models = {d: model_class(config)(config, seed=0).to(d).eval() for d in devices}
        ref = torch_model(name) if torch is not None else None
        out[name] = {}
        for batch in args.batch_sizes:
            ids = input_ids(config, batch, args.seq_len)
            calls: dict[str, Callable[[], Any]] = {}
            for d, m in models.items():
                calls[d] = (lambda m=m: _no_grad_call(m, ids))
            if ref is not None:
                tids = torch.from_numpy(ids)
                calls["torch"] = (lambda: _torch_call(torch, ref, tids))
            for fn in calls.values():
                fn()                                              # warm-up
            names = list(calls)
            times: dict[str, list[float]] = {n: [] for n in names}
            for r in range(args.repeat):
                for n in names[r % len(names):] + names[:r % len(names)]:
                    time.sleep(args.gap)
                    start = time.perf_counter()
                    calls[n]()
                    times[n].append(time.perf_counter() - start)
            res: dict[str, Any] = {n: {"min_ms": round(min(t) * 1e3, 2),
                                       "median_ms": round(statistics.median(t) * 1e3, 2)}
                                   for n, t in times.items()}
            for base in ("numpy", "torch"):
                if base not in times:
                    continue
                for n in names:
                    if n == base:
                        continue
                    paired = [a / b for a, b in zip(times[n], times[base])]
                    res[f"{n}_over_{base}"] = {
                        "paired_median": round(statistics.median(paired), 3),
                        "paired_range": [round(min(paired), 3), round(max(paired), 3)],
                        "min_over_min": round(min(times[n]) / min(times[base]), 3)}
            out[name][str(batch)] = res
    return out


def _no_grad_call(model: Any, ids: np.ndarray) -> Any:
    with no_grad():
        return model(ids)


def _torch_call(torch: Any, model: Any, ids: Any) -> Any:
    with torch.inference_mode():
        return model(ids)


def ratio(a: dict, b: dict, key: str = "min_ms") -> float:
    return round(a[key] / b[key], 3)


def profile_forward(args: argparse.Namespace, device: str) -> list[str]:
    config = MobileBertConfig.from_pretrained(args.models[0])
    model = model_class(config)(config, seed=0).to(device).eval()
    ids = input_ids(config, args.batch_sizes[0], args.seq_len)
    with no_grad():
        model(ids)
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(args.repeat):
            model(ids)
        prof.disable()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(12)
    return [line for line in text.getvalue().splitlines() if line.strip()][-14:]


def _cpu() -> dict[str, Any]:
    """CPU model, family/model and the vector instruction sets that matter here."""
    try:
        first = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
    except OSError:
        return {}
    fields = {k.strip(): v.strip() for k, _, v in
              (line.partition(":") for line in first.splitlines())}
    flags = set(fields.get("flags", "").split())
    return {"model": fields.get("model name"),
            "family_model": f"{fields.get('cpu family')}/{fields.get('model')}",
            "isa": [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni")
                    if f in flags]}


def main() -> None:
    parser = argparse.ArgumentParser(description="tinybert forward latency (JSON)")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--threads", type=int, default=None,
                        help="Threads for BLAS, OpenMP, Numba and torch (default: theirs).")
    parser.add_argument("--no-torch", action="store_true", help="Skip the PyTorch reference.")
    parser.add_argument("--profile", action="store_true", help="Add a cProfile summary.")
    parser.add_argument("--interleaved", action="store_true",
                        help="Time backends and torch round-robin, with paired ratios.")
    parser.add_argument("--gap", type=float, default=0.2,
                        help="--interleaved: idle seconds before each timed call.")
    args = parser.parse_args()

    report: dict[str, Any] = {
        "seq_len": args.seq_len, "repeat": args.repeat, "numpy": np.__version__,
        "cpu_count": os.cpu_count(), "threads": args.threads or "default",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "tinybert": {}, "unavailable_backends": {},
    }
    if args.interleaved:
        # availability() loads each backend: numba's OpenMP settings before any pool starts
        available = [d for d, why in backends.availability().items() if why is None]
        report["cpu"] = _cpu()
        report["interleaved"] = bench_interleaved(available, args)
        report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        print(json.dumps(report, indent=2))
        return
    for device, reason in backends.availability().items():
        if reason is None:
            report["tinybert"][device] = bench_tinybert(device, args)
        else:
            report["unavailable_backends"][device] = reason
    if {"mobilebert", "bert-base"} <= set(args.models):
        report["mobilebert_over_bert_base"] = {
            device: {b: ratio(res["mobilebert"][b], res["bert-base"][b])
                     for b in res["mobilebert"]} for device, res in report["tinybert"].items()}
    if not args.no_torch:
        ref = bench_torch(args)
        report["reference"] = ref
        if "attn_sdpa" in ref:
            for attn in ("attn_sdpa", "attn_eager"):
                res = ref[attn]
                if {"mobilebert", "bert-base"} <= set(res):
                    ref[f"mobilebert_over_bert_base_{attn}"] = {
                        b: ratio(res["mobilebert"][b], res["bert-base"][b])
                        for b in res["mobilebert"]}
            report["tinybert_over_torch"] = {
                device: {name: {b: ratio(times[b], ref["attn_sdpa"][name][b])
                                for b in times} for name, times in res.items()}
                for device, res in report["tinybert"].items()}
    if args.profile:
        report["profile_numpy"] = profile_forward(args, "numpy")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
