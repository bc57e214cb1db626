"""Fine-tuning parity: tinybert against transformers + torch, and the fixtures the tests keep.

From one checkpoint (tests/fixtures/models/mobilebert-kq-shared, a 2-layer MobileBERT written
by transformers) and the same padded batches, both sides take ten AdamW steps of sequence
classification (3 labels) and of extractive QA, dropout off:

- tinybert runs its real fine-tuning path: `training/loop.py: train` with one stage, AdamW
  with bias correction, linear warm-up then decay, global-norm clipping (`training/step.py`);
- transformers + torch run `MobileBertForSequenceClassification` / `...ForQuestionAnswering`
  with `torch.optim.AdamW` (two parameter groups: no weight decay on biases and norms, our
  exclusion list), `LambdaLR` with the same schedule, and the global-norm clip written as TF's
  clip_by_global_norm (torch's clip_grad_norm_ adds 1e-6 to the norm).

It reports the per-step losses of both and their largest relative difference; the logits of
the tinybert-trained model loaded into transformers (and of the transformers-trained model,
saved by transformers, loaded into tinybert) against the side that trained it; and the
word-embedding gradient of a padded batch for sequence classification and pre-training
(padding_idx: HF gives the [PAD] row no gradient from the lookup, only from the tied decoder).

It writes into --out (default tests/fixtures/finetune_parity): `fixture.npz` (batches, the new
heads' initial weights, HF's losses, logits and gradients), `hf_<task>/` (the transformers
model after its ten steps, as transformers saves it) and `parity.json` (the report). The tests
(`tests/tinybert_core/test_finetune_parity.py`) replay tinybert's side against the fixture
without torch. Needs torch + transformers; tinybert never imports them:

    flock /tmp/tinybert-cpu.lock /work/refvenv/bin/python scripts/finetune_parity.py
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograd.optim import DEFAULT_EXCLUDE  # noqa: E402
from tinybert_core import BertTokenizer, load_model  # noqa: E402
from tinybert_core.data.tasks import ClassificationBatch, QABatch, pad_rows  # noqa: E402
from tinybert_core.distillation.strategies import Stage  # noqa: E402
from tinybert_core.training.loop import TrainingArguments, train  # noqa: E402

CHECKPOINT = ROOT / "tests" / "fixtures" / "models" / "mobilebert-kq-shared"
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "finetune_parity"
TASKS = ("sequence_classification", "question_answering")
HEADS = {"sequence_classification": "classifier", "question_answering": "qa_outputs"}
STEPS, LR, WARMUP, WEIGHT_DECAY, EPS, CLIP = 10, 1e-3, 0.2, 0.01, 1e-6, 1.0
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
              "classifier_dropout": 0.0}
WORDS = ("the man went to the store and bought a gallon of milk he was in the market "
         "for it at first but then they had one more").split()


# ----------------------------------------------------------------------------- shared setup

def make_batches(tokenizer: BertTokenizer, task: str, seed: int = 0) -> list:
    """STEPS + 1 padded batches of 4 (the last one for logits): random sentence pairs of
    uneven length; labels in {0, 1, 2}, or QA spans inside the second segment."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(STEPS + 1):
        rows, types, labels, spans = [], [], [], []
        for _ in range(4):
            a = " ".join(rng.choice(WORDS, int(rng.integers(2, 6))))
            b = " ".join(rng.choice(WORDS, int(rng.integers(3, 14))))
            enc = tokenizer(a, b)
            rows.append(np.array(enc["input_ids"]))
            types.append(np.array(enc["token_type_ids"]))
            labels.append(int(rng.integers(0, 3)))
            first = enc["token_type_ids"].index(1)
            start = int(rng.integers(first, len(rows[-1]) - 1))
            spans.append((0, 0) if rng.random() < 0.25 else
                         (start, int(min(start + rng.integers(0, 3), len(rows[-1]) - 2))))
        ids, mask = pad_rows(rows, tokenizer.pad_token_id)
        tt, _ = pad_rows(types, 0)
        if task == "sequence_classification":
            batches.append(ClassificationBatch(ids, tt, mask, np.array(labels, np.int64)))
        else:
            s, e = (np.array(x, np.int64) for x in zip(*spans))
            batches.append(QABatch(ids, tt, mask, s, e))
    return batches


def schedule(step: int) -> float:
    """tinybert's fine-tuning schedule (optim.linear_warmup_poly_decay, end 0) as a number."""
    warmup = int(WARMUP * STEPS)
    if step < warmup:
        return LR * step / warmup
    return LR * (1.0 - min(step, STEPS) / STEPS)


class ListBatches:
    """A fixed list of batches with the iterator interface `train` reads."""

    def __init__(self, batches: list) -> None:
        self.batches, self.i = batches, 0

    def __next__(self):
        b = self.batches[self.i]
        self.i += 1
        return b

    def state(self) -> dict:
        return {"i": self.i}

    def load_state(self, state: dict) -> None:
        self.i = int(state["i"])


