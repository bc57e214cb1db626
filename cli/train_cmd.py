"""`tinybert pretrain`, `distill`, `evaluate-mlm` and `vocab`: thin shells over
`tinybert_core.recipes`, with a progress bar showing loss, learning rate and tokens/s.

Under mpiexec (cli/parallel.py) pretrain and distill train data-parallel: rank 0 shows the
progress and the summary, the others stay silent, and an error on any rank ends the whole job.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import click

from autograd.serialization import CheckpointError
from cli.parallel import fail
from cli.progress import progress
from tinybert_core import recipes
from tinybert_core.distillation.strategies import STRATEGIES, KTOptions
from tinybert_core.training.step import TrainingDiverged

_IN_FILE = click.Path(path_type=Path, exists=True, dir_okay=False)
_IN_DIR = click.Path(path_type=Path, exists=True, file_okay=False)
_USER_ERRORS = (ValueError, FileNotFoundError, CheckpointError, TrainingDiverged)


def data_options(fn: Callable) -> Callable:
    """The options every command that reads text shares."""
    options = [
        click.option("--corpus", type=_IN_FILE, multiple=True,
                     help="Plain-text training file (repeatable); default: the embedded corpus."),
        click.option("--eval-corpus", type=_IN_FILE, multiple=True,
                     help="Held-out text for MLM evaluation (repeatable)."),
        click.option("--vocab", type=_IN_FILE, default=None,
                     help="vocab.txt; default: the teacher's, or one trained on the corpus."),
        click.option("--batch-size", default=8, show_default=True,
                     help="Examples per batch; under mpiexec -n N each process takes 1/N."),
        click.option("--seq-len", default=128, show_default=True),
        click.option("--max-predictions", default=20, show_default=True,
                     help="Masked tokens predicted per sequence (max_predictions_per_seq)."),
        click.option("--whole-word-mask", is_flag=True, help="Mask whole words."),
        click.option("--eval-batches", default=20, show_default=True),
        click.option("--cache-dir", type=click.Path(path_type=Path, file_okay=False),
                     default=None, help="Token-shard cache (default ~/.cache/tinybert)."),
        click.option("--seed", default=0, show_default=True),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def train_options(fn: Callable) -> Callable:
    options = [
        click.option("--output-dir", type=click.Path(path_type=Path, file_okay=False),
                     default=Path("runs") / fn.__name__.replace("_command", ""),
                     show_default=True, help="Checkpoints, metrics.jsonl and the final model/."),
        click.option("--lr", default=1e-3, show_default=True, help="LAMB learning rate."),
        click.option("--warmup", default=0.1, show_default=True,
                     help="Warm-up fraction of each decaying stage."),
        click.option("--grad-accum", default=1, show_default=True,
                     help="Micro-batches per optimizer step."),
        click.option("--eval-every", default=100, show_default=True),
        click.option("--save-every", default=100, show_default=True),
        click.option("--resume", is_flag=True,
                     help="Continue the run in --output-dir from its checkpoint.npz."),
        click.option("--overwrite-output-dir", "overwrite", is_flag=True,
                     help="Delete the previous run's files in --output-dir and start afresh "
                          "(without it, a fresh run needs an empty or new directory)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _check_run_flags(kw: dict[str, Any]) -> None:
    if kw["resume"] and kw["overwrite"]:
        raise click.UsageError("--resume and --overwrite-output-dir exclude each other: one "
                               "continues the run in --output-dir, the other deletes it")


def _data(kw: dict[str, Any]) -> recipes.DataOptions:
    return recipes.DataOptions(
        corpus=list(kw["corpus"]) or None, eval_corpus=list(kw["eval_corpus"]) or None,
        vocab=kw["vocab"], batch_size=kw["batch_size"], max_seq_length=kw["seq_len"],
        max_predictions_per_seq=kw["max_predictions"], whole_word_mask=kw["whole_word_mask"],
        eval_batches=kw["eval_batches"], cache_dir=kw["cache_dir"], seed=kw["seed"])


def _args(kw: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return dict(learning_rate=kw["lr"], warmup_proportion=kw["warmup"],
                gradient_accumulation_steps=kw["grad_accum"], eval_every=kw["eval_every"],
                save_every=kw["save_every"], seed=kw["seed"], **extra)


def _describe_step(record: dict) -> str:
    text = f"{record['stage']} loss {record['loss']:.4f} lr {record['lr']:.2e} " \
           f"{record['tokens_per_s']:.0f} tok/s"
    if "eval_mlm_loss" in record:
        text += f" eval {record['eval_mlm_loss']:.3f}/{record['eval_mlm_accuracy']:.3f}"
    return text


def data_parallel() -> Any:
    """The DataParallel of this process when mpiexec started it (cli/main.py), else None."""
    obj = click.get_current_context().obj
    return obj.get("data_parallel") if isinstance(obj, dict) else None


def _run(label: str, total: int, work: Callable[[Callable[[dict], None]], dict]) -> dict:
    """Run `work(on_step)` with progress (a bar, or lines when stderr is not a terminal);
    turn user errors into one-line messages. Under MPI only rank 0 shows progress, and an
    error on any rank ends every process (`cli/parallel.py: fail`)."""
    dp = data_parallel()
    if dp is not None and not dp.is_main:
        try:
            return work(lambda record: None)
        except _USER_ERRORS as e:
            fail(dp, e, user_error=True)
        except Exception as e:
            fail(dp, e, user_error=False)
    with progress(total, label, unit="steps", describe=_describe_step) as bar:
        try:
            return work(lambda record: bar.update(1, record))
        except _USER_ERRORS as e:
            if dp is not None:
                fail(dp, e, user_error=True)
            raise click.ClickException(str(e)) from e
        except Exception as e:
            if dp is not None:
                fail(dp, e, user_error=False)
            raise


def _report(summary: dict, as_json: bool) -> None:
    dp = data_parallel()
    if dp is not None and not dp.is_main:
        return
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"trained {summary['steps']}/{summary['total_steps']} steps; checkpoint "
               f"{summary['checkpoint']}")
    if summary.get("eval"):
        e = summary["eval"]
        click.echo(f"held-out MLM loss {e['mlm_loss']:.4f}, accuracy {e['mlm_accuracy']:.4f} "
                   f"({e['predictions']} predictions)")
    if summary.get("model_dir"):
        click.echo(f"model saved to {summary['model_dir']}")


@click.command("pretrain", epilog="Example: tinybert pretrain --config ib-bert-small "
               "--corpus sotu-train.txt --eval-corpus sotu-valid.txt --output-dir runs/teacher")
@click.option("--config", "config", default="mobilebert-small", show_default=True,
              help="Preset name or config directory (teacher or student).")
@click.option("--steps", default=200, show_default=True)
@data_options
@train_options
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def pretrain_command(config: str, steps: int, as_json: bool, **kw: Any) -> None:
    """Pre-train a model with masked-LM + next-sentence prediction (no teacher).

    This trains an IB-BERT teacher, or the student baseline that the distillation strategies
    are compared with. Writes OUTPUT_DIR/checkpoint.npz every --save-every steps,
    OUTPUT_DIR/metrics.jsonl every step, and OUTPUT_DIR/model (Hugging Face layout) at the end.
    """
    _check_run_flags(kw)
    summary = _run("pretrain", steps, lambda on_step: recipes.pretrain(
        config, kw["output_dir"], _data(kw), _args(kw, pd_steps=steps), on_step=on_step,
        resume=kw["resume"], seed=kw["seed"], overwrite=kw["overwrite"],
        data_parallel=data_parallel()))
    _report(summary, as_json)


@click.command("distill", epilog="Example: tinybert distill --teacher runs/teacher/model "
               "--strategy progressive --kt-steps-per-layer 100 --pd-steps 400 "
               "--output-dir runs/pkt")
@click.option("--teacher", type=_IN_DIR, required=True, help="Pre-trained teacher directory.")
@click.option("--student-config", default="mobilebert-small", show_default=True)
@click.option("--strategy", type=click.Choice(STRATEGIES), default="progressive",
              show_default=True)
@click.option("--kt-steps-per-layer", default=50, show_default=True,
              help="Layer-wise transfer steps per block (all strategies get L x this + PD).")
@click.option("--pd-steps", default=200, show_default=True,
              help="Pre-training distillation steps.")
@click.option("--alpha", default=0.5, show_default=True, help="PD weight of the true MLM loss.")
@click.option("--temperature", default=1.0, show_default=True)
@click.option("--google-kt", is_flag=True,
              help="Google's KT losses: normalised FMT x100, AT, mean x5000, variance x5, /L.")
@click.option("--lower-layer-lr", default=0.0, show_default=True,
              help="Progressive: lr multiplier of finished blocks (0 freezes; Google 0.1).")
@click.option("--init-from-teacher/--no-init-from-teacher", default=None,
              help="Copy the teacher's embeddings and heads first [default: unless --strategy "
                   "none].")
@data_options
@train_options
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def distill_command(teacher: Path, student_config: str, strategy: str, kt_steps_per_layer: int,
                    pd_steps: int, alpha: float, temperature: float, google_kt: bool,
                    lower_layer_lr: float, init_from_teacher: bool | None, as_json: bool,
                    **kw: Any) -> None:
    """Transfer a teacher's knowledge into a MobileBERT student.

    Strategies (paper section 4.3): progressive (one stage per block, then pre-training
    distillation), joint (all blocks at once, then PD), auxiliary (everything in one loss), none
    (the student alone with MLM + NSP). Embeddings and heads are copied from the teacher.
    """
    from tinybert_core.config import MobileBertConfig
    _check_run_flags(kw)
    try:
        layers = MobileBertConfig.from_pretrained(student_config).num_hidden_layers
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from e
    kt = KTOptions(alpha=alpha, temperature=temperature, google_kt=google_kt,
                   progressive_lower_lr=lower_layer_lr)
    total = layers * kt_steps_per_layer + pd_steps
    summary = _run(f"distill ({strategy})", total, lambda on_step: recipes.distill(
        teacher, student_config, kw["output_dir"], strategy, _data(kw),
        _args(kw, pd_steps=pd_steps, kt_steps_per_layer=kt_steps_per_layer), kt,
        on_step=on_step, resume=kw["resume"], seed=kw["seed"],
        init_from_teacher=init_from_teacher, overwrite=kw["overwrite"],
        data_parallel=data_parallel()))
    _report(summary, as_json)


@click.command("evaluate-mlm", epilog="Example: tinybert evaluate-mlm runs/pkt/model "
               "--eval-corpus sotu-valid.txt")
@click.argument("model_dir", type=_IN_DIR)
@data_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def evaluate_mlm_command(model_dir: Path, as_json: bool, **kw: Any) -> None:
    """Report a pre-training model's held-out masked-LM loss, accuracy and perplexity."""
    with progress(None, "evaluate-mlm", unit="batches") as bar:
        try:
            result = recipes.evaluate(model_dir, _data(kw), on_batch=lambda done, total:
                                      bar.update(done - bar.done, total=total))
        except _USER_ERRORS as e:
            raise click.ClickException(str(e)) from e
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(f"MLM loss {result['mlm_loss']:.4f}  accuracy {result['mlm_accuracy']:.4f}  "
                   f"perplexity {result['perplexity']:.1f}  ({result['predictions']} predictions)")


