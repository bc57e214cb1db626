"""The quickstart's evaluation stage: every number the report shows, measured once and saved
under OUTPUT_DIR/eval/ as JSON (and the attention maps as .npz), through the library's own
code paths: `recipes.evaluate` (held-out MLM, with the unigram baseline when the library
reports it), `finetuning.evaluate` (task scores next to the majority baseline, float and int8),
`inference.fill_mask`, `teaching.attention` (L_FMT / L_AT per layer). Latency is measured
here: one sentence at a time (batch 1), the median over the dev sentences, float vs int8.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from autograd.files import atomic_write_text
from autograd.function import no_grad
from autograd.serialization import save_npz

N_FILL_MASK = 4
N_CLASSIFY = 6


def _write(path: Path, data: Any) -> Path:
    atomic_write_text(path, json.dumps(data, indent=1, default=_plain) + "\n")
    return path


def _plain(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def measure_all(ctx: Any, out: Path) -> dict[str, Path]:
    rep = ctx.reporter
    files = {}
    with rep.stage("evaluate: held-out MLM", 2, "models") as bar:
        files["mlm"] = _write(out / "mlm.json", held_out_mlm(ctx, bar))
    with rep.stage("evaluate: task, float and int8", 2, "models") as bar:
        files["task"] = _write(out / "task.json", task_scores(ctx, out, bar))
    with rep.stage("evaluate: latency", 2, "models") as bar:
        files["latency"] = _write(out / "latency.json", latency(ctx, bar))
    with rep.stage("evaluate: examples and attention", 3, "parts") as bar:
        files["examples"] = _write(out / "examples.json", examples(ctx))
        bar.update(1)
        comparison, maps = teacher_student(ctx)
        bar.update(1)
        files["compare"] = _write(out / "compare.json", comparison)
        save_npz(out / "attention.npz", maps)
        files["attention"] = out / "attention.npz"
        bar.update(1)
    return files


def _mlm_data(ctx: Any) -> Any:
    from dataclasses import replace
    return replace(ctx.data(), vocab=None)          # each model's own vocab.txt


def held_out_mlm(ctx: Any, bar: Any) -> dict[str, Any]:
    from tinybert_core.recipes import evaluate
    result = {}
    for name in ("teacher", "student"):
        model_dir = ctx.root / ctx.run.info(name)["model"]
        result[name] = evaluate(model_dir, _mlm_data(ctx))
        bar.update(1, name)
    return result


def task_scores(ctx: Any, out: Path, bar: Any) -> dict[str, Any]:
    from tinybert_core.finetuning import evaluate
    from tinybert_core.quickstart.pipeline import task_options, task_paths
    train, dev = task_paths(ctx)
    result = {}
    for name, model in (("float", ctx.run.info("finetune")["model"]),
                        ("int8", ctx.run.info("quantize")["model"])):
        result[name] = evaluate(ctx.root / model, dev, task_options(ctx), out / f"task-{name}",
                                train_file=train, overwrite=True)
        bar.update(1, name)
    return result


def _dev_sentences(ctx: Any, n: int) -> list[Any]:
    from tinybert_core.data import tasks as T
    from tinybert_core.data.glue import read_task_file
    from tinybert_core.quickstart.pipeline import task_paths
    _, dev = task_paths(ctx)
    return read_task_file(dev, T.resolve_task(ctx.s.task).name)[:n]


def _classifier(ctx: Any, stage: str) -> tuple[Any, Any]:
    from tinybert_core.data import tasks as T
    from tinybert_core.finetuning import load_finetuned, load_tokenizer
    model_dir = ctx.root / ctx.run.info(stage)["model"]
    model = load_finetuned(model_dir, T.resolve_task(ctx.s.task))
    model.eval()
    return model, load_tokenizer(model_dir)


def _encode(tokenizer: Any, ex: Any, max_len: int) -> np.ndarray:
    enc = tokenizer(ex.text_a, ex.text_b, truncation=True, max_length=max_len) \
        if ex.text_b else tokenizer(ex.text_a, truncation=True, max_length=max_len)
    return np.asarray(enc["input_ids"], np.int64)[None]


def latency(ctx: Any, bar: Any) -> dict[str, Any]:
    """Milliseconds per sentence at batch 1 (median, and the spread), float vs int8."""
    sentences = _dev_sentences(ctx, ctx.s.latency_sentences)
    from tinybert_core.quantization import get_int8_dispatch
    result: dict[str, Any] = {"sentences": len(sentences), "batch_size": 1,
                              "int8_dispatch": get_int8_dispatch()}
    for name, stage in (("float", "finetune"), ("int8", "quantize")):
        model, tok = _classifier(ctx, stage)
        ids = [_encode(tok, ex, ctx.s.max_seq_length) for ex in sentences]
        times = []
        with no_grad():
            model(ids[0])                                     # warm-up (first-call costs)
            for x in ids:
                start = time.perf_counter()
                model(x)
                times.append(1000.0 * (time.perf_counter() - start))
        result[name] = {"median_ms": float(np.median(times)),
                        "p90_ms": float(np.percentile(times, 90)),
                        "mean_tokens": float(np.mean([x.shape[1] for x in ids]))}
        bar.update(1, name)
    result["speedup"] = result["float"]["median_ms"] / result["int8"]["median_ms"]
    return result


def _masked_examples(ctx: Any, tokenizer: Any, n: int) -> list[tuple[str, str]]:
    """(text with one [MASK], the hidden word) from held-out lines: the longest word that is
    one token of the vocabulary, in the first lines of 6 to 20 words."""
    from tinybert_core.data.default_corpus import build_default_corpus
    paths = [Path(p) for p in ctx.s.eval_corpus] or [build_default_corpus(ctx.cache_dir).valid]
    out = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            words = line.split()
            if not 6 <= len(words) <= 20:
                continue
            candidates = [(len(w), i) for i, w in enumerate(words)
                          if w.isalpha() and len(w) > 3 and tokenizer.tokenize(w) == [w.lower()]]
            if not candidates:
                continue
            _, i = max(candidates)
            out.append((" ".join(words[:i] + [tokenizer.mask_token] + words[i + 1:]),
                        words[i].lower()))
            if len(out) == n:
                return out
    return out


def examples(ctx: Any) -> dict[str, Any]:
    """Fill-mask from the teacher, the student and the student quantized to int8 in memory
    (the quantize stage's code path on the pre-training model); classification of dev
    sentences by the fine-tuned student, float and int8."""
    from tinybert_core.inference import fill_mask
    from tinybert_core.models.auto import load_model
    from tinybert_core.quantization import quantize_model
    from tinybert_core.text.tokenization import BertTokenizer
    teacher_dir = ctx.root / ctx.run.info("teacher")["model"]
    student_dir = ctx.root / ctx.run.info("student")["model"]
    tok = BertTokenizer.from_pretrained(teacher_dir)
    student = load_model(student_dir, "masked_lm").eval()
    models = {"teacher": load_model(teacher_dir, "masked_lm").eval(), "student": student,
              "student int8": quantize_model(student, mode="dynamic")}
    fills = []
    for text, answer in _masked_examples(ctx, tok, N_FILL_MASK):
        row: dict[str, Any] = {"text": text, "answer": answer}
        for name, model in models.items():
            top = fill_mask(model, tok, text, top_k=3)[0]
            row[name] = [(e["token"], round(e["score"], 4)) for e in top]
        fills.append(row)
    classify = []
    sentences = _dev_sentences(ctx, 400)
    picked = _spread(sentences, N_CLASSIFY)
    clf = {name: _classifier(ctx, stage) for name, stage in
           (("student", "finetune"), ("student int8", "quantize"))}
    for ex in picked:
        row = {"text": ex.text_a, "label": ex.label}
        for name, (model, t) in clf.items():
            with no_grad():
                logits = model(_encode(t, ex, ctx.s.max_seq_length)).logits.numpy()[0]
            labels = model.config.label_names
            p = np.exp(logits - logits.max())
            p /= p.sum()
            row[name] = (labels[int(p.argmax())], round(float(p.max()), 4))
        classify.append(row)
    return {"fill_mask": fills, "classification": classify}


def _spread(examples: list[Any], n: int) -> list[Any]:
    """Up to n examples, one label after another (so every label shows up)."""
    by_label: dict[Any, list[Any]] = {}
    for ex in examples:
        by_label.setdefault(ex.label, []).append(ex)
    out: list[Any] = []
    depth = 0
    while len(out) < n and any(depth < len(v) for v in by_label.values()):
        for v in by_label.values():
            if depth < len(v) and len(out) < n:
                out.append(v[depth])
        depth += 1
    return out


COMPARE_TEXT = "Return a new list containing the items of the iterable in sorted order."


def teacher_student(ctx: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Attention maps of teacher and student on one sentence, and per layer the distance
    feature-map transfer and attention transfer minimise."""
    from tinybert_core.teaching.attention import (attention_view, compare_models,
                                                  load_for_attention)
    views = {}
    for name in ("teacher", "student"):
        backbone, tok = load_for_attention(ctx.root / ctx.run.info(name)["model"])
        views[name] = attention_view(backbone, tok, COMPARE_TEXT, ctx.s.max_seq_length)
    rows = compare_models(views["teacher"], views["student"])
    return ({"text": COMPARE_TEXT, "tokens": views["teacher"].tokens, "layers": rows},
            {"teacher": views["teacher"].probs, "student": views["student"].probs})


__all__ = ["COMPARE_TEXT", "examples", "held_out_mlm", "latency", "measure_all",
           "task_scores", "teacher_student"]