def tinybert_model(task: str, head: dict[str, np.ndarray] | None = None):
    """The checkpoint with a new head (3 labels for classification), dropout off; `head`
    replaces the head's random weights."""
    extra = {"num_labels": 3} if task == "sequence_classification" else {}
    model = load_model(CHECKPOINT, task, seed=0, **NO_DROPOUT, **extra)
    if head is not None:
        params = dict(model.named_parameters())
        for name, value in head.items():
            params[name].data = params[name].backend.asarray(value.copy())
    return model


def tinybert_run(task: str, batches: list, head: dict[str, np.ndarray], out: Path):
    """Ten steps through the fine-tuning loop; returns (losses, model)."""
    model = tinybert_model(task, head)
    stage = Stage("finetune", STEPS, lambda m, _, b: {"loss": m(**b._asdict()).loss},
                  needs_teacher=False, warmup_proportion=WARMUP)
    args = TrainingArguments(output_dir=out, learning_rate=LR, end_lr_rate=0.0,
                             warmup_proportion=WARMUP, weight_decay=WEIGHT_DECAY,
                             max_grad_norm=CLIP, eval_every=STEPS, save_every=STEPS,
                             optimizer="adamw", adam_epsilon=EPS, bias_correction=True)
    train(model, args, ListBatches(batches[:STEPS]), stages=[stage])
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return np.array([r["loss"] for r in log]), model


def logits_of(out) -> np.ndarray:
    if hasattr(out, "start_logits"):
        s, e = out.start_logits, out.end_logits
        return np.stack([_np(s), _np(e)], axis=-1)
    return _np(out.logits)


def _np(x) -> np.ndarray:
    return x.detach().numpy() if hasattr(x, "detach") else x.numpy()


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(np.asarray(a, np.float64) - b).max() / max(np.abs(b).max(), 1e-30))


# ----------------------------------------------------------------------------- torch side

