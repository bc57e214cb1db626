"""Does quantization-aware fine-tuning recover what post-training quantization loses?
float32 vs PTQ-int8 vs QAT-then-int8, same model, seed and schedule, with the majority class
beside each (issue 11's stretch; docs/int8.md, "Quantization-aware fine-tuning").

    python experiments/qat.py MODEL_DIR --task custom --labels a,b,c \\
        --train-file train.tsv --dev-file dev.tsv --out runs/qat --seeds 0 1 2 \\
        --epochs 4 --lr 1e-3 --settings row8 tensor7

For each seed: one plain fine-tuning run (float32); its best checkpoint quantized dynamically
and scored as int8 under each setting (PTQ); and, per setting, one `finetune --qat` run with
that setting, whose best checkpoint is quantized and scored the same way (QAT). Settings:

- row8: activations per row, 8-bit codes (0..255): `tinybert quantize`'s default, and what
  this machine's VNNI kernels compute;
- tensor8: per tensor, 8-bit;
- tensor7: per tensor, 7-bit codes (0..127): the AVX2 kernel's codes. Scored in a child
  process whose Numba target is a Zen 3 without AVX-512/VNNI (`benchmarks/int8.py --avx2`'s
  environment), so the int8 model really runs the AVX2 path's 7-bit quantization.

Every int8 score uses `--backend numba --int8-dispatch always` (every Linear in int8: the
accuracy of int8 itself). Everything goes through the `tinybert` CLI. A step whose output
exists is not run again, so the experiment can be run in pieces (`--seeds 0`, then `1`, ...)
into one OUT; `qat.json` collects every score found there.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograd.serialization import atomic_write_text  # noqa: E402

SETTINGS = {"row8": ("per-row", "8"), "tensor8": ("per-tensor", "8"),
            "tensor7": ("per-tensor", "7")}


def avx2_environment() -> dict[str, str]:
    """A Numba target without AVX-512 and VNNI (benchmarks/int8.py's): int8 runs the AVX2 path
    with 7-bit activation codes."""
    import llvmlite.binding as ll
    features = ll.get_host_cpu_features()
    for name in list(features):
        if name.startswith(("avx512", "avxvnni", "amx", "avx10")):
            features[name] = False
    return {"NUMBA_CPU_NAME": "znver3", "NUMBA_CPU_FEATURES": features.flatten(),
            "NUMBA_CACHE_DIR": str(Path(tempfile.gettempdir()) / "tinybert-numba-avx2")}


def tinybert(*args: str, env: dict[str, str] | None = None) -> dict:
    cmd = [str(Path(sys.executable).with_name("tinybert")), *args, "--json"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr.strip()}")
    return json.loads(done.stdout)


def finetune(args: argparse.Namespace, out: Path, seed: int, qat: list[str]) -> dict:
    if (out / "eval_results.json").is_file():
        return json.loads((out / "eval_results.json").read_text())
    flags = ["--resume"] if (out / "checkpoint.npz").is_file() else []
    return tinybert("finetune", str(args.model_dir), *task_args(args, dev=True),
                    "--output-dir", str(out), "--epochs", str(args.epochs), "--lr",
                    str(args.lr), "--batch-size", str(args.batch_size), "--seed", str(seed),
                    *flags, *qat)


def task_args(args: argparse.Namespace, dev: bool) -> list[str]:
    out = ["--task", args.task, "--train-file", str(args.train_file), "--max-seq-length",
           str(args.max_seq_length)]
    if args.labels:
        out += ["--labels", args.labels]
    return out + (["--dev-file", str(args.dev_file)] if dev else [])


def int8_accuracy(args: argparse.Namespace, model: Path, prefix: Path, setting: str) -> dict:
    """Quantize `model` dynamically as `setting` says (into PREFIX-int8-SETTING) and score it
    with every Linear int8 (PREFIX-eval-int8-SETTING)."""
    activations, bits = SETTINGS[setting]
    qdir = prefix.with_name(f"{prefix.name}-int8-{setting}")
    edir = prefix.with_name(f"{prefix.name}-eval-int8-{setting}")
    if not (qdir / "config.json").is_file():
        tinybert("quantize", str(model), "--output-dir", str(qdir), "--activations",
                 activations, "--report-sequences", "0")
    if not (edir / "eval_results.json").is_file():
        tinybert("--backend", "numba", "--int8-dispatch", "always", "evaluate", str(qdir),
                 *task_args(args, dev=False), "--dev-file", str(args.dev_file),
                 "--output-dir", str(edir), env=avx2_environment() if bits == "7" else None)
    return json.loads((edir / "eval_results.json").read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model_dir", type=Path)
    p.add_argument("--task", required=True)
    p.add_argument("--labels", default=None)
    p.add_argument("--train-file", type=Path, required=True)
    p.add_argument("--dev-file", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=["row8"])
    p.add_argument("--epochs", type=float, default=4.0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-seq-length", type=int, default=64)
    p.add_argument("--float-dir", type=Path, default=None,
                   help="an existing plain fine-tuning run of this setup to use as seed "
                        "--seeds[0]'s float run (its eval_results.json and best/)")
    p.add_argument("--no-qat", action="store_true",
                   help="score the float run's PTQ copies only (what PTQ loses, before "
                        "spending QAT runs on it)")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        run = args.out / f"seed{seed}"
        float_dir = args.float_dir if args.float_dir and seed == args.seeds[0] \
            else run / "float"
        res = finetune(args, float_dir, seed, [])
        rows = {"float32": res["best"], "baseline": res["baseline"],
                "float_run": str(float_dir)}
        for setting in args.settings:
            activations, bits = SETTINGS[setting]
            ptq = int8_accuracy(args, Path(res["best_model"]), run / "ptq", setting)
            if args.no_qat:
                rows[setting] = {"ptq_int8": ptq["metrics"]}
                print(json.dumps({f"seed{seed}/{setting}": rows[setting]}), flush=True)
                continue
            qat_dir = run / f"qat-{setting}"
            qres = finetune(args, qat_dir, seed, ["--qat", "--qat-activations", activations,
                                                  "--qat-activation-bits", bits])
            qat = int8_accuracy(args, Path(qres["best_model"]), qat_dir, setting)
            rows[setting] = {"ptq_int8": ptq["metrics"], "qat_float32": qres["best"],
                             "qat_int8": qat["metrics"], "qat_config": qres["qat"],
                             "qat_seconds_per_epoch": qres["seconds_per_epoch"],
                             "float_seconds_per_epoch": res["seconds_per_epoch"]}
            print(json.dumps({f"seed{seed}/{setting}": rows[setting]}), flush=True)
        atomic_write_text(run / "scores.json", json.dumps(rows, indent=2) + "\n")
    scores = {d.name: json.loads((d / "scores.json").read_text())
              for d in sorted(args.out.glob("seed*")) if (d / "scores.json").is_file()}
    atomic_write_text(args.out / "qat.json", json.dumps(scores, indent=2) + "\n")
    print(json.dumps(scores, indent=2))


if __name__ == "__main__":
    main()
