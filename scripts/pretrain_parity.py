"""Pre-training parity: tinybert against transformers + torch on the very same batches.

Answers "does our pre-training fail to learn because of a defect, or because of the recipe?"
with evidence. Both sides start from identical weights (ours, copied into Hugging Face's
``*ForPreTraining`` by checkpoint key), see identical batches (dumped to ``batches.npz``) and run
the same optimizer (Google's LAMB, written out below in torch in a few lines, or AdamW) with the
same schedule, global-norm clipping and weight-decay / layer-adaptation exclusions. Dropout is
off on both sides so the curves can agree step by step. It reports:

- single-step gradient parity: per parameter, the relative error ||g_ours - g_hf|| / ||g_hf||;
- the training loss (MLM, NSP) of both side by side at every step;
- held-out MLM loss and accuracy of both at the end, next to the unigram baseline (predict the
  training corpus's token frequencies, add-one smoothed; accuracy of always predicting the most
  frequent training token) on the same masked positions;
- data-pipeline checks on the dumped batches: masking rate and 80/10/10 split, labels equal to
  the original tokens, NSP balance, token types;
- how far our run moved the weights (relative change of the encoder weights and the word
  embeddings, spread of the MLM output bias): LAMB moves each tensor by at most lr * ||w|| per
  step, which is what keeps short runs at a small learning rate below the unigram baseline.

Variants for the diagnosis: ``--optimizer adamw``, ``--bias-correction``, ``--lr``,
``--unigram-bias-init``; ``--skip-hf-training --keep-dropout --eval-every N`` runs only our
side as a real run would (dropout on) with a held-out curve; ``--baseline-only`` prints the data
checks and the unigram baseline of a corpus / vocabulary / sequence length.

Needs torch + transformers (tinybert never imports them); run it with the reference venv:

    flock /tmp/tinybert-cpu.lock /work/refvenv/bin/python scripts/pretrain_parity.py \\
        --steps 200 --out runs/parity

Writes ``batches.npz``, ``init.npz`` and ``parity.json`` into ``--out``.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

try:
    import torch
    import transformers
except ImportError as e:  # pragma: no cover - depends on the interpreter
    sys.exit(f"pretrain_parity: needs torch and transformers ({e}); "
             f"run it with /work/refvenv/bin/python")

import backends  # noqa: E402
from autograd import optim  # noqa: E402
from tinybert_core.config import MobileBertConfig  # noqa: E402
from tinybert_core.data.pretraining import (IGNORE_INDEX, make_eval_batches,  # noqa: E402
                                            make_pretraining_batches)
from tinybert_core.distillation.strategies import pretraining_loss  # noqa: E402
from tinybert_core.evaluation.baselines import UnigramBaseline, unigram_baseline  # noqa: E402
from tinybert_core.evaluation.mlm import evaluate_mlm  # noqa: E402
from tinybert_core.models.auto import model_class  # noqa: E402
from tinybert_core.text.tokenization import BertTokenizer  # noqa: E402
from tinybert_core.training.loop import TrainingArguments, train  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
FIELDS = ("input_ids", "token_type_ids", "attention_mask", "masked_lm_positions",
          "masked_lm_ids", "masked_lm_weights", "next_sentence_labels")


# ----- batches -------------------------------------------------------------------------------

class ListBatches:
    """A fixed list of batches with the iterator interface `train` needs (state for checkpoints)."""

    def __init__(self, batches: list) -> None:
        self.batches, self.i = batches, 0

    def __next__(self):
        b = self.batches[self.i % len(self.batches)]
        self.i += 1
        return b

    def state(self) -> dict:
        return {"i": self.i}

    def load_state(self, state: dict) -> None:
        self.i = int(state["i"])


def full_labels(b) -> np.ndarray:
    """(B, T) labels as HF's MobileBertForPreTraining takes them: the original id at each
    masked position, -100 everywhere else."""
    labels = np.full(b.input_ids.shape, IGNORE_INDEX, np.int64)
    rows, slots = np.nonzero(b.masked_lm_weights > 0)
    labels[rows, b.masked_lm_positions[rows, slots]] = b.masked_lm_ids[rows, slots]
    return labels


def dump_batches(path: Path, batches: list) -> None:
    arrays = {f"{i}.{k}": getattr(b, k) for i, b in enumerate(batches) for k in FIELDS}
    arrays.update({f"{i}.mlm_labels": full_labels(b) for i, b in enumerate(batches)})
    np.savez(path, **arrays)


def check_batches(batches: list, tokenizer: BertTokenizer, originals: list) -> dict:
    """Masking statistics of the dumped batches, and what the labels and types look like."""
    special = {tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id}
    n_pred = n_cand = n_mask = n_keep = 0
    label_ok = types_ok = True
    nsp = []
    for b, orig in zip(batches, originals):
        for r in range(b.input_ids.shape[0]):
            w = b.masked_lm_weights[r] > 0
            pos, lab = b.masked_lm_positions[r][w], b.masked_lm_ids[r][w]
            seq = b.input_ids[r]
            n = int(b.attention_mask[r].sum())
            n_cand += sum(int(t) not in special for t in orig[r][:n])
            n_pred += len(pos)
            n_mask += int((seq[pos] == tokenizer.mask_token_id).sum())
            n_keep += int((seq[pos] == lab).sum())
            label_ok &= bool((orig[r][pos] == lab).all())
            label_ok &= bool((full_labels(b)[r][pos] == lab).all())
            label_ok &= int((full_labels(b)[r] != IGNORE_INDEX).sum()) == len(pos)
            seps = np.flatnonzero(seq[:n] == tokenizer.sep_token_id)
            types_ok &= len(seps) == 2 and seq[0] == tokenizer.cls_token_id
            types_ok &= bool((b.token_type_ids[r][:seps[0] + 1] == 0).all())
            types_ok &= bool((b.token_type_ids[r][seps[0] + 1:n] == 1).all())
            nsp.append(int(b.next_sentence_labels[r]))
    return {"predicted_share_of_candidates": n_pred / n_cand,
            "mask_share": n_mask / n_pred, "kept_share": n_keep / n_pred,
            "random_share": 1 - (n_mask + n_keep) / n_pred, "labels_are_originals": bool(label_ok),
            "types_and_separators_ok": bool(types_ok), "nsp_random_share": float(np.mean(nsp)),
            "predictions_per_sequence": n_pred / len(nsp)}


def unmasked_originals(batches: list) -> list:
    """The token ids before masking: put the labels back at the masked positions."""
    out = []
    for b in batches:
        ids = b.input_ids.copy()
        for r in range(ids.shape[0]):
            w = b.masked_lm_weights[r] > 0
            ids[r, b.masked_lm_positions[r][w]] = b.masked_lm_ids[r][w]
        out.append(ids)
    return out


# ----- the unigram baseline ------------------------------------------------------------------

def unigram_report(baseline: UnigramBaseline, eval_batches: list) -> dict:
    """Loss and accuracy on the eval batches' masked positions of a model that ignores its
    input (tinybert_core/evaluation/baselines.py: add-one smoothed training frequencies,
    argmax = most frequent training token)."""
    labels = np.concatenate([b.masked_lm_ids[b.masked_lm_weights > 0] for b in eval_batches])
    scores = baseline.score(labels)
    return {"mlm_loss": scores["unigram_loss"], "mlm_accuracy": scores["unigram_accuracy"],
            "most_frequent_token_id": baseline.most_frequent}


# ----- the Hugging Face side -----------------------------------------------------------------

def hf_model(config: MobileBertConfig, state: dict[str, np.ndarray]) -> torch.nn.Module:
    d = config.to_dict()
    if config.model_type == "bert":
        model = transformers.BertForPreTraining(transformers.BertConfig(**d))
    else:
        model = transformers.MobileBertForPreTraining(transformers.MobileBertConfig(**d))
    missing, unexpected = model.load_state_dict(
        {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}, strict=False)
    tied = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
    missing = [k for k in missing if k not in tied and not k.endswith("position_ids")]
    if missing or unexpected:
        raise SystemExit(f"HF load: missing {missing}, unexpected {unexpected}")
    model.train()  # dropout probabilities are 0 in the configs this script builds
    return model


def hf_inputs(b) -> dict:
    t = torch.from_numpy
    return {"input_ids": t(b.input_ids), "token_type_ids": t(b.token_type_ids),
            "attention_mask": t(b.attention_mask), "labels": t(full_labels(b)),
            "next_sentence_label": t(b.next_sentence_labels)}


class TorchLAMB:
    """Google's LAMB (spec 6.1), no bias correction unless asked: u = m / (sqrt(v) + eps) + wd * w
    on decayed tensors; w -= lr * (||w|| / ||u||) * u on adapted ones (else the plain u).
    trust=False is Google's AdamW (the same u, no ratio)."""

    def __init__(self, named: list, lr, weight_decay: float = 0.01, betas=(0.9, 0.999),
                 eps: float = 1e-6, exclude=optim.DEFAULT_EXCLUDE, trust: bool = True,
                 bias_correction: bool = False) -> None:
        self.named, self.lr, self.wd, self.eps, self.trust = named, lr, weight_decay, eps, trust
        self.bias_correction = bias_correction
        self.b1, self.b2 = betas
        self.decay = {n: not any(re.search(p, n) for p in exclude) for n, _ in named}
        self.m = {n: torch.zeros_like(p) for n, p in named}
        self.v = {n: torch.zeros_like(p) for n, p in named}
        self.step_count = 0

    @torch.no_grad()
    def step(self) -> None:
        lr = self.lr(self.step_count)
        t = self.step_count + 1
        c1, c2 = ((1 - self.b1 ** t), (1 - self.b2 ** t)) if self.bias_correction else (1, 1)
        for n, p in self.named:
            if p.grad is None:
                continue
            g = p.grad
            self.m[n].mul_(self.b1).add_(g, alpha=1 - self.b1)
            self.v[n].mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
            u = (self.m[n] / c1) / ((self.v[n] / c2).sqrt() + self.eps)
            ratio = 1.0
            if self.decay[n]:
                u = u + self.wd * p
                if self.trust:
                    w_norm, u_norm = p.norm(), u.norm()
                    if w_norm > 0 and u_norm > 0:
                        ratio = float(w_norm / u_norm)
            p.sub_(lr * ratio * u)
        self.step_count += 1