def main() -> None:  # pragma: no cover - needs torch
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args()
    try:
        import torch
        import transformers
    except ImportError as e:
        sys.exit(f"finetune_parity: needs torch and transformers ({e}); "
                 f"run it with /work/refvenv/bin/python")
    torch.manual_seed(0)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    tokenizer = BertTokenizer.from_pretrained(CHECKPOINT)
    args.out.mkdir(parents=True, exist_ok=True)
    fixture: dict[str, np.ndarray] = {}
    report: dict = {"steps": STEPS, "lr": LR, "warmup_proportion": WARMUP,
                    "weight_decay": WEIGHT_DECAY, "adam_epsilon": EPS, "max_grad_norm": CLIP,
                    "torch": torch.__version__, "transformers": transformers.__version__}
    classes = {"sequence_classification": transformers.MobileBertForSequenceClassification,
               "question_answering": transformers.MobileBertForQuestionAnswering}

    def torch_inputs(b, labels: bool = True) -> dict:
        d = {k: torch.from_numpy(np.asarray(v)) for k, v in b._asdict().items()
             if v is not None}
        if not labels:
            d = {k: v for k, v in d.items() if k in ("input_ids", "token_type_ids",
                                                     "attention_mask")}
        return d

    for task in TASKS:
        batches = make_batches(tokenizer, task)
        model0 = tinybert_model(task)
        head = {k: v for k, v in model0.state_dict().items() if k.startswith(HEADS[task])}
        with tempfile.TemporaryDirectory() as tmp:
            ours_losses, ours = tinybert_run(task, batches, head, Path(tmp) / "run")
            # HF: the same start, the same batches and schedule
            hf = classes[task].from_pretrained(str(CHECKPOINT), **NO_DROPOUT, **(
                {"num_labels": 3} if task == "sequence_classification" else {}))
            with torch.no_grad():
                for name, value in head.items():
                    dict(hf.named_parameters())[name].copy_(torch.from_numpy(value))
            hf.train()
            groups = [[], []]
            for name, param in hf.named_parameters():
                groups[any(re.search(x, name) for x in DEFAULT_EXCLUDE)].append(param)
            opt = torch.optim.AdamW([{"params": groups[0], "weight_decay": WEIGHT_DECAY},
                                     {"params": groups[1], "weight_decay": 0.0}], lr=LR,
                                    betas=(0.9, 0.999), eps=EPS)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: schedule(s) / LR)
            hf_losses = []
            for step, b in enumerate(batches[:STEPS]):
                loss = hf(**torch_inputs(b)).loss
                hf_losses.append(loss.item())
                loss.backward()
                if step == 0 and task == "sequence_classification":
                    fixture["hf_cls_word_embedding_grad"] = _np(
                        hf.mobilebert.embeddings.word_embeddings.weight.grad).copy()
                params = [q for q in hf.parameters() if q.grad is not None]
                norm = torch.sqrt(sum((q.grad.double() ** 2).sum() for q in params))
                if norm > CLIP:
                    for q in params:
                        q.grad.mul_(float(CLIP / norm))
                opt.step()
                sched.step()
                opt.zero_grad()
            hf_losses = np.array(hf_losses)
            hf.eval()
            check = batches[STEPS]
            with torch.no_grad():
                hf_logits = logits_of(hf(**torch_inputs(check, labels=False)))
            saved_hf = args.out / f"hf_{task}"
            hf.save_pretrained(str(saved_hf), safe_serialization=True)
            # ours, saved by tinybert, read by transformers
            ours.save_pretrained(Path(tmp) / "ours", tokenizer=tokenizer)
            ours_in_hf = classes[task].from_pretrained(str(Path(tmp) / "ours")).eval()
            with torch.no_grad():
                ours_logits_hf = logits_of(ours_in_hf(**torch_inputs(check, labels=False)))
            ours_logits = logits_of(ours.eval()(**torch_inputs_np(check)))
            # HF's, saved by transformers, read by tinybert
            hf_in_ours = load_model(saved_hf, task).eval()
            hf_logits_ours = logits_of(hf_in_ours(**torch_inputs_np(check)))
        key = "cls" if task == "sequence_classification" else "qa"
        for i, b in enumerate(batches):
            for field, value in b._asdict().items():
                fixture[f"{key}.batch{i}.{field}"] = np.asarray(value)
        for name, value in head.items():
            fixture[f"{key}.head.{name}"] = value
        fixture[f"{key}.hf_losses"] = hf_losses
        fixture[f"{key}.hf_logits"] = hf_logits
        report[task] = {
            "tinybert_losses": ours_losses.tolist(), "hf_losses": hf_losses.tolist(),
            "loss_max_rel_diff": float(np.max(np.abs(ours_losses - hf_losses)
                                              / np.abs(hf_losses))),
            "tinybert_saved_logits_in_hf_vs_tinybert": rel(ours_logits_hf, ours_logits),
            "hf_saved_logits_in_tinybert_vs_hf": rel(hf_logits_ours, hf_logits),
            "tinybert_vs_hf_logits_after_training": rel(ours_logits, hf_logits)}
    report["word_embedding_grad"] = embedding_grads(torch, transformers, tokenizer, fixture)
    np.savez(args.out / "fixture.npz", **fixture)
    (args.out / "parity.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def torch_inputs_np(b) -> dict:
    return {k: getattr(b, k) for k in ("input_ids", "token_type_ids", "attention_mask")}


def embedding_grads(torch, transformers, tokenizer, fixture) -> dict:  # pragma: no cover
    """Relative error of our word-embedding gradient against HF's on a padded batch: sequence
    classification (first step above) and pre-training (tied decoder) with MLM labels."""
    out = {}
    batch = make_batches(tokenizer, "sequence_classification")[0]
    head = {k[len("cls.head."):]: v for k, v in fixture.items() if k.startswith("cls.head.")}
    ours = tinybert_model("sequence_classification", head).train()
    ours(**batch._asdict()).loss.backward()
    g = ours.mobilebert.embeddings.word_embeddings.weight.grad
    ref = fixture["hf_cls_word_embedding_grad"]
    out["sequence_classification"] = {"rel_err": rel(g, ref),
                                      "pad_row_norm_hf": float(np.linalg.norm(ref[0]))}
    labels = np.where(batch.input_ids % 3 == 0, batch.input_ids, -100)
    labels[batch.attention_mask == 0] = -100
    ours_pt = load_model(CHECKPOINT, "pretraining", **NO_DROPOUT).train()
    nsp = np.zeros(len(labels), np.int64)
    ours_pt(batch.input_ids, attention_mask=batch.attention_mask,
            token_type_ids=batch.token_type_ids, labels=labels,
            next_sentence_label=nsp).loss.backward()
    hf = transformers.MobileBertForPreTraining.from_pretrained(str(CHECKPOINT), **NO_DROPOUT)
    hf.train()
    hf(input_ids=torch.from_numpy(batch.input_ids), attention_mask=torch.from_numpy(
        batch.attention_mask), token_type_ids=torch.from_numpy(batch.token_type_ids),
       labels=torch.from_numpy(labels), next_sentence_label=torch.from_numpy(nsp)).loss.backward()
    ref = _np(hf.mobilebert.embeddings.word_embeddings.weight.grad).copy()
    fixture["pt.mlm_labels"] = labels
    fixture["pt.hf_word_embedding_grad"] = ref
    g = ours_pt.mobilebert.embeddings.word_embeddings.weight.grad
    out["pretraining"] = {"rel_err": rel(g, ref), "pad_row_rel_err": rel(g[0], ref[0]),
                          "pad_row_norm_hf": float(np.linalg.norm(ref[0]))}
    return out


if __name__ == "__main__":
    main()