@click.command("vocab", epilog="Example: tinybert vocab --corpus book.txt --vocab-size 8000 "
               "--output vocab.txt")
@click.option("--corpus", type=_IN_FILE, multiple=True, required=True,
              help="Plain-text training file (repeatable).")
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="Where to write vocab.txt (one token a line; the line number is the id).")
@click.option("--vocab-size", default=recipes.DEFAULT_VOCAB_SIZE, show_default=True,
              help="Tokens in the vocabulary, special tokens included.")
@click.option("--min-frequency", default=2, show_default=True,
              help="Merge a pair only if it occurs at least this many times in the corpus.")
@click.option("--limit-alphabet", default=1000, show_default=True,
              help="Keep at most this many distinct characters (the most frequent); words "
                   "with other characters become [UNK].")
@click.option("--cased", is_flag=True, help="Keep case (default: lower-case, like uncased BERT).")
def vocab_command(corpus: tuple[Path, ...], output: Path, vocab_size: int, min_frequency: int,
                  limit_alphabet: int, cased: bool) -> None:
    """Train a WordPiece vocabulary on your own text and write vocab.txt.

    Merges the most frequent pair of adjacent pieces until the vocabulary is full, as the
    `tokenizers` library's WordPieceTrainer does, on words split exactly as the tokenizer splits
    them, so frequent words become single tokens. The result depends only on the text and the
    options.
    """
    from tinybert_core.text.wordpiece_trainer import save_vocab, train_wordpiece_vocab
    total = sum(p.stat().st_size for p in corpus)
    try:
        with progress(total, "vocab: reading the corpus", unit="bytes") as bar:
            tokens = train_wordpiece_vocab(list(corpus), vocab_size, min_frequency=min_frequency,
                                           lowercase=not cased, limit_alphabet=limit_alphabet,
                                           on_bytes=lambda n: bar.update(n - bar.done))
        save_vocab(tokens, output)
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from e
    note = "" if len(tokens) == vocab_size else \
        f" (no pair occurs {min_frequency} times any more; fewer than --vocab-size {vocab_size})"
    click.echo(f"wrote {len(tokens)} tokens to {output}{note}")