def hf_named_parameters(model: torch.nn.Module) -> list:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def hf_evaluate(model: torch.nn.Module, batches: list) -> dict:
    was = model.training
    model.eval()
    loss = correct = total = 0.0
    with torch.no_grad():
        for b in batches:
            out = model(**{k: v for k, v in hf_inputs(b).items()
                           if k not in ("labels", "next_sentence_label")})
            logits = out.prediction_logits                                   # (B, T, V)
            lab = torch.from_numpy(full_labels(b))
            keep = lab != IGNORE_INDEX
            sel, y = logits[keep], lab[keep]
            loss += float(torch.nn.functional.cross_entropy(sel, y, reduction="sum"))
            correct += float((sel.argmax(-1) == y).sum())
            total += float(keep.sum())
    model.train(was)
    return {"mlm_loss": loss / total, "mlm_accuracy": correct / total, "predictions": int(total)}


# ----- gradient parity -----------------------------------------------------------------------

def gradient_parity(ours, hf: torch.nn.Module, batch) -> dict:
    out = pretraining_loss(ours, None, batch)
    out["loss"].backward()
    hf_out = hf(**hf_inputs(batch))
    hf_out.loss.backward()
    hf_grads = {n: p.grad.detach().numpy() for n, p in hf.named_parameters() if p.grad is not None}
    rows, zero = [], []
    for name, p in ours.named_parameters():
        g = p.backend.to_numpy(p.grad).astype(np.float64)
        h = hf_grads[name].astype(np.float64)
        g_norm, h_norm = float(np.linalg.norm(g)), float(np.linalg.norm(h))
        if max(g_norm, h_norm) < 1e-8:
            # attention.self.key.bias: its gradient is exactly zero (softmax does not see a
            # per-query constant), so both sides hold float noise there.
            zero.append(name)
            continue
        rows.append((name, float(np.linalg.norm(g - h)) / h_norm, h_norm))
    ours.zero_grad()
    hf.zero_grad()
    rows.sort(key=lambda r: -r[1])
    return {"loss_ours": out["loss"].item(), "loss_hf": float(hf_out.loss.detach()),
            "max_relative_error": rows[0][1], "worst": rows[:5], "parameters": len(rows),
            "zero_on_both_sides": zero}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, default=SHARED / "corpus" / "sotu-train.txt")
    p.add_argument("--eval-corpus", type=Path, default=SHARED / "corpus" / "sotu-valid.txt")
    p.add_argument("--vocab", type=Path, default=SHARED / "vocab" / "bert-base-uncased-vocab.txt")
    p.add_argument("--config", default="mobilebert-small")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=float, default=0.1)
    p.add_argument("--optimizer", choices=("lamb", "adamw"), default="lamb")
    p.add_argument("--bias-correction", action="store_true",
                   help="Adam's bias correction of m and v (Google's LAMB has none).")
    p.add_argument("--unigram-bias-init", action="store_true",
                   help="Start the MLM output bias at the log unigram frequencies.")
    p.add_argument("--keep-dropout", action="store_true",
                   help="Keep the preset's dropout (ours only: needs --skip-hf-training).")
    p.add_argument("--eval-every", type=int, default=0)
    p.add_argument("--eval-batches", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default="numpy")
    p.add_argument("--skip-hf-training", action="store_true",
                   help="Only the gradient check and our run (faster).")
    p.add_argument("--baseline-only", action="store_true",
                   help="Print the data checks and the unigram baseline, then stop.")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    if args.keep_dropout and not args.skip_hf_training:
        p.error("--keep-dropout needs --skip-hf-training (dropout masks differ between sides)")
    args.out.mkdir(parents=True, exist_ok=True)
    backends.set_default_backend(args.backend)
    torch.manual_seed(args.seed)

    tokenizer = BertTokenizer(args.vocab)
    kw = dict(tokenizer=tokenizer, batch_size=args.batch_size, max_seq_length=args.seq_len)
    stream = make_pretraining_batches(args.corpus, seed=args.seed, **kw)
    batches = [next(stream) for _ in range(args.steps)]
    ev = make_eval_batches(args.eval_corpus, max_batches=args.eval_batches, **kw)
    baseline = unigram_baseline(stream.dataset.corpus)
    report: dict = {"args": {k: str(v) for k, v in vars(args).items()},
                    "versions": {"torch": torch.__version__,
                                 "transformers": transformers.__version__},
                    "data_checks": check_batches(batches, tokenizer, unmasked_originals(batches)),
                    "unigram_baseline": unigram_report(baseline, ev)}
    if args.baseline_only:
        print(json.dumps(report, indent=1))
        return
    dump_batches(args.out / "batches.npz", batches)
    dump_batches(args.out / "eval_batches.npz", ev)

    dropout = {} if args.keep_dropout else {"hidden_dropout_prob": 0.0,
                                            "attention_probs_dropout_prob": 0.0}
    config = MobileBertConfig.from_pretrained(args.config, vocab_size=len(tokenizer), **dropout)
    ours = model_class(config, "pretraining")(config, seed=args.seed)
    if args.unigram_bias_init:
        logp = baseline.log_probs
        ours.cls.predictions.bias.data[...] = logp - logp.mean()
    init = {k: v.copy() for k, v in ours.state_dict().items()}
    np.savez(args.out / "init.npz", **init)
    hf = hf_model(config.replace(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
                  init)
    report["gradient_parity"] = gradient_parity(ours, hf, batches[0])
    print(json.dumps(report, indent=1), flush=True)

    schedule = optim.linear_warmup_poly_decay(args.lr, args.steps,
                                              int(args.warmup * args.steps), 1e-4)
    t0 = time.perf_counter()
    ours_log = run_ours(ours, batches, ev, schedule, args)
    report["ours_seconds"] = time.perf_counter() - t0
    report["ours_eval"] = evaluate_mlm(ours, ev)
    report["ours_movement"] = movement(init, ours.state_dict())

    hf_log = []
    if not args.skip_hf_training:
        named = hf_named_parameters(hf)
        opt = TorchLAMB(named, schedule, trust=args.optimizer == "lamb",
                        bias_correction=args.bias_correction)
        t0 = time.perf_counter()
        for step, b in enumerate(batches, start=1):
            out = hf(**hf_inputs(b))
            out.loss.backward()
            norm = float(torch.nn.utils.clip_grad_norm_([q for _, q in named], 1.0))
            opt.step()
            hf.zero_grad()
            logits = out.prediction_logits.detach()
            lab = torch.from_numpy(full_labels(b))
            mlm = float(torch.nn.functional.cross_entropy(logits[lab != IGNORE_INDEX],
                                                          lab[lab != IGNORE_INDEX]))
            loss = float(out.loss.detach())
            row = {"step": step, "loss": loss, "mlm": mlm, "nsp": loss - mlm, "grad_norm": norm}
            if args.eval_every and step % args.eval_every == 0:
                row.update({f"eval_{k}": v for k, v in hf_evaluate(hf, ev).items()})
            hf_log.append(row)
        report["hf_seconds"] = time.perf_counter() - t0
        report["hf_eval"] = hf_evaluate(hf, ev)

    curve = []
    for i, o in enumerate(ours_log):
        row = {"step": o["step"], "lr": o["lr"], "ours_loss": o["loss"], "ours_mlm": o["mlm"],
               "ours_nsp": o["nsp"], "ours_grad_norm": o["grad_norm"]}
        row.update({f"ours_{k}": v for k, v in o.items() if k.startswith("eval_")})
        if hf_log:
            h = hf_log[i]
            row.update(hf_loss=h["loss"], hf_mlm=h["mlm"], hf_nsp=h["nsp"],
                       hf_grad_norm=h["grad_norm"])
            row.update({f"hf_{k}": v for k, v in h.items() if k.startswith("eval_")})
        curve.append(row)
    report["curve"] = curve
    if hf_log:
        diffs = [abs(r["ours_loss"] - r["hf_loss"]) for r in curve]
        report["max_abs_loss_difference"] = max(diffs)
    (args.out / "parity.json").write_text(json.dumps(report, indent=1) + "\n")
    _print_summary(report)


def movement(init: dict[str, np.ndarray], final: dict[str, np.ndarray]) -> dict:
    """How far training moved the weights: ||w - w0|| / ||w0|| per parameter (median and max
    over the encoder), for the word embeddings, and the spread of the MLM output bias."""
    rel = {k: float(np.linalg.norm(final[k] - v) / max(np.linalg.norm(v), 1e-12))
           for k, v in init.items()}
    enc = [r for k, r in rel.items() if ".encoder." in k and k.endswith("weight")]
    bias = final["cls.predictions.bias"]
    return {"encoder_weight_relative_change_median": float(np.median(enc)),
            "encoder_weight_relative_change_max": float(np.max(enc)),
            "word_embeddings_relative_change":
                rel[next(k for k in rel if k.endswith("word_embeddings.weight"))],
            "mlm_bias_spread": float(bias.max() - bias.min()),
            "mlm_bias_max_abs_change": float(np.abs(bias - init["cls.predictions.bias"]).max())}


def run_ours(model, batches: list, ev: list, schedule, args: argparse.Namespace) -> list[dict]:
    """Our side. Google's LAMB goes through the real training loop (`train`: clipping, LAMB,
    schedule, metrics); the variants (AdamW, bias correction) repeat its steps written out."""
    if args.optimizer == "lamb" and not args.bias_correction:
        with tempfile.TemporaryDirectory() as tmp:
            targs = TrainingArguments(output_dir=Path(tmp), pd_steps=args.steps,
                                      learning_rate=args.lr, warmup_proportion=args.warmup,
                                      eval_every=args.eval_every or 10**9, save_every=10**9,
                                      seed=args.seed)
            train(model, targs, ListBatches(batches),
                  eval_batches=ev if args.eval_every else None)
            return [json.loads(line) for line in open(Path(tmp) / "metrics.jsonl")]
    kind = optim.LAMB if args.optimizer == "lamb" else optim.AdamW
    opt = kind(model, lr=schedule, weight_decay=0.01, bias_correction=args.bias_correction)
    log = []
    for step, b in enumerate(batches, start=1):
        lr = opt.current_lr()
        losses = pretraining_loss(model, None, b)
        losses["loss"].backward()
        norm = optim.clip_grad_norm(model, 1.0)
        opt.step()
        opt.zero_grad()
        row = {"step": step, "lr": lr, "grad_norm": norm,
               **{k: v.item() for k, v in losses.items()}}
        if args.eval_every and step % args.eval_every == 0:
            row.update({f"eval_{k}": v for k, v in evaluate_mlm(model, ev).items()})
        log.append(row)
    return log


def _print_summary(report: dict) -> None:
    pick = {1, 2, 3, 5, 10, 20, 50, 100, 200, 300, 400, 500, 1000}
    n = len(report["curve"])
    print(f"{'step':>5} {'lr':>9} {'ours loss':>10} {'hf loss':>10} {'ours mlm':>9} "
          f"{'hf mlm':>9}")
    for r in report["curve"]:
        if r["step"] in pick or r["step"] == n:
            print(f"{r['step']:>5} {r['lr']:>9.2e} {r['ours_loss']:>10.4f} "
                  f"{r.get('hf_loss', math.nan):>10.4f} {r['ours_mlm']:>9.4f} "
                  f"{r.get('hf_mlm', math.nan):>9.4f}")
    print("unigram baseline", json.dumps(report["unigram_baseline"]))
    print("ours eval", json.dumps(report["ours_eval"]), f"{report['ours_seconds']:.0f} s")
    print("ours movement", json.dumps(report["ours_movement"]))
    if "hf_eval" in report:
        print("hf eval  ", json.dumps(report["hf_eval"]), f"{report['hf_seconds']:.0f} s")
        print("max |loss difference|", report["max_abs_loss_difference"])


if __name__ == "__main__":
    main()
