"""`tinybert finetune`, `evaluate` and `predict`: thin shells over `tinybert_core.finetuning`,
with progress (`cli/progress.py`: a bar on a terminal, lines otherwise) on training (loss,
learning rate, tokens/s, the last dev score) and on every pass over a file.

Under mpiexec (cli/parallel.py) finetune trains data-parallel: rank 0 shows the progress and
the results, the others stay silent, and an error on any rank ends the whole job."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from cli.errors import interruptible, user_errors
from cli.options import (IN_FILE, OUT_DIR, OUT_FILE, POSITIVE, SEED, json_option,
                         model_dir_argument)
from cli.parallel import current_data_parallel, ending_job_on_error, is_speaker, rank0_progress
from cli.progress import progress
from tinybert_core import finetuning as FT
from tinybert_core.data.tasks import TASK_NAMES
from tinybert_core.quantization.qat import QATConfig, default_activation_max

# A refused --resume names the option that differs (the field ResumeMismatch names).
_OPTIONS = {"config": "MODEL_DIR", "pd_steps": "--epochs / --max-steps",
            "n": "--train-file / --max-train-examples", "batch_size": "--batch-size"}
_TASK_HELP = f"Task: {', '.join(TASK_NAMES)} (GLUE aliases such as sst2, stsb accepted)."


def task_options(fn: Callable) -> Callable:
    """How task files become inputs: shared by finetune, evaluate and predict."""
    options = [
        click.option("--task", required=True, help=_TASK_HELP),
        click.option("--max-seq-length", type=click.IntRange(min=8), default=None,
                     help="Tokens per input [default: the model's fine-tuning value, else "
                          "128 (SQuAD 384) or the model's max_position_embeddings if less]."),
        click.option("--doc-stride", type=POSITIVE, default=None,
                     help="SQuAD: tokens between the starts of two windows (Google's step, "
                          "not HF's overlap) [default: 128, or the model's fine-tuning value]."),
        click.option("--max-query-length", type=POSITIVE, default=None,
                     help="SQuAD: question tokens kept [default: 64, or the model's "
                          "fine-tuning value]."),
        click.option("--labels", default=None,
                     help="Task custom: comma-separated labels [default: the model's, else "
                          "the training file's, sorted]."),
        click.option("--eval-batch-size", type=POSITIVE, default=64,
                     show_default=True, help="Examples per batch when evaluating."),
        click.option("--n-best-size", type=POSITIVE, default=20, show_default=True,
                     help="SQuAD: candidate answers kept per question."),
        click.option("--max-answer-length", type=POSITIVE, default=30,
                     show_default=True, help="SQuAD: longest answer, in tokens."),
        click.option("--null-score-diff-threshold", type=click.FloatRange(), default=0.0,
                     show_default=True,
                     help="SQuAD v2.0: answer '' when null odds exceed this (use the dev "
                          "set's best_f1_thresh)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _task_opts(kw: dict[str, Any]) -> FT.TaskOptions:
    labels = [s.strip() for s in kw["labels"].split(",")] if kw["labels"] else None
    return FT.TaskOptions(task=kw["task"], max_seq_length=kw["max_seq_length"],
                          doc_stride=kw["doc_stride"], max_query_length=kw["max_query_length"],
                          labels=labels, eval_batch_size=kw["eval_batch_size"],
                          n_best_size=kw["n_best_size"], max_answer_length=kw["max_answer_length"],
                          null_score_diff_threshold=kw["null_score_diff_threshold"])


def _with_bar(label: str, work: Callable[[Callable[[int, int], None]], Any]) -> Any:
    """Run `work(on_batch)` with progress over the examples (the total arrives with the first
    batch); user errors become one-line messages."""
    with user_errors(), progress(None, label, unit="examples") as bar:
        return work(lambda done, total: bar.update(done, total=total))


def _fmt(metrics: dict[str, Any], keys: list[str]) -> str:
    return ", ".join(f"{k} {metrics[k]:.4f}" for k in keys if k in metrics)


def _keys(metrics: dict[str, Any], main: str) -> list[str]:
    squad = ["exact", "f1", "best_exact", "best_f1", "best_f1_thresh", "exact_match"]
    return [k for k in squad if k in metrics] if main == "f1" else \
        [k for k in metrics if k != "step"]


@click.command("finetune", epilog="Example: tinybert finetune runs/student/model --task mnli "
               "--train-file glue/MNLI/train.tsv --dev-file glue/MNLI/dev_matched.tsv "
               "--epochs 3 --output-dir runs/mnli")
@model_dir_argument()
@task_options
@click.option("--train-file", type=IN_FILE, required=True,
              help="Training file: GLUE TSV, or TSV/CSV/JSONL with sentence(1)/sentence2/label; "
                   "SQuAD JSON.")
@click.option("--dev-file", type=IN_FILE, default=None,
              help="Evaluated every --eval-every steps; the best weights go to OUTPUT_DIR/best.")
@click.option("--output-dir", type=OUT_DIR, default=Path("runs") / "finetune",
              show_default=True,
              help="checkpoint.npz, metrics.jsonl, best/, model/ and eval_results.json.")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=3.0,
              show_default=True, help="Passes over the training file (fractions allowed).")
@click.option("--max-steps", type=POSITIVE, default=None,
              help="Optimizer steps in all; overrides --epochs.")
@click.option("--batch-size", type=POSITIVE, default=32, show_default=True,
              help="Examples (SQuAD: windows) per optimizer step.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=5e-5,
              show_default=True, help="Peak AdamW learning rate.")
@click.option("--warmup-ratio", type=click.FloatRange(0, 1), default=0.1, show_default=True,
              help="Fraction of the steps spent warming up linearly; then linear decay to 0.")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=0.01, show_default=True,
              help="AdamW decoupled weight decay (not on biases and norms).")
@click.option("--max-grad-norm", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Global gradient-norm clip (0: none).")
@click.option("--adam-epsilon", type=click.FloatRange(min=0, min_open=True), default=1e-8,
              show_default=True, help="AdamW's epsilon (HF Trainer's default; Google's BERT "
              "used 1e-6, which stalls small models).")
@click.option("--eval-every", type=click.IntRange(min=0), default=0, show_default=True,
              help="Evaluate on --dev-file every N steps (0: every epoch).")
@click.option("--save-every", type=click.IntRange(min=0), default=0, show_default=True,
              help="Write checkpoint.npz every N steps (0: every epoch).")
@click.option("--max-train-examples", type=POSITIVE, default=None,
              help="Train on a seeded random subset of this many examples (questions).")
@click.option("--from-scratch", is_flag=True,
              help="Random weights from MODEL_DIR's config and vocab: the no-transfer baseline.")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Seeds the new head, dropout, the subsample and the data order.")
@click.option("--resume", is_flag=True, help="Continue from OUTPUT_DIR/checkpoint.npz.")
@click.option("--overwrite-output-dir", is_flag=True,
              help="Start afresh in an OUTPUT_DIR that holds another run.")
@click.option("--qat", is_flag=True,
              help="Quantization-aware training: weights and Linear inputs fake-quantized as "
                   "`tinybert quantize --mode dynamic` will quantize them (docs/int8.md).")
@click.option("--qat-activations", type=click.Choice(["per-row", "per-tensor"]),
              default="per-row", show_default=True,
              help="With --qat: the activation ranges the int8 model will use (quantize's "
                   "--activations).")
@click.option("--qat-activation-bits", type=click.Choice(["auto", "8", "7"]), default="auto",
              show_default=True,
              help="With --qat: activation codes 0..255 (8) or 0..127 (7, the AVX2 int8 "
                   "kernel's); auto: what this machine's Numba int8 kernels use.")
@click.option("--qat-keep-float", multiple=True, metavar="PATTERN",
              help="With --qat: layers to leave float32, as quantize's --keep-float "
                   "(repeatable).")
@json_option("the results")
@click.pass_context
def finetune_command(ctx: click.Context, model_dir: Path, train_file: Path,
                     dev_file: Path | None, output_dir: Path, as_json: bool, **kw: Any) -> None:
    """Fine-tune a model on a GLUE-style task or SQuAD.

    MODEL_DIR is any saved MobileBERT/BERT (a pre-trained or distilled student, a Hugging Face
    checkpoint in safetensors): its backbone is loaded and a new task head added. AdamW with
    linear warm-up and decay, gradient clipping, evaluation every epoch (or --eval-every
    steps) with the best weights kept, and resumable checkpoints. Prints the best dev score
    next to the task's baseline (majority class; SQuAD v2.0: every answer empty).
    """
    opts = _task_opts(kw)
    fopts = FT.FinetuneOptions(
        epochs=kw["epochs"], max_steps=kw["max_steps"], batch_size=kw["batch_size"],
        lr=kw["lr"], warmup_ratio=kw["warmup_ratio"], weight_decay=kw["weight_decay"],
        max_grad_norm=kw["max_grad_norm"], adam_epsilon=kw["adam_epsilon"],
        eval_every=kw["eval_every"],
        save_every=kw["save_every"], seed=kw["seed"],
        max_train_examples=kw["max_train_examples"], from_scratch=kw["from_scratch"],
        overwrite_output_dir=kw["overwrite_output_dir"], qat=_qat_config(kw))
    shown, dp = _Shown(), current_data_parallel()
    with ending_job_on_error(dp), interruptible(ctx), user_errors(_OPTIONS), \
            rank0_progress(None, "finetune", unit="steps", describe=shown.describe) as bar:
        def on_step(record: dict) -> None:
            # a resumed run starts part-way: its first update covers the steps already done
            bar.update(record["step"] - bar.done, shown.keep(record),
                       total=record["total_steps"])
        summary = FT.finetune(model_dir, output_dir, train_file, dev_file, opts, fopts,
                              resume=kw["resume"], on_step=on_step, data_parallel=dp)
    if not is_speaker():
        return
    results = summary.get("results")
    if as_json:
        click.echo(json.dumps(results or summary, indent=2))
        return
    click.echo(f"trained {summary['steps']}/{summary['total_steps']} steps; checkpoint "
               f"{summary['checkpoint']}")
    if results is None:
        return
    click.echo(f"{results['task']}: {results['seconds_per_epoch']:.1f} s per epoch "
               f"({results['steps_per_epoch']} steps of {fopts.batch_size})")
    if results.get("qat"):
        q = results["qat"]
        click.echo(f"quantization-aware: dynamic int8, activations "
                   f"{q['activations'].replace('_', '-')} 0..{q['activation_max']}; "
                   f"`tinybert quantize` (dynamic) reads these settings from config.json")
    if results["best"]:
        best, base, main = results["best"], results["baseline"], results["metric"]
        click.echo(f"best dev (step {best['step']}): {_fmt(best, _keys(best, main))}")
        click.echo(f"baseline ({'all-null answer' if main == 'f1' else 'majority class'}): "
                   f"{_fmt(base, _keys(base, main))}")
    click.echo(f"model saved to {results['model']}"
               + (f"; best to {results['best_model']}" if results["best_model"] else ""))


def _qat_config(kw: dict[str, Any]) -> QATConfig | None:
    given = [f"--{k.replace('_', '-')}" for k in ("qat_activations", "qat_activation_bits",
                                                   "qat_keep_float")
             if click.get_current_context().get_parameter_source(k).name != "DEFAULT"]
    if not kw["qat"]:
        if given:
            raise click.UsageError(f"{given[0]} needs --qat")
        return None
    bits = kw["qat_activation_bits"]
    return QATConfig(activations=kw["qat_activations"].replace("-", "_"),
                     activation_max=default_activation_max() if bits == "auto" else
                     {"8": 255, "7": 127}[bits],
                     modules_to_not_convert=list(kw["qat_keep_float"]))


class _Shown:
    """What the progress line shows: the step's loss, learning rate and speed, and the last dev
    score (kept until the next evaluation)."""

    def __init__(self) -> None:
        self.dev: dict[str, Any] = {}

    def keep(self, record: dict) -> dict:
        dev = {k[5:]: v for k, v in record.items() if k.startswith("eval_")}
        self.dev = dev or self.dev
        return record

    def describe(self, r: dict) -> str:
        text = f"loss {r['loss']:.4f} lr {r['lr']:.2e} {r['tokens_per_s']:.0f} tok/s"
        main = "f1" if "f1" in self.dev else ""
        return text + (f" | dev {_fmt(self.dev, _keys(self.dev, main)[:2])}" if self.dev else "")


@click.command("evaluate", epilog="Example: tinybert evaluate runs/mnli/best --task mnli "
               "--dev-file glue/MNLI/dev_matched.tsv --train-file glue/MNLI/train.tsv "
               "--output-dir runs/mnli-eval")
@model_dir_argument()
@task_options
@click.option("--dev-file", type=IN_FILE, required=True, help="Labelled file to score.")
@click.option("--train-file", type=IN_FILE, default=None,
              help="The training file, for the majority-class baseline [default: the dev "
                   "file's majority class].")
@click.option("--output-dir", type=OUT_DIR, default=Path("runs") / "evaluate",
              show_default=True, help="eval_results.json (SQuAD: and the prediction files).")
@click.option("--overwrite-output-dir", is_flag=True,
              help="Replace the results of an earlier evaluation in OUTPUT_DIR.")
@json_option("the results")
def evaluate_command(model_dir: Path, dev_file: Path, train_file: Path | None,
                     output_dir: Path, overwrite_output_dir: bool, as_json: bool,
                     **kw: Any) -> None:
    """Score a fine-tuned model on a labelled file, next to the task's baseline.

    GLUE metrics as HF's glue_compute_metrics; SQuAD exactly as the official v1.1 / v2.0
    scripts, with v2.0's best no-answer threshold searched over the null odds. The baseline is
    the majority class (SQuAD v2.0: every answer empty) on the same examples.
    """
    results = _with_bar("evaluate", lambda on_batch: FT.evaluate(
        model_dir, dev_file, _task_opts(kw), output_dir, train_file,
        overwrite=overwrite_output_dir, on_batch=on_batch))
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    m, base, main = results["metrics"], results["baseline"], results["metric"]
    click.echo(f"{results['task']} on {results['examples']} examples: {_fmt(m, _keys(m, main))}")
    click.echo(f"baseline ({results['baseline_kind']}): {_fmt(base, _keys(base, main))}")
    click.echo(f"wrote {output_dir / FT.RESULTS_NAME}")


@click.command("predict", epilog="Example: tinybert predict runs/mnli/best --task mnli "
               "--input glue/MNLI/test_matched.tsv --output MNLI-m.tsv")
@model_dir_argument()
@task_options
@click.option("--input", "input_file", type=IN_FILE, required=True,
              help="File to predict (labels not needed).")
@click.option("--output", type=OUT_FILE, required=True,
              help="GLUE: submission TSV. SQuAD: predictions.json (nbest_predictions.json and "
                   "null_odds.json are written beside it).")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
def predict_command(model_dir: Path, input_file: Path, output: Path, overwrite: bool,
                    **kw: Any) -> None:
    """Predict a file with a fine-tuned model.

    Writes a GLUE submission TSV (index, prediction: the label name, or the score for STS-B)
    or SQuAD's predictions.json, nbest_predictions.json and (v2.0) null_odds.json.
    """
    paths = _with_bar("predict", lambda on_batch: FT.predict(
        model_dir, input_file, output, _task_opts(kw), overwrite=overwrite, on_batch=on_batch))
    click.echo("wrote " + ", ".join(str(p) for p in paths))
