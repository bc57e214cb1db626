"""Fine-tuning parity with transformers + torch, replayed from committed fixtures.

`scripts/finetune_parity.py` (run with torch + transformers) took ten AdamW steps of sequence
classification and of QA from one checkpoint and the same padded batches, dropout off, on both
sides, and kept HF's losses, its trained models (saved by transformers) and their logits, and
HF's word-embedding gradients. Here tinybert's side runs again, through the fine-tuning loop,
without torch.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from paths import FIXTURES, MODEL_FIXTURES
from tinybert_core import load_model
from tinybert_core.data.tasks import ClassificationBatch, QABatch
from tinybert_core.distillation.strategies import Stage
from tinybert_core.training.loop import TrainingArguments, train

PARITY = FIXTURES / "finetune_parity"
CHECKPOINT = MODEL_FIXTURES / "mobilebert-kq-shared"
REPORT = json.loads((PARITY / "parity.json").read_text())
FIX = dict(np.load(PARITY / "fixture.npz"))
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
              "classifier_dropout": 0.0}
CASES = {"sequence_classification": ("cls", ClassificationBatch, {"num_labels": 3}),
         "question_answering": ("qa", QABatch, {})}


def batches(key: str, kind: type) -> list:
    n = len({k.split(".")[1] for k in FIX if k.startswith(f"{key}.batch")})
    return [kind(**{f: FIX[f"{key}.batch{i}.{f}"] for f in kind._fields}) for i in range(n)]


def model_with_head(task: str):
    key, _, extra = CASES[task]
    model = load_model(CHECKPOINT, task, **NO_DROPOUT, **extra)
    params = dict(model.named_parameters())
    for name in [k for k in FIX if k.startswith(f"{key}.head.")]:
        p = params[name[len(f"{key}.head."):]]
        p.data = p.backend.asarray(FIX[name].copy())
    return model


class ListBatches:
    def __init__(self, items: list) -> None:
        self.items, self.i = items, 0

    def __next__(self):
        self.i += 1
        return self.items[self.i - 1]

    def state(self) -> dict:
        return {"i": self.i}

    def load_state(self, state: dict) -> None:
        self.i = int(state["i"])


@pytest.mark.parametrize("task", sorted(CASES))
def test_ten_adamw_steps_give_transformers_losses(task, tmp_path):
    key, kind, _ = CASES[task]
    steps, r = REPORT["steps"], REPORT
    model = model_with_head(task)
    stage = Stage("finetune", steps, lambda m, _, b: {"loss": m(**b._asdict()).loss},
                  needs_teacher=False, warmup_proportion=r["warmup_proportion"])
    args = TrainingArguments(output_dir=tmp_path / "run", learning_rate=r["lr"], end_lr_rate=0.0,
                             warmup_proportion=r["warmup_proportion"],
                             weight_decay=r["weight_decay"], max_grad_norm=r["max_grad_norm"],
                             eval_every=steps, save_every=steps, optimizer="adamw",
                             adam_epsilon=r["adam_epsilon"], bias_correction=True)
    train(model, args, ListBatches(batches(key, kind)[:steps]), stages=[stage])
    log = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    ours, hf = np.array([x["loss"] for x in log]), FIX[f"{key}.hf_losses"]
    assert len(ours) == len(hf) == 10
    np.testing.assert_allclose(ours, hf, rtol=1e-5, atol=0)
    assert abs(ours[-1] - ours[0]) > 1e-3          # the steps did move the weights


@pytest.mark.parametrize("task", sorted(CASES))
def test_models_finetuned_and_saved_by_transformers_load_with_their_logits(task):
    key, kind, _ = CASES[task]
    model = load_model(PARITY / f"hf_{task}", task)
    assert model.loading_info["missing_keys"] == []
    b = batches(key, kind)[-1]
    out = model(b.input_ids, attention_mask=b.attention_mask, token_type_ids=b.token_type_ids)
    logits = out.logits.numpy() if task == "sequence_classification" else \
        np.stack([out.start_logits.numpy(), out.end_logits.numpy()], axis=-1)
    ref = FIX[f"{key}.hf_logits"]
    assert np.abs(logits - ref).max() <= 1e-5 * np.abs(ref).max()


def test_word_embedding_gradient_matches_transformers_on_padded_batches():
    """padding_idx: the lookup sends [PAD] (row 0) no gradient; pre-training's tied decoder
    still does. Before padding_idx ours differed from HF's by 5.5e-2, all in row 0."""
    b = batches("cls", ClassificationBatch)[0]
    assert (b.attention_mask == 0).any()
    model = model_with_head("sequence_classification").train()
    model(**b._asdict()).loss.backward()
    g = model.mobilebert.embeddings.word_embeddings.weight.grad
    ref = FIX["hf_cls_word_embedding_grad"]
    assert not ref[0].any() and not g[0].any()
    assert np.abs(g - ref).max() <= 1e-5 * np.abs(ref).max()
    pt = load_model(CHECKPOINT, "pretraining", **NO_DROPOUT).train()
    labels = FIX["pt.mlm_labels"]
    pt(b.input_ids, attention_mask=b.attention_mask, token_type_ids=b.token_type_ids,
       labels=labels, next_sentence_label=np.zeros(len(labels), np.int64)).loss.backward()
    g = pt.mobilebert.embeddings.word_embeddings.weight.grad
    ref = FIX["pt.hf_word_embedding_grad"]
    assert np.abs(ref[0]).max() > 0                 # the decoder's share
    assert np.abs(g - ref).max() <= 1e-5 * np.abs(ref).max()


@pytest.mark.parametrize("task", sorted(CASES))
def test_models_saved_by_tinybert_load_in_transformers(task, tmp_path):
    """The other direction, live (needs torch + transformers)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    key, kind, _ = CASES[task]
    model = model_with_head(task).eval()
    model.save_pretrained(tmp_path / "m")
    cls = {"sequence_classification": transformers.MobileBertForSequenceClassification,
           "question_answering": transformers.MobileBertForQuestionAnswering}[task]
    hf = cls.from_pretrained(str(tmp_path / "m")).eval()
    b = batches(key, kind)[-1]
    inputs = {k: getattr(b, k) for k in ("input_ids", "token_type_ids", "attention_mask")}
    with torch.no_grad():
        theirs = hf(**{k: torch.from_numpy(v) for k, v in inputs.items()})
    ours = model(**inputs)
    for name in ("logits",) if task == "sequence_classification" else ("start_logits",
                                                                           "end_logits"):
        a, r = getattr(ours, name).numpy(), getattr(theirs, name).numpy()
        assert np.abs(a - r).max() <= 1e-5 * np.abs(r).max()
