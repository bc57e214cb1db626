"""MobileBERT forward in int8 against our float32 and against PyTorch's `quantize_dynamic`, as JSON.

MobileBERT (24 layers, random weights, the backbone as `tinybert encode` runs it; --model takes
any preset or model directory's config, e.g. the quickstart's 4-layer student) at sequence
length 128, batch 1 and 8:
- our float32 on the numpy and numba backends;
- our int8 on the numba backend: dynamic (per-row and per-tensor activations) and static
  (min/max calibrated on two random batches), all built from the same float weights, each
  twice: `_always` runs every layer's int8 GEMM (`int8_dispatch("always")`), `_auto` lets
  each layer fall back to float32 where its GEMM is too small for int8 to pay
  (tinybert_core/quantization/dispatch.py; `int8_layers_auto` counts the layers that run int8);
- with torch + transformers importable: HF's MobileBertModel holding the same weights, float32
  and `torch.ao.quantization.quantize_dynamic(..., {nn.Linear}, qint8)`.
All candidates of one batch size are timed interleaved (round-robin, each call after --gap s of
idleness so that no candidate runs while another's thread pool still spins), --repeats rounds;
min and median per candidate, and the speed-ups: `int8_speedup_over_float32` (our best float32
backend / our int8), `int8_time_over_torch_int8` (ours / PyTorch's, goal <= 1.0), PyTorch's own
int8 speed-up, `int8_auto_over_float32_numba` (time of each `_auto` candidate over the float32
model on the same backend: what the fallback controls) and `auto_slower_than_float32`: the
`_auto` candidates whose min is more than 5% above the best float32 min of either backend (for
a model too small for any int8 GEMM to pay, this compares the Numba backend's float path with
NumPy's).

Also:
- `memory`: peak resident memory of a fresh process that loads the float32 or int8 directory
  and runs one batch-8 forward, with the weights' bytes (`model_nbytes`) after loading and
  after the forward (which adds the float32 copies of layers that fell back), and the file size;
- `avx2_emulated` (--avx2): the same float32 / int8 comparison in a child process whose Numba
  target is the host CPU without AVX-512 and VNNI (NUMBA_CPU_NAME=znver3 plus
  NUMBA_CPU_FEATURES, as a Zen 3 is) and whose OpenBLAS uses its Haswell (AVX2) kernels
  (OPENBLAS_CORETYPE): what an AVX2-only machine would see, on this machine's cores;
- `machine`: CPU model, family/model, the int8-relevant instruction set flags, Numba's target,
  the int8 paths it runs, threads, and the load average before and after.

    flock /tmp/tinybert-train.lock flock /tmp/tinybert-cpu.lock \\
        env PYTHONPATH=. /work/refvenv/bin/python benchmarks/int8.py --avx2   # with torch
    python benchmarks/int8.py --no-torch
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if "--threads" in sys.argv[:-1]:          # before NumPy starts the BLAS and OpenMP pools
    _n = sys.argv[sys.argv.index("--threads") + 1]
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                 "NUMBA_NUM_THREADS"):
        os.environ[_var] = _n

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import backends  # noqa: E402
from autograd import no_grad  # noqa: E402
from tinybert_core import MobileBertConfig, load_model, model_class  # noqa: E402
from tinybert_core.quantization import (  # noqa: E402
    int8_dispatch,
    model_nbytes,
    move,
    quantize_model,
)
from tinybert_core.quantization.report import dispatch_plan  # noqa: E402

FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "amx_int8")


# --- the machine -------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    from backends import numba_int8
    info: dict[str, Any] = {"python": platform.python_version(), "numpy": np.__version__,
                            "cpu_count": os.cpu_count()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        first = text.split("\n\n")[0]
        fields = dict(line.split(":", 1) for line in first.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        info["cpu"] = fields.get("model name")
        info["family_model"] = f"{fields.get('cpu family')}/{fields.get('model')}"
        flags = set(fields.get("flags", "").split())
        info["isa"] = [f for f in FLAGS if f in flags]
    except OSError:
        info["cpu"] = platform.processor()
    import llvmlite.binding as ll
    import numba
    info["numba"] = numba.__version__
    info["numba_target"] = numba.config.CPU_NAME or ll.get_host_cpu_name()
    info["numba_target_int8_features"] = sorted(
        f for f in numba_int8.target_features()
        if f in {"avx2", "avx512f", "avx512bw", "avx512vl", "avx512vnni", "avxvnni"})
    info["int8_paths"] = list(numba_int8.available_paths())
    info["int8_activation_bits"] = 8 if numba_int8.activation_max() == 255 else 7
    info["numba_threads"] = numba.get_num_threads()
    info["openblas_coretype"] = os.environ.get("OPENBLAS_CORETYPE")
    return info


# --- timing ------------------------------------------------------------------------------------

def interleaved(candidates: dict[str, Callable[[], Any]], repeats: int, gap: float
                ) -> dict[str, dict[str, float]]:
    """min and median ms per call of each candidate, timed round-robin, each call after `gap`
    seconds of idleness; one untimed warm-up call each first."""
    for fn in candidates.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            time.sleep(gap)
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: {"min_ms": round(min(t) * 1e3, 2),
                   "median_ms": round(statistics.median(t) * 1e3, 2)}
            for name, t in times.items()}


def ids_for(config: MobileBertConfig, batch: int, seq_len: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, config.vocab_size, (batch, seq_len))


def build(args: argparse.Namespace) -> tuple[MobileBertConfig, dict[str, Any]]:
    """Our candidates, all from one set of float weights."""
    config = MobileBertConfig.from_pretrained(args.model)
    float_numpy = model_class(config)(config, seed=0).eval()
    calibration = [{"input_ids": ids_for(config, 4, args.seq_len, seed=s)} for s in (1, 2)]
    models = {"float32_numpy": float_numpy,
              "float32_numba": model_class(config)(config, seed=0).to("numba").eval()}
    for name, kw in (("int8_dynamic_per_row", {}),
                     ("int8_dynamic_per_tensor", {"activations": "per_tensor"}),
                     ("int8_static", {"mode": "static", "calibration": calibration})):
        models[name] = move(quantize_model(float_numpy, **kw), "numba")
    return config, models


def bench_ours(config: MobileBertConfig, models: dict[str, Any], args: argparse.Namespace,
               torch_models: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for batch in args.batch_sizes:
        ids = ids_for(config, batch, args.seq_len)
        candidates: dict[str, Callable[[], Any]] = {}
        for name, model in models.items():
            if name.startswith("float"):
                candidates[name] = (lambda m=model: _forward(m, ids))
                continue
            for mode in ("always", "auto"):
                candidates[f"{name}_{mode}"] = (lambda m=model, d=mode: _forward(m, ids, d))
        if torch_models:
            import torch
            tids = torch.from_numpy(ids)
            for name, model in torch_models.items():
                candidates[name] = (lambda m=model: _torch_forward(m, tids))
        times = interleaved(candidates, args.repeats, args.gap)
        best_float = min(times["float32_numpy"]["min_ms"], times["float32_numba"]["min_ms"])
        result: dict[str, Any] = {"times": times, "int8_speedup_over_float32": {
            name: round(best_float / t["min_ms"], 3) for name, t in times.items()
            if name.startswith("int8")}}
        numba_float = times["float32_numba"]["min_ms"]
        result["int8_auto_over_float32_numba"] = {
            name: round(t["min_ms"] / numba_float, 3) for name, t in times.items()
            if name.endswith("_auto")}
        result["auto_slower_than_float32"] = [
            name for name, t in times.items()
            if name.endswith("_auto") and t["min_ms"] > 1.05 * best_float]
        result["int8_layers_auto"] = {
            name: int8_layer_count(model, ids) for name, model in models.items()
            if name.startswith("int8")}
        if torch_models:
            result["int8_time_over_torch_int8"] = {
                name: round(t["min_ms"] / times["torch_int8_dynamic"]["min_ms"], 3)
                for name, t in times.items() if name.startswith("int8")}
            result["torch_int8_speedup_over_torch_float32"] = round(
                times["torch_float32"]["min_ms"] / times["torch_int8_dynamic"]["min_ms"], 3)
            result["ours_float32_over_torch_float32"] = round(
                best_float / times["torch_float32"]["min_ms"], 3)
        out[str(batch)] = result
    return out


def _forward(model: Any, ids: np.ndarray, dispatch: str = "auto") -> Any:
    with no_grad(), int8_dispatch(dispatch):
        return model(ids)


def int8_layer_count(model: Any, ids: np.ndarray) -> dict[str, int]:
    """How many int8 layer calls of one forward on `ids` run int8 under "auto" here, and how
    many fall back to float32 (`dispatch_plan`)."""
    plan = dispatch_plan(model, {"input_ids": ids})
    runs = [row["runs"] for row in plan]
    return {"int8": runs.count("int8"), "float32": runs.count("float32")}


def _torch_forward(model: Any, ids: Any) -> Any:
    import torch
    with torch.inference_mode():
        return model(ids)


def torch_models(config: MobileBertConfig, float_model: Any) -> dict[str, Any] | str:
    """HF's MobileBertModel with our float weights, and its quantize_dynamic copy."""
    try:
        import torch
        import transformers
    except ImportError as e:
        return f"torch/transformers not importable: {e}"
    transformers.logging.set_verbosity_error()
    fields = {k: v for k, v in config.to_dict().items()
              if k not in ("attention_mask_value", "architectures", "true_hidden_size")}
    hf = transformers.MobileBertModel(transformers.MobileBertConfig(**fields))
    state = {k: torch.from_numpy(v.copy()) for k, v in float_model.state_dict().items()}
    missing, unexpected = hf.load_state_dict(state, strict=False)
    if [k for k in missing if "position_ids" not in k] or unexpected:
        return f"weights do not map onto HF's MobileBertModel: {missing} {unexpected}"
    hf.eval()
    int8 = torch.ao.quantization.quantize_dynamic(hf, {torch.nn.Linear}, dtype=torch.qint8)
    return {"torch_float32": hf, "torch_int8_dynamic": int8}


