"""Does knowledge transfer beat training the student alone, and is progressive transfer best?

The paper's ablation (section 4.3 / Table 8) at laptop scale, on the public-domain State of the
Union corpus in ../shared/data/corpus (train: sotu-train.txt, held out: sotu-valid.txt):
1. the vocabulary: a WordPiece vocabulary trained on the training text (`--vocab trained`), or
   a given vocab.txt (e.g. bert-base-uncased's);
2. pre-train a small IB-BERT teacher with MLM + NSP;
3. train the matching small MobileBERT student with each strategy (auxiliary, joint,
   progressive knowledge transfer), without a teacher ("none"), and without a teacher but from
   the teacher's embeddings and heads ("none-init"), every one for the same total number of
   steps (L x kt_steps_per_layer + pd_steps), for each seed in `--seeds` (initialisation and
   data order; the same data order for every strategy within a seed);
4. write every run's held-out MLM loss / accuracy next to the unigram baseline on the same
   masked positions, and the seed spread per strategy (results.md, results.json), and the
   evaluation curves of the first seed (curves.svg, hand-written SVG: no plotting dependency).

Layout: OUT/vocab.txt, OUT/teacher/model, OUT/<strategy>-seed<k>/model (Hugging Face layout
with vocab.txt, metrics.jsonl and checkpoint beside). Every run resumes from its checkpoint
and a finished one is skipped, so `--time-limit` can split the experiment into pieces: a piece
stops cleanly (right after a checkpoint) once the limit has passed; run the same command again
to continue.

    python experiments/strategies.py --out runs/experiment --time-limit 14
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
LABELS = {"teacher": "IB-BERT teacher", "none": "student, none (random init)",
          "none-init": "student, none (teacher's embeddings and heads)"}
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


class PieceOver(Exception):
    """The piece's time limit passed; the run stopped right after a checkpoint."""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus-dir", type=Path, default=ROOT.parent / "shared/data/corpus")
    p.add_argument("--out", type=Path, default=ROOT / "runs/experiment")
    p.add_argument("--vocab", default="trained",
                   help="'trained' (WordPiece on the training text) or a vocab.txt")
    p.add_argument("--vocab-size", type=int, default=8000, help="with --vocab trained")
    p.add_argument("--hidden-size", type=int, default=128)
    p.add_argument("--embedding-size", type=int, default=64)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--teacher-steps", type=int, default=1000)
    p.add_argument("--teacher-lr", type=float, default=1e-2)
    p.add_argument("--kt-steps-per-layer", type=int, default=25)
    p.add_argument("--pd-steps", type=int, default=200)
    p.add_argument("--lr", type=float, default=2e-2, help="the students' LAMB learning rate")
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--eval-batches", type=int, default=30)
    p.add_argument("--save-every", type=int, default=50)
    p.add_argument("--google-kt", action="store_true", help="Google's KT loss factors")
    p.add_argument("--strategies", default=",".join(STRATEGY_ORDER))
    p.add_argument("--seeds", default="0,1",
                   help="students' initialisation and data order (the teacher always uses 0)")
    p.add_argument("--time-limit", type=float, default=None,
                   help="minutes; stop right after a checkpoint once they have passed")
    args = p.parse_args()
    started = time.time()

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    train_file = args.corpus_dir / "sotu-train.txt"
    valid_file = args.corpus_dir / "sotu-valid.txt"
    vocab = out / "vocab.txt"
    if not vocab.exists():
        if args.vocab == "trained":
            save_vocab(train_wordpiece_vocab([train_file], args.vocab_size), vocab)
        else:
            vocab.write_bytes(Path(args.vocab).read_bytes())
    vocab_size = sum(1 for _ in vocab.open(encoding="utf-8"))
    t_cfg, s_cfg = configs(args, vocab_size)
    for name, cfg in (("teacher", t_cfg), ("student", s_cfg)):
        preset = "ib-bert-small" if name == "teacher" else "mobilebert-small"
        MobileBertConfig.from_pretrained(preset, **cfg).to_json(out / f"{name}_config.json")
    data = recipes.DataOptions(corpus=[train_file], eval_corpus=[valid_file], vocab=vocab,
                               batch_size=args.batch_size, max_seq_length=args.seq_len,
                               eval_batches=args.eval_batches, cache_dir=out / "cache")
    seeds = [int(x) for x in args.seeds.split(",")]
    strategies = args.strategies.split(",")
    total = args.layers * args.kt_steps_per_layer + args.pd_steps

    def on_step(tag: str):
        def report(r: dict) -> None:
            if r["step"] % 50 == 0 or "eval_mlm_loss" in r:
                extra = (f" eval {r['eval_mlm_loss']:.3f}/{r['eval_mlm_accuracy']:.3f} "
                         f"(unigram {r['eval_unigram_loss']:.3f}/"
                         f"{r['eval_unigram_accuracy']:.3f})" if "eval_mlm_loss" in r else "")
                print(f"[{tag}] {r['step']}/{r['total_steps']} {r['stage']} "
                      f"loss {r['loss']:.3f}{extra}", flush=True)
            over = args.time_limit is not None and time.time() - started > 60 * args.time_limit
            if over and r["step"] > 1 and (r["step"] - 1) % args.save_every == 0:
                raise PieceOver(f"[{tag}] time limit reached; stopped after the checkpoint at "
                                f"step {r['step'] - 1}: run the same command to continue")
        return report

    def run(name: str, work) -> None:
        run_dir = out / name
        if (run_dir / "model").exists():
            return
        if args.time_limit is not None and time.time() - started > 60 * args.time_limit:
            raise PieceOver(f"time limit reached before {name}: run the same command again")
        resume = (run_dir / "checkpoint.npz").exists()
        work(run_dir, on_step(name), resume, not resume)   # no checkpoint: start afresh

    common = dict(eval_every=args.eval_every, save_every=args.save_every)
    teacher_dir = out / "teacher" / "model"
    try:
        run("teacher", lambda d, cb, resume, overwrite: recipes.pretrain(
            out / "teacher_config.json", d, data,
            dict(common, learning_rate=args.teacher_lr, pd_steps=args.teacher_steps),
            on_step=cb, resume=resume, overwrite=overwrite))
        kt = KTOptions(google_kt=args.google_kt)
        for seed in seeds:
            for strategy in strategies:
                base = strategy.split("-")[0]
                run(f"{strategy}-seed{seed}", lambda d, cb, resume, overwrite: recipes.distill(
                    teacher_dir, out / "student_config.json", d, base,
                    dataclasses.replace(data, seed=seed),
                    dict(common, learning_rate=args.lr, pd_steps=args.pd_steps,
                         kt_steps_per_layer=args.kt_steps_per_layer), kt, on_step=cb,
                    resume=resume, init_from_teacher=base != "none" or strategy == "none-init",
                    seed=seed, overwrite=overwrite))
    except PieceOver as e:
        print(e, flush=True)
    write_results(out, args, seeds, strategies, data, total)


