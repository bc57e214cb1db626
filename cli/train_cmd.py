"""`tinybert pretrain` and `tinybert distill`: thin shells over `tinybert_core.recipes`, with
progress (loss, learning rate, tokens/s), one-line errors, and a resume line on Ctrl-C.

Under mpiexec (cli/parallel.py) both train data-parallel: rank 0 shows the progress and the
summary, the others stay silent, and an error on any rank ends the whole job."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import click

from cli.errors import interruptible, user_errors
from cli.evaluate_cmd import describe_eval
from cli.options import (IN_DIR, POSITIVE, config_option, json_option, text_options,
                         train_options)
from cli.parallel import current_data_parallel, ending_job_on_error, is_speaker, rank0_progress
from tinybert_core import recipes
from tinybert_core.distillation.strategies import STRATEGIES, KTOptions
from tinybert_core.training.loop import TrainingArguments

_DEFAULTS = TrainingArguments  # the library's defaults are the CLI's, defined once


def _check_run_flags(kw: dict[str, Any]) -> None:
    if kw["resume"] and kw["overwrite"]:
        raise click.UsageError("--resume and --overwrite-output-dir exclude each other: one "
                               "continues the run in --output-dir, the other deletes it")


def _notes(kw: dict[str, Any]) -> None:
    """Say what a default does when it could mislead."""
    if kw["corpus"] and not kw["eval_corpus"] and is_speaker():
        click.echo("note: --corpus without --eval-corpus: no held-out evaluation during this "
                   "run (pass --eval-corpus FILE to measure it)", err=True)


def _data(kw: dict[str, Any]) -> recipes.DataOptions:
    return recipes.DataOptions(
        corpus=list(kw["corpus"]) or None, eval_corpus=list(kw["eval_corpus"]) or None,
        vocab=kw["vocab"], batch_size=kw["batch_size"], max_seq_length=kw["max_seq_length"],
        max_predictions_per_seq=kw["max_predictions"], mlm_probability=kw["mlm_probability"],
        whole_word_mask=kw["whole_word_mask"], eval_batches=kw["eval_batches"],
        cache_dir=kw["cache_dir"], seed=kw["seed"])


def _args(kw: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return dict(learning_rate=kw["lr"], warmup_proportion=kw["warmup"],
                weight_decay=kw["weight_decay"], max_grad_norm=kw["max_grad_norm"],
                gradient_accumulation_steps=kw["grad_accum"], eval_every=kw["eval_every"],
                save_every=kw["save_every"], seed=kw["seed"], **extra)


def _describe_step(record: dict) -> str:
    text = f"{record['stage']} loss {record['loss']:.4f} lr {record['lr']:.2e} " \
           f"{record['tokens_per_s']:.0f} tok/s"
    if "eval_mlm_loss" in record:
        text += f" eval {record['eval_mlm_loss']:.3f}/{record['eval_mlm_accuracy']:.3f}"
        if "eval_unigram_loss" in record:
            text += f" (unigram {record['eval_unigram_loss']:.3f}/" \
                    f"{record['eval_unigram_accuracy']:.3f})"
    return text


def _run(label: str, total: int, work: Callable[[Callable[[dict], None]], dict],
         options: dict[str, str] | None = None) -> dict:
    """Run `work(on_step)` with progress; errors become one line, Ctrl-C a resume line.
    Under MPI only rank 0 shows progress, and an error on any rank ends every process."""
    ctx = click.get_current_context()
    with ending_job_on_error(current_data_parallel()), interruptible(ctx), user_errors(options), \
            rank0_progress(total, label, unit="steps", describe=_describe_step) as bar:
        return work(lambda record: bar.update(1, record))


def _report(summary: dict, as_json: bool) -> None:
    if not is_speaker():
        return
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"trained {summary['steps']}/{summary['total_steps']} steps; checkpoint "
               f"{summary['checkpoint']}")
    if summary.get("eval"):
        for line in describe_eval(summary["eval"]):
            click.echo(line)
    else:
        click.echo("no held-out evaluation: pass --eval-corpus FILE to see the held-out loss "
                   "next to the unigram baseline")
    if summary.get("model_dir"):
        click.echo(f"model saved to {summary['model_dir']}")


@click.command("pretrain", epilog="Example: tinybert pretrain --config ib-bert-small "
               "--corpus sotu-train.txt --eval-corpus sotu-valid.txt --output-dir runs/teacher")
@config_option("mobilebert-small", "Model to create (a teacher, or the student baseline)")
@click.option("--steps", type=POSITIVE, default=_DEFAULTS.pd_steps, show_default=True,
              help="Optimizer steps in total (with --resume: may exceed the finished run's).")
@text_options
@train_options
@json_option("the summary")
def pretrain_command(config: str | Path, steps: int, as_json: bool, **kw: Any) -> None:
    """Pre-train a model with masked-LM + next-sentence prediction (no teacher).

    This trains an IB-BERT teacher, or the student baseline that the distillation strategies
    are compared with. Writes OUTPUT_DIR/checkpoint.npz every --save-every steps,
    OUTPUT_DIR/metrics.jsonl every step, and OUTPUT_DIR/model (Hugging Face layout) at the end.
    A run locks OUTPUT_DIR and starts only in an empty or new one, unless --resume or
    --overwrite-output-dir.
    """
    _check_run_flags(kw)
    _notes(kw)
    summary = _run("pretrain", steps, lambda on_step: recipes.pretrain(
        config, kw["output_dir"], _data(kw), _args(kw, pd_steps=steps), on_step=on_step,
        resume=kw["resume"], seed=kw["seed"], overwrite=kw["overwrite"],
        data_parallel=current_data_parallel()))
    _report(summary, as_json)


@click.command("distill", epilog="Example: tinybert distill runs/teacher/model --strategy "
               "progressive --kt-steps-per-layer 100 --pd-steps 400 --output-dir runs/pkt")
@click.argument("teacher_dir", type=IN_DIR, metavar="TEACHER_DIR")
@config_option("mobilebert-small", "Student to create (must match the teacher's widths and "
                                   "depth for layer-wise transfer)")
@click.option("--strategy", type=click.Choice(STRATEGIES), default="progressive",
              show_default=True, help="Knowledge-transfer strategy (paper section 4.3).")
@click.option("--kt-steps-per-layer", type=click.IntRange(min=0), default=50, show_default=True,
              help="Layer-wise transfer steps per block (all strategies get L x this + PD).")
@click.option("--pd-steps", type=click.IntRange(min=0), default=200, show_default=True,
              help="Pre-training distillation steps (with --resume: may grow).")
@click.option("--alpha", type=click.FloatRange(min=0.0, max=1.0), default=0.5,
              show_default=True, help="PD weight of the true MLM loss (1 - alpha: the KD loss).")
@click.option("--temperature", type=click.FloatRange(min=0.0, min_open=True), default=1.0,
              show_default=True, help="Softmax temperature of the KD loss.")
@click.option("--google-kt", is_flag=True,
              help="Google's KT losses: normalised FMT x100, AT, mean x5000, variance x5, /L.")
@click.option("--lower-layer-lr", type=click.FloatRange(min=0.0), default=0.0,
              show_default=True,
              help="Progressive: lr multiplier of finished blocks (0 freezes; Google 0.1).")
@click.option("--init-from-teacher/--no-init-from-teacher", default=None,
              help="Copy the teacher's embeddings and heads first  [default: unless "
                   "--strategy none]")
@text_options
@train_options
@json_option("the summary")
def distill_command(teacher_dir: Path, config: str | Path, strategy: str,
                    kt_steps_per_layer: int, pd_steps: int, alpha: float, temperature: float,
                    google_kt: bool, lower_layer_lr: float, init_from_teacher: bool | None,
                    as_json: bool, **kw: Any) -> None:
    """Transfer the knowledge of the teacher in TEACHER_DIR into a MobileBERT student.

    TEACHER_DIR is a model directory (e.g. runs/teacher/model from `tinybert pretrain`); it is
    positional because it is the one model the command reads. Strategies (paper section
    4.3): progressive (one stage per block, then pre-training distillation), joint (all blocks
    at once, then PD), auxiliary (everything in one loss), none (the student alone with MLM +
    NSP). Embeddings and heads are copied from the teacher.
    """
    from tinybert_core.config import MobileBertConfig
    _check_run_flags(kw)
    _notes(kw)
    with user_errors():
        layers = MobileBertConfig.from_pretrained(config).num_hidden_layers
    if layers * kt_steps_per_layer + pd_steps == 0:
        raise click.UsageError("nothing to train: --kt-steps-per-layer and --pd-steps are 0")
    kt = KTOptions(alpha=alpha, temperature=temperature, google_kt=google_kt,
                   progressive_lower_lr=lower_layer_lr)
    total = layers * kt_steps_per_layer + pd_steps
    summary = _run(f"distill ({strategy})", total, lambda on_step: recipes.distill(
        teacher_dir, config, kw["output_dir"], strategy, _data(kw),
        _args(kw, pd_steps=pd_steps, kt_steps_per_layer=kt_steps_per_layer), kt,
        on_step=on_step, resume=kw["resume"], seed=kw["seed"],
        init_from_teacher=init_from_teacher, overwrite=kw["overwrite"],
        data_parallel=current_data_parallel()),
        options={"pd_steps": "--pd-steps"})
    _report(summary, as_json)
