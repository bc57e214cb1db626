"""The reference side of docs/finetuning.md's check: fine-tune a model saved by tinybert on a
shared GLUE-format task with transformers + torch, and print the dev accuracy every epoch.

Same recipe as `tinybert finetune` (AdamW with weight decay 0.01, linear warm-up over 10 % of
the steps then linear decay to 0, global-norm clipping at 1.0, batch 32, dropout as the
model's config says), so that a run of tinybert from the same directory can be put next to
it. Data order and dropout masks are torch's own (seeded by --seed), not tinybert's.

    /work/refvenv/bin/python scripts/finetune_reference.py MODEL_DIR \\
        --data ../shared/data/glue/epistemic --lr 1e-4 --epochs 20 [--eps 1e-6]

MODEL_DIR holds config.json, model.safetensors and vocab.txt (e.g. a tinybert `--from-scratch`
model saved before training, or a distilled student); `model_type` picks BERT or MobileBERT.
Needs torch + transformers (the reference venv); tinybert never imports them.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import torch
from transformers import (BertForSequenceClassification, BertTokenizer,
                          MobileBertForSequenceClassification)


def read(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model_dir", type=Path)
    p.add_argument("--data", type=Path, required=True, help="directory with train.tsv, dev.tsv")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--eps", type=float, default=1e-8, help="AdamW epsilon")
    p.add_argument("--max-seq-length", type=int, default=64)
    p.add_argument("--max-train-examples", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    tok = BertTokenizer.from_pretrained(str(args.model_dir), do_lower_case=True)
    train, dev = read(args.data / "train.tsv"), read(args.data / "dev.tsv")
    train = train[:args.max_train_examples] if args.max_train_examples else train
    labels = sorted({r["label"] for r in train})
    label_id = {name: i for i, name in enumerate(labels)}

    def encode(rows: list[dict[str, str]]) -> tuple[dict, torch.Tensor]:
        enc = tok([r["sentence1"] for r in rows], [r["sentence2"] for r in rows],
                  truncation=True, max_length=args.max_seq_length, padding="max_length",
                  return_tensors="pt")
        return enc, torch.tensor([label_id[r["label"]] for r in rows])

    (x_train, y_train), (x_dev, y_dev) = encode(train), encode(dev)
    model_type = json.loads((args.model_dir / "config.json").read_text())["model_type"]
    cls = BertForSequenceClassification if model_type == "bert" else \
        MobileBertForSequenceClassification
    model = cls.from_pretrained(str(args.model_dir), num_labels=len(labels))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, eps=args.eps)
    n = len(y_train)
    steps = args.epochs * ((n + 31) // 32)
    warm = 0.1 * steps
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / (steps - warm))))
    majority = (y_dev == torch.bincount(y_train).argmax()).float().mean().item()
    order = torch.Generator().manual_seed(args.seed)
    for epoch in range(1, args.epochs + 1):
        model.train()
        losses = []
        perm = torch.randperm(n, generator=order)
        for i in range(0, n, 32):
            idx = perm[i:i + 32]
            out = model(**{k: v[idx] for k, v in x_train.items()}, labels=y_train[idx])
            opt.zero_grad()
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(out.loss.item())
        model.eval()
        with torch.no_grad():
            logits = model(**x_dev).logits
        acc = (logits.argmax(-1) == y_dev).float().mean().item()
        print(json.dumps({"epoch": epoch, "train_loss": round(float(np.mean(losses)), 4),
                          "dev_acc": round(acc, 4), "majority": round(majority, 4)}),
              flush=True)


if __name__ == "__main__":
    main()