# --- memory and the AVX2 target: child processes ---------------------------------------------

def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM: unlike getrusage's ru_maxrss, which Linux
    carries over from the parent across fork + exec, it starts afresh in a new process)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def memory_child(directory: str, batch: int, seq_len: int) -> None:
    """Load `directory` on the numba backend, run one forward; print the peak RSS."""
    before = peak_rss_mib()
    model = load_model(directory, "base", device="numba")
    loaded = peak_rss_mib()
    weights = model_nbytes(model)
    _forward(model, ids_for(model.config, batch, seq_len))      # "auto": may add float copies
    print(json.dumps({"peak_rss_before_load_mib": before, "peak_rss_after_load_mib": loaded,
                      "peak_rss_after_forward_mib": peak_rss_mib(),
                      "weights_mib": round(weights / 2**20, 2),
                      "weights_after_forward_mib": round(model_nbytes(model) / 2**20, 2)}))


def bench_memory(config: MobileBertConfig, models: dict[str, Any], args: argparse.Namespace
                 ) -> dict[str, Any]:
    out: dict[str, Any] = {"batch": 8, "seq_len": args.seq_len}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("float32_numpy", "int8_dynamic_per_row"):
            d = Path(tmp) / name
            models[name].save_pretrained(d)
            done = subprocess.run([sys.executable, __file__, "--memory-child", str(d), "8",
                                   str(args.seq_len)], capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=900)
            if done.returncode:
                out[name] = {"error": done.stderr[-2000:]}
                continue
            out[name] = json.loads(done.stdout.strip().splitlines()[-1])
            out[name]["file_mib"] = round((d / "model.safetensors").stat().st_size / 2**20, 2)
    f, q = out.get("float32_numpy", {}), out.get("int8_dynamic_per_row", {})
    if "weights_mib" in f and "weights_mib" in q:
        out["weights_ratio"] = round(f["weights_mib"] / q["weights_mib"], 2)
        out["file_ratio"] = round(f["file_mib"] / q["file_mib"], 2)
        out["peak_rss_ratio"] = round(f["peak_rss_after_forward_mib"]
                                      / q["peak_rss_after_forward_mib"], 2)
        out["model_rss_ratio"] = round(
            (f["peak_rss_after_load_mib"] - f["peak_rss_before_load_mib"])
            / max(q["peak_rss_after_load_mib"] - q["peak_rss_before_load_mib"], 0.1), 2)
    return out