def write_results(out: Path, args: argparse.Namespace, seeds: list[int], strategies: list[str],
                  data: recipes.DataOptions, total: int) -> None:
    """results.json (every finished run's evaluation), results.md (per strategy: each seed,
    the mean and the seed spread, next to the unigram baseline) and curves.svg."""
    results = {name: evaluation(out / name, data)
               for name in ["teacher"] + [f"{s}-seed{k}" for k in seeds for s in strategies]
               if (out / name / "model").exists()}
    if not results:
        return
    (out / "results.json").write_text(json.dumps(
        {"args": {k: str(v) for k, v in vars(args).items()}, "results": results,
         "train_seconds": {name: train_seconds(out / name / "metrics.jsonl")
                           for name in results}}, indent=2))
    any_run = next(iter(results.values()))
    lines = [f"Unigram baseline on the same {any_run['predictions']} masked positions "
             f"(training-text frequencies, add-one): loss {any_run['unigram_loss']:.4f}, "
             f"accuracy {any_run['unigram_accuracy']:.4f}.", "",
             "| model | steps | seeds | held-out MLM loss per seed | mean | spread | "
             "accuracy per seed | mean | spread | beats unigram |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name in ["teacher"] + strategies:
        runs = [results[n] for n in ([name] if name == "teacher" else
                                     [f"{name}-seed{k}" for k in seeds]) if n in results]
        if not runs:
            continue
        loss = [r["mlm_loss"] for r in runs]
        acc = [r["mlm_accuracy"] for r in runs]
        steps = args.teacher_steps if name == "teacher" else total
        lines.append(
            f"| {LABELS.get(name, 'student, ' + name)} | {steps} | {len(runs)} | "
            f"{' / '.join(f'{x:.4f}' for x in loss)} | {sum(loss) / len(loss):.4f} | "
            f"{max(loss) - min(loss):.4f} | {' / '.join(f'{x:.4f}' for x in acc)} | "
            f"{sum(acc) / len(acc):.4f} | {max(acc) - min(acc):.4f} | "
            f"{'yes' if all(r['beats_unigram'] for r in runs) else 'NO'} |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    curves = {name.split("-seed")[0]: curve(out / name / "metrics.jsonl") for name in results
              if name.endswith(f"-seed{seeds[0]}")}
    svg_plot(curves, out / "curves.svg")
    print("\n".join(lines))


def evaluation(run_dir: Path, data: recipes.DataOptions) -> dict:
    """The finished model's held-out evaluation, computed once (run_dir/eval.json), so a
    later piece does not repeat it."""
    saved = run_dir / "eval.json"
    if saved.is_file():
        return json.loads(saved.read_text())
    result = recipes.evaluate(run_dir / "model", data)
    saved.write_text(json.dumps(result, indent=2))
    return result


def train_seconds(metrics_file: Path) -> float:
    """Seconds spent in training steps (evaluations and pauses between pieces excluded)."""
    return sum(json.loads(line)["seconds"] for line in metrics_file.read_text().splitlines())


if __name__ == "__main__":
    main()
