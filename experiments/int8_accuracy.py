"""float32 vs int8 on a fine-tuned task: quantize one fine-tuned model in every mode and score
each copy on the dev file, next to the float model and the majority class (issue 11's accuracy
table, docs/int8.md).

    python experiments/int8_accuracy.py FINETUNED_MODEL_DIR --task rte \\
        --train-file ../shared/data/glue/epistemic/train.tsv \\
        --dev-file ../shared/data/glue/epistemic/dev.tsv --out runs/int8-acc/epistemic

Modes: dynamic per-row and per-tensor activations; static min/max and percentile ranges
calibrated on the task's own training sentences (each sentence of the first
--calibration-examples rows on a line; never the dev file). Every int8 copy is scored twice:
with `--int8-dispatch always` (every Linear runs the int8 GEMM: the accuracy of int8 itself)
and `auto` (what a user gets by default: small GEMMs fall back to float32, docs/int8.md), on
the numba backend. Everything goes through the `tinybert` CLI, as a user would run it; OUT
gets one directory per copy and `int8_accuracy.json` with every score.
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograd.serialization import atomic_write_text  # noqa: E402

MODES = {"dynamic-per-row": ["--mode", "dynamic", "--activations", "per-row"],
         "dynamic-per-tensor": ["--mode", "dynamic", "--activations", "per-tensor"],
         "static-minmax": ["--mode", "static", "--observer", "minmax"],
         "static-percentile": ["--mode", "static", "--observer", "percentile"]}


def tinybert(*args: str) -> dict:
    cmd = [str(Path(sys.executable).with_name("tinybert")), *args, "--json"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr.strip()}")
    return json.loads(done.stdout)


def calibration_text(train_file: Path, rows: int, out: Path) -> Path:
    with open(train_file, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        lines = []
        for i, row in enumerate(reader):
            if i >= rows:
                break
            lines += [row[k] for k in ("sentence1", "sentence2", "sentence") if row.get(k)]
    path = out / "calibration.txt"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model_dir", type=Path)
    p.add_argument("--task", required=True)
    p.add_argument("--train-file", type=Path, required=True)
    p.add_argument("--dev-file", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--max-seq-length", type=int, default=64)
    p.add_argument("--calibration-examples", type=int, default=256)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=False)
    calib = calibration_text(args.train_file, args.calibration_examples, args.out)
    task = ["--task", args.task, "--dev-file", str(args.dev_file), "--train-file",
            str(args.train_file), "--max-seq-length", str(args.max_seq_length)]
    scores: dict = {"model": str(args.model_dir), "task": args.task,
                    "dev_file": str(args.dev_file)}
    res = tinybert("evaluate", str(args.model_dir), *task,
                   "--output-dir", str(args.out / "eval-float32"))
    scores["float32"], scores["baseline"] = res["metrics"], res["baseline"]
    for mode, flags in MODES.items():
        qdir = args.out / mode
        tinybert("quantize", str(args.model_dir), "--output-dir", str(qdir), *flags,
                 "--calibration-file", str(calib), "--max-seq-length",
                 str(args.max_seq_length), "--calibration-batches", "16")
        for dispatch in ("always", "auto"):
            res = tinybert("--backend", "numba", "--int8-dispatch", dispatch, "evaluate",
                           str(qdir), *task, "--output-dir", str(args.out / f"eval-{mode}-"
                                                                    f"{dispatch}"))
            scores[f"{mode}/{dispatch}"] = res["metrics"]
        print(json.dumps({mode: scores[f"{mode}/always"]}), flush=True)
    atomic_write_text(args.out / "int8_accuracy.json", json.dumps(scores, indent=2) + "\n")
    print(json.dumps(scores, indent=2))


if __name__ == "__main__":
    main()
