"""Does pre-training / distillation help downstream at this scale? Fine-tune small MobileBERT
students on the shared tasks (../shared/data: vitaminc, epistemic, the SQuAD v2.0 set) and put
each result next to its baseline and the time per epoch.

One call fine-tunes one (task, initialisation) pair into OUT/<task>-<init>/ (the fine-tuning
recipe's layout: best/, model/, eval_results.json ...); a finished pair is skipped, so each call
can go under the training lock on its own. `table` collects every finished run into Markdown.

    python experiments/downstream.py run epistemic random STUDENT_DIR --from-scratch
    python experiments/downstream.py run epistemic progressive runs/exp/progressive-seed0/model
    python experiments/downstream.py table

The settings are small on purpose (2 shared cores): sequences of 64 tokens (the students'
position table), a seeded subset of the vitaminc and SQuAD training files, SQuAD evaluated on a
seeded subset of the dev contexts (SQUAD_DEV_QUESTIONS questions; the all-null baseline is
computed on the same subset), one learning rate for every initialisation (no search).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograd.serialization import atomic_write_text  # noqa: E402
from tinybert_core import finetuning as FT  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SQUAD_DEV_QUESTIONS = 400

# task name on the command line -> (tinybert task, train, dev, TaskOptions, FinetuneOptions)
# epistemic: 20 epochs at 1e-4, because a 4-layer BERT learns it only after ~8 epochs of
# sitting at the class prior (transformers + torch and tinybert alike, docs/finetuning.md).
COMMON = dict(batch_size=32, lr=1e-3, warmup_ratio=0.1, seed=0)
TASKS = {
    "epistemic": ("rte", "glue/epistemic/train.tsv", "glue/epistemic/dev.tsv",
                  dict(max_seq_length=64), dict(epochs=20, lr=1e-4)),
    "vitaminc": ("mnli", "glue/vitaminc/train.tsv", "glue/vitaminc/dev.tsv",
                 dict(max_seq_length=64), dict(epochs=2, max_train_examples=8000)),
    "squad": ("squad-v2", "squad/train-v2.0.json", None,
              dict(max_seq_length=64, doc_stride=32, max_query_length=24),
              dict(epochs=2, max_train_examples=500)),
}


def squad_dev_subset(out: Path, seed: int = 0) -> Path:
    """A seeded subset of whole dev contexts holding SQUAD_DEV_QUESTIONS questions (or the
    first context past it), written once as SQuAD JSON."""
    path = out / "data" / f"squad-dev-{SQUAD_DEV_QUESTIONS}.json"
    if path.exists():
        return path
    data = json.loads((DATA / "squad" / "dev-v2.0.json").read_text(encoding="utf-8"))
    articles = data["data"]
    kept, n = [], 0
    for i in np.random.default_rng(seed).permutation(len(articles)):
        if n >= SQUAD_DEV_QUESTIONS:
            break
        kept.append(articles[i])
        n += sum(len(p["qas"]) for p in articles[i]["paragraphs"])
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"version": data["version"], "data": kept}))
    return path


def run(args: argparse.Namespace) -> None:
    task, train, dev, topts, fopts = TASKS[args.task]
    out = args.out / f"{args.task}-{args.init}"
    if (out / FT.RESULTS_NAME).exists():
        print(f"{out}: done already")
        return
    dev_file = squad_dev_subset(args.out) if dev is None else DATA / dev
    fopts = FT.FinetuneOptions(**{**COMMON, **fopts, "from_scratch": args.from_scratch,
                                  "seed": args.seed})
    started = time.time()

    def report(r: dict) -> None:
        if r["step"] % 25 == 0 or any(k.startswith("eval_") for k in r):
            scores = {k: round(v, 4) for k, v in r.items() if k.startswith("eval_")}
            print(f"[{args.task}-{args.init}] {r['step']}/{r['total_steps']} "
                  f"loss {r['loss']:.4f} {scores or ''} {time.time() - started:.0f} s",
                  flush=True)

    summary = FT.finetune(args.model_dir, out, DATA / train, dev_file,
                          FT.TaskOptions(task, **topts), fopts, resume=(out / "checkpoint.npz")
                          .exists(), on_step=report)
    res = summary.get("results")
    if res:
        print(json.dumps({k: res[k] for k in ("best", "baseline", "seconds_per_epoch")}))


def table(args: argparse.Namespace) -> None:
    rows = ["| task | init | train examples | steps | dev metric | best | last | baseline | "
            "s / epoch |", "|---|---|---:|---:|---|---:|---:|---:|---:|"]
    for path in sorted(args.out.glob(f"*/{FT.RESULTS_NAME}")):
        r = json.loads(path.read_text())
        m, (task, init) = r["metric"], path.parent.name.split("-", 1)
        rows.append(f"| {task} | {init} | "
                    f"{r['train_examples']} | {r['steps']} | {m} | {r['best'][m]:.4f} | "
                    f"{r['final'][m]:.4f} | {r['baseline'][m]:.4f} | "
                    f"{r['seconds_per_epoch']:.0f} |")
    print("\n".join(rows))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "downstream")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="fine-tune one (task, initialisation) pair")
    r.add_argument("task", choices=sorted(TASKS))
    r.add_argument("init", help="a name for the initialisation (the run is OUT/TASK-INIT)")
    r.add_argument("model_dir", type=Path)
    r.add_argument("--from-scratch", action="store_true",
                   help="random weights from MODEL_DIR's config and vocabulary")
    r.add_argument("--seed", type=int, default=0)
    sub.add_parser("table", help="every finished run as a Markdown table")
    args = p.parse_args()
    run(args) if args.command == "run" else table(args)


if __name__ == "__main__":
    main()
