"""The quickstart's seven stages, each a call of the library recipe the CLI command uses.

Each `stage_<name>(ctx)` returns (resumed, info): whether it continued a checkpoint, and what
quickstart.json records about it (paths relative to the output directory, key numbers).
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tinybert_core.quickstart.pipeline import (Context, fresh_or_resume, rel,
                                               resolve_model_config, task_options, task_paths)





def _train_args(ctx: Context, steps: int, lr: float, **extra: Any) -> dict[str, Any]:
    every = max(1, steps // 8)
    return dict(pd_steps=steps, learning_rate=lr, eval_every=every, save_every=every,
                seed=ctx.s.seed, **extra)


# --- the stages ---------------------------------------------------------------------------------

def stage_vocab(ctx: Context) -> tuple[bool, dict[str, Any]]:
    """The vocabulary (the embedded corpus's is trained once and cached), and the task files."""
    from autograd.files import atomic_write_text
    from tinybert_core.data.embedded_task import LICENCE, build_embedded_task
    from tinybert_core.text.wordpiece_trainer import save_vocab, train_wordpiece_vocab
    s = ctx.s
    out = ctx.root / "vocab" / "vocab.txt"
    fresh_or_resume(out.parent, resumable=False)
    out.parent.mkdir(parents=True)
    with ctx.reporter.stage("vocab", None, "steps"):
        if s.corpus:
            from tinybert_core.data.corpus import check_corpus
            save_vocab(train_wordpiece_vocab(check_corpus([Path(p) for p in s.corpus]),
                                             s.vocab_size), out)
            source = "trained on " + ", ".join(s.corpus)
        else:
            from tinybert_core.data.default_corpus import default_vocab_path
            shutil.copyfile(default_vocab_path(ctx.cache_dir, s.vocab_size), out)
            source = "trained on the embedded corpus (cached after the first run)"
    task_dir = ctx.root / "task"
    fresh_or_resume(task_dir, resumable=False)
    task_dir.mkdir()
    train, dev = ctx.task_files()
    if s.train_file is None:
        task = build_embedded_task(ctx.cache_dir)
        shutil.copyfile(task.train, train)
        shutil.copyfile(task.dev, dev)
        atomic_write_text(task_dir / "LICENCE.txt", LICENCE + "\n")
        task_info = {"task": "embedded: standard-library family of a docstring sentence",
                     "labels": list(task.labels), "counts": task.counts, "licence": LICENCE}
    else:
        shutil.copyfile(s.train_file, train.with_suffix(Path(s.train_file).suffix))
        shutil.copyfile(s.dev_file, dev.with_suffix(Path(s.dev_file).suffix))
        task_info = {"task": s.task, "train_file": s.train_file, "dev_file": s.dev_file}
    tokens = sum(1 for line in out.read_text(encoding="utf-8").splitlines() if line)
    return False, {"vocab": rel(ctx.run, out), "tokens": tokens, "source": source, **task_info}


def stage_teacher(ctx: Context) -> tuple[bool, dict[str, Any]]:
    from tinybert_core.recipes import pretrain
    s, d = ctx.s, ctx.root / "teacher"
    resume = fresh_or_resume(d, resumable=True)
    config = resolve_model_config(ctx.run, s.teacher_config, "teacher")
    with ctx.training("teacher", s.teacher_steps) as bar:
        summary = pretrain(config, d, ctx.data(), _train_args(ctx, s.teacher_steps, s.teacher_lr),
                           on_step=lambda r: bar.update(1, r), resume=resume, seed=s.seed)
    return resume, {"model": rel(ctx.run, summary["model_dir"]), "steps": summary["steps"],
                    "eval": summary.get("eval", {})}


def stage_student(ctx: Context) -> tuple[bool, dict[str, Any]]:
    from tinybert_core.config import MobileBertConfig
    from tinybert_core.distillation.strategies import KTOptions
    from tinybert_core.recipes import distill
    s, d = ctx.s, ctx.root / "student"
    resume = fresh_or_resume(d, resumable=True)
    config = resolve_model_config(ctx.run, s.student_config, "student")
    layers = MobileBertConfig.from_pretrained(config).num_hidden_layers
    total = layers * s.kt_steps_per_layer + s.pd_steps
    with ctx.training(f"student ({s.strategy})", total) as bar:
        summary = distill(ctx.root / "teacher" / "model", config, d, s.strategy, ctx.data(),
                          _train_args(ctx, s.pd_steps, s.student_lr,
                                      kt_steps_per_layer=s.kt_steps_per_layer),
                          KTOptions(), on_step=lambda r: bar.update(1, r), resume=resume,
                          seed=s.seed)
    return resume, {"model": rel(ctx.run, summary["model_dir"]), "steps": summary["steps"],
                    "strategy": s.strategy, "eval": summary.get("eval", {})}


def stage_finetune(ctx: Context) -> tuple[bool, dict[str, Any]]:
    import math

    from tinybert_core.finetuning import FinetuneOptions, finetune
    s, d = ctx.s, ctx.root / "finetune"
    resume = fresh_or_resume(d, resumable=True)
    train, dev = task_paths(ctx)
    fopts = FinetuneOptions(epochs=s.finetune_epochs, batch_size=s.finetune_batch_size,
                            lr=s.finetune_lr, seed=s.seed,
                            max_train_examples=s.max_train_examples)
    n = sum(1 for _ in open(train, encoding="utf-8")) - 1
    n = min(n, s.max_train_examples or n)
    total = max(1, math.ceil(s.finetune_epochs * math.ceil(n / s.finetune_batch_size)))
    with ctx.training("finetune", total) as bar:
        summary = finetune(ctx.root / "student" / "model", d, train, dev, task_options(ctx),
                           fopts, resume=resume, on_step=lambda r: bar.update(1, r))
    results = summary["results"]
    best = results.get("best_model") or results["model"]
    return resume, {"model": rel(ctx.run, best), "metric": results["metric"],
                    "results": rel(ctx.run, d / "eval_results.json")}


def stage_quantize(ctx: Context) -> tuple[bool, dict[str, Any]]:
    from tinybert_core.quantize import quantize
    d = ctx.root / "int8"
    fresh_or_resume(d, resumable=False)
    model = ctx.root / ctx.run.info("finetune")["model"]
    calibration = [Path(p) for p in ctx.s.eval_corpus]
    with ctx.reporter.stage("quantize", None, "sequences") as bar:
        summary = quantize(model, d, mode="dynamic", calibration_files=calibration,
                           max_seq_length=ctx.s.max_seq_length, cache_dir=ctx.cache_dir,
                           on_progress=lambda stage, done, total: bar.update(1, stage,
                                                                             total=total))
    return False, {"model": rel(ctx.run, d), "mode": "dynamic",
                   "report": rel(ctx.run, summary["report_file"])}


def stage_evaluate(ctx: Context) -> tuple[bool, dict[str, Any]]:
    from tinybert_core.quickstart import measure
    d = ctx.root / "eval"
    fresh_or_resume(d, resumable=False)
    d.mkdir()
    files = measure.measure_all(ctx, d)
    return False, {name: rel(ctx.run, path) for name, path in files.items()}


def stage_report(ctx: Context) -> tuple[bool, dict[str, Any]]:
    from tinybert_core.quickstart import report
    with ctx.reporter.stage("report", None, "files"):
        path, pictures = report.write_report(ctx.run)
    if pictures is None:
        ctx.reporter.note("report without pictures: matplotlib is not installed "
                          "(pip install 'tinybert[plots]')")
    return False, {"report": rel(ctx.run, path), "pictures": pictures or []}


__all__ = [f"stage_{name}" for name in ("vocab", "teacher", "student", "finetune", "quantize",
                                          "evaluate", "report")]