def avx2_environment() -> dict[str, str]:
    import llvmlite.binding as ll
    features = ll.get_host_cpu_features()
    for name in list(features):
        if name.startswith(("avx512", "avxvnni", "amx", "avx10")):
            features[name] = False
    return {"NUMBA_CPU_NAME": "znver3", "NUMBA_CPU_FEATURES": features.flatten(),
            "OPENBLAS_CORETYPE": "Haswell",
            "NUMBA_CACHE_DIR": str(Path(tempfile.gettempdir()) / "tinybert-numba-avx2")}


def bench_avx2(args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--no-torch", "--no-memory", "--repeats",
               str(args.repeats), "--gap", str(args.gap), "--model", args.model,
               "--seq-len", str(args.seq_len), "--batch-sizes", *map(str, args.batch_sizes)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600,
                          env={**os.environ, **avx2_environment(), "PYTHONPATH": str(ROOT)})
    if done.returncode:
        return {"error": done.stderr[-3000:]}
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description="MobileBERT int8 vs float32 forward (JSON)")
    parser.add_argument("--model", default="mobilebert")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--gap", type=float, default=0.2,
                        help="Idle seconds before each timed call.")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--avx2", action="store_true",
                        help="Also time an emulated AVX2-only target (child process).")
    parser.add_argument("--memory-child", nargs=3, metavar=("DIR", "BATCH", "SEQ"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child[0], int(args.memory_child[1]),
                     int(args.memory_child[2]))
        return
    backends.get_backend("numba")        # its process settings before any thread pool starts
    report: dict[str, Any] = {"machine": machine(), "model": args.model,
                              "seq_len": args.seq_len, "repeats": args.repeats,
                              "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    config, models = build(args)
    ref = None
    if not args.no_torch:
        ref = torch_models(config, models["float32_numpy"])
        if isinstance(ref, str):
            report["torch"] = ref
            ref = None
        else:
            import torch
            report["torch"] = {"version": torch.__version__,
                               "threads": torch.get_num_threads(),
                               "quantized_engine": torch.backends.quantized.engine}
    report["forward"] = bench_ours(config, models, args, ref)
    if not args.no_memory:
        report["memory"] = bench_memory(config, models, args)
    if args.avx2:
        report["avx2_emulated"] = bench_avx2(args)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
