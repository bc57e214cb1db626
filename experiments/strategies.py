"""Does knowledge transfer beat training the student alone, and is progressive transfer best?

The paper's ablation (section 4.3 / Table 8) at laptop scale, on the public-domain corpora in
../shared/data/corpus:
1. train a WordPiece vocabulary on the training text;
2. pre-train a small IB-BERT teacher with MLM + NSP;
3. train the matching small MobileBERT student with each strategy — auxiliary, joint,
   progressive knowledge transfer — and without a teacher ("none"), every one for the same
   total number of steps (L x kt_steps_per_layer + pd_steps), same data order, same seed;
4. write the held-out MLM loss / accuracy per strategy (results.md, results.json) and the
   evaluation curves (curves.svg, hand-written SVG: no plotting dependency).

Every stage is skipped when its model directory already exists, so an interrupted experiment
continues where it stopped.

    python experiments/strategies.py --out runs/experiment
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tinybert_core import MobileBertConfig  # noqa: E402
from tinybert_core import recipes  # noqa: E402
from tinybert_core.distillation.strategies import KTOptions  # noqa: E402
from tinybert_core.text.wordpiece_trainer import save_vocab, train_wordpiece_vocab  # noqa: E402

# "none-init" is the control: no teacher while training, but the student starts from the
# teacher's embeddings and heads like the transfer strategies do.
STRATEGY_ORDER = ["none", "none-init", "auxiliary", "joint", "progressive"]
COLORS = {"none": "#888888", "none-init": "#ff7f0e", "auxiliary": "#1f77b4", "joint": "#2ca02c",
          "progressive": "#d62728", "teacher": "#000000"}


def configs(args: argparse.Namespace, vocab_size: int) -> tuple[dict, dict]:
    shared = dict(vocab_size=vocab_size, embedding_size=args.embedding_size,
                  hidden_size=args.hidden_size, num_hidden_layers=args.layers,
                  num_attention_heads=args.heads, max_position_embeddings=args.seq_len)
    teacher = dict(shared, intra_bottleneck_size=2 * args.hidden_size,
                   intermediate_size=4 * args.hidden_size, hidden_dropout_prob=0.1)
    student = dict(shared, intra_bottleneck_size=args.hidden_size // 4,
                   intermediate_size=args.hidden_size)
    return teacher, student


def curve(metrics_file: Path) -> list[tuple[int, float]]:
    points = []
    for line in metrics_file.read_text().splitlines():
        r = json.loads(line)
        if "eval_mlm_loss" in r:
            points.append((r["step"], r["eval_mlm_loss"]))
    return points


def svg_plot(curves: dict[str, list[tuple[int, float]]], path: Path) -> None:
    """Held-out MLM loss against step, one polyline per run."""
    w, h, pad = 640, 400, 50
    pts = [p for c in curves.values() for p in c]
    if not pts:
        return
    x_max = max(p[0] for p in pts)
    y_min, y_max = min(p[1] for p in pts), max(p[1] for p in pts)
    y_min, y_max = y_min - 0.05 * (y_max - y_min + 1e-9), y_max + 0.05 * (y_max - y_min + 1e-9)

    def xy(step: int, loss: float) -> str:
        x = pad + (w - 2 * pad) * step / x_max
        y = h - pad - (h - 2 * pad) * (loss - y_min) / (y_max - y_min)
        return f"{x:.1f},{y:.1f}"

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
             f'font-family="sans-serif" font-size="12">',
             f'<rect width="{w}" height="{h}" fill="white"/>',
             f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="black"/>',
             f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="black"/>',
             f'<text x="{w / 2}" y="{h - 12}" text-anchor="middle">step</text>',
             f'<text x="14" y="{h / 2}" transform="rotate(-90 14 {h / 2})" '
             f'text-anchor="middle">held-out MLM loss</text>']
    for frac in (0.0, 0.5, 1.0):
        loss = y_min + frac * (y_max - y_min)
        y = h - pad - (h - 2 * pad) * frac
        parts.append(f'<text x="{pad - 6}" y="{y + 4:.1f}" text-anchor="end">{loss:.2f}</text>')
    parts.append(f'<text x="{w - pad}" y="{h - pad + 16}" text-anchor="end">{x_max}</text>')
    for i, (name, c) in enumerate(curves.items()):
        color = COLORS.get(name, "#9467bd")
        if len(c) > 1:
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="'
                         + " ".join(xy(s, v) for s, v in c) + '"/>')
        parts.append(f'<text x="{w - pad - 110}" y="{pad + 16 * i}" fill="{color}">{name}'
                     f'</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus-dir", type=Path, default=ROOT.parent / "shared/data/corpus")
    p.add_argument("--out", type=Path, default=ROOT / "runs/experiment")
    p.add_argument("--vocab-size", type=int, default=8000)
    p.add_argument("--hidden-size", type=int, default=128)
    p.add_argument("--embedding-size", type=int, default=64)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--teacher-steps", type=int, default=800)
    p.add_argument("--kt-steps-per-layer", type=int, default=50)
    p.add_argument("--pd-steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--eval-batches", type=int, default=30)
    p.add_argument("--google-kt", action="store_true", help="Google's KT loss factors")
    p.add_argument("--strategies", default=",".join(STRATEGY_ORDER))
    p.add_argument("--seed", type=int, default=0,
                   help="students' initialisation and data order (the teacher always uses 0)")
    p.add_argument("--teacher-from", type=Path, default=None,
                   help="reuse the teacher (and vocab) of an earlier run's output directory")
    args = p.parse_args()

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    train_file = args.corpus_dir / "sotu-train.txt"
    valid_file = args.corpus_dir / "sotu-valid.txt"
    vocab = out / "vocab.txt"
    if args.teacher_from is not None and not vocab.exists():
        vocab.write_bytes((args.teacher_from / "vocab.txt").read_bytes())
    if not vocab.exists():
        save_vocab(train_wordpiece_vocab([train_file], args.vocab_size), vocab)
    vocab_size = sum(1 for _ in vocab.open(encoding="utf-8"))
    t_cfg, s_cfg = configs(args, vocab_size)
    for name, cfg in (("teacher", t_cfg), ("student", s_cfg)):
        preset = "ib-bert-small" if name == "teacher" else "mobilebert-small"
        MobileBertConfig.from_pretrained(preset, **cfg).to_json(out / f"{name}_config.json")
    data = recipes.DataOptions(corpus=[train_file], eval_corpus=[valid_file], vocab=vocab,
                               batch_size=args.batch_size, max_seq_length=args.seq_len,
                               eval_batches=args.eval_batches, cache_dir=out / "cache")
    common = dict(learning_rate=args.lr, eval_every=args.eval_every, save_every=100)
    student_data = dataclasses.replace(data, seed=args.seed)
    timings = {}

    def log(tag: str):
        def on_step(r: dict) -> None:
            if r["step"] % 25 == 0 or "eval_mlm_loss" in r:
                extra = (f" eval {r['eval_mlm_loss']:.3f}/{r['eval_mlm_accuracy']:.3f}"
                         if "eval_mlm_loss" in r else "")
                print(f"[{tag}] {r['step']}/{r['total_steps']} {r['stage']} "
                      f"loss {r['loss']:.3f}{extra}", flush=True)
        return on_step

    teacher_dir = (args.teacher_from or out) / "teacher" / "model"
    if not teacher_dir.exists():
        start = time.time()
        recipes.pretrain(out / "teacher_config.json", out / "teacher", data,
                         dict(common, pd_steps=args.teacher_steps), on_step=log("teacher"),
                         resume=(out / "teacher" / "checkpoint.npz").exists())
        timings["teacher"] = time.time() - start
    results = {"teacher": recipes.evaluate(teacher_dir, data)}
    kt = KTOptions(google_kt=args.google_kt)
    for strategy in args.strategies.split(","):
        run_dir = out / strategy
        if not (run_dir / "model").exists():
            start = time.time()
            base = strategy.split("-")[0]
            recipes.distill(teacher_dir, out / "student_config.json", run_dir, base, student_data,
                            dict(common, pd_steps=args.pd_steps,
                                 kt_steps_per_layer=args.kt_steps_per_layer), kt,
                            on_step=log(strategy), resume=(run_dir / "checkpoint.npz").exists(),
                            init_from_teacher=base != "none" or strategy == "none-init",
                            seed=args.seed)
            timings[strategy] = time.time() - start
        results[strategy] = recipes.evaluate(run_dir / "model", data)

    total = args.layers * args.kt_steps_per_layer + args.pd_steps
    lines = ["| model | steps | held-out MLM loss | MLM accuracy | perplexity |",
             "|---|---|---|---|---|"]
    for name, r in results.items():
        steps = args.teacher_steps if name == "teacher" else total
        label = ("IB-BERT teacher" if name == "teacher" else
                 "student, none (teacher's embeddings and heads)" if name == "none-init" else
                 f"student, {name}")
        lines.append(f"| {label} | {steps} | {r['mlm_loss']:.4f} | {r['mlm_accuracy']:.4f} | "
                     f"{r['perplexity']:.1f} |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps({"args": {k: str(v) for k, v in
                                                           vars(args).items()},
                                                  "results": results, "seconds": timings},
                                                 indent=2))
    curves = {name: curve(out / name / "metrics.jsonl") for name in results
              if name != "teacher" and (out / name / "metrics.jsonl").exists()}
    svg_plot(curves, out / "curves.svg")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
