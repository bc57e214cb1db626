"""The options several commands share, spelled once (see /work/notes/cli-conventions.md).

One name per concept: `--output-dir` for a directory a command writes, `--output` for a file,
`--max-seq-length` for the sequence length, `--config NAME_OR_DIR` for the preset or config of
a model being created, a positional MODEL_DIR for the model a command reads. Every option has
help text; every number has a range, so a bad value is a one-line usage error.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from tinybert_core.config import PRESETS
from tinybert_core.training.loop import TrainingArguments

_TRAIN = TrainingArguments  # the library's training defaults are the CLI's, defined once

IN_FILE = click.Path(path_type=Path, exists=True, dir_okay=False)
IN_DIR = click.Path(path_type=Path, exists=True, file_okay=False)
OUT_DIR = click.Path(path_type=Path, file_okay=False)
OUT_FILE = click.Path(path_type=Path, dir_okay=False)
POSITIVE = click.IntRange(min=1)
SEED = click.IntRange(min=0)
PROBABILITY = click.FloatRange(min=0.0, max=1.0, max_open=True)


def model_dir_argument(name: str = "model_dir") -> Callable:
    """The model a command reads: a positional directory (config.json, model.safetensors)."""
    return click.argument(name, type=IN_DIR, metavar=name.upper())


class ConfigName(click.ParamType):
    """A preset name, a model directory holding config.json, or a config.json file."""

    name = "NAME_OR_DIR"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, Path) or value in PRESETS:
            return value
        path = Path(value)
        if path.is_dir() and (path / "config.json").is_file():
            return path
        if path.is_file():
            return path
        self.fail(f"{value!r} is neither a preset ({', '.join(PRESETS)}) nor a directory "
                  f"holding config.json nor a config file", param, ctx)


def config_option(default: str | None, what: str) -> Callable:
    return click.option("--config", "config", type=ConfigName(), default=default,
                        required=default is None, show_default=default is not None,
                        help=f"{what}: a preset ({', '.join(PRESETS)}), a model directory or "
                             f"a config.json.")


def _apply(fn: Callable, options: list[Callable]) -> Callable:
    for option in reversed(options):
        fn = option(fn)
    return fn


def text_options(fn: Callable, train: bool = True) -> Callable:
    """How text becomes MLM (+ NSP) examples; `train` adds the training corpus and seed."""
    options = []
    if train:
        options += [
            click.option("--corpus", type=IN_FILE, multiple=True,
                         help="Plain-text training file, documents separated by blank lines "
                              "(repeatable)  [default: the embedded corpus]"),
        ]
    options += [
        click.option("--eval-corpus", type=IN_FILE, multiple=True,
                     help="Held-out text for masked-LM evaluation (repeatable)  [default: the "
                          "embedded corpus's held-out split" + (", if --corpus is not given"
                                                                 if train else "") + "]"),
        click.option("--vocab", type=IN_FILE, default=None,
                     help="vocab.txt to tokenize with  [default: " +
                          ("the teacher's, else one trained on the corpus" if train else
                           "MODEL_DIR/vocab.txt") + "]"),
        click.option("--batch-size", type=POSITIVE, default=8, show_default=True,
                     help="Sequences per batch" + (" (per micro-batch)." if train else ".")),
        click.option("--max-seq-length", type=click.IntRange(min=8), default=128,
                     show_default=True, help="Tokens per sequence, [CLS] and [SEP] included."),
        click.option("--max-predictions", type=POSITIVE, default=20, show_default=True,
                     help="Masked tokens predicted per sequence (max_predictions_per_seq)."),
        click.option("--mlm-probability", type=click.FloatRange(min=0.0, max=1.0, min_open=True),
                     default=0.15, show_default=True,
                     help="Share of tokens masked (80% [MASK], 10% random, 10% kept)."),
        click.option("--whole-word-mask", is_flag=True,
                     help="Mask every piece of a word together."),
        click.option("--eval-batches", type=POSITIVE, default=20, show_default=True,
                     help="Held-out batches per evaluation."),
        click.option("--cache-dir", type=OUT_DIR, default=None,
                     help="Token-shard cache  [default: ~/.cache/tinybert]"),
    ]
    if train:
        options.append(click.option("--seed", type=SEED, default=0, show_default=True,
                                    help="Seed of the weights, the data order and the masks."))
    return _apply(fn, options)


def train_options(fn: Callable) -> Callable:
    """The optimizer, the schedule, evaluation, checkpoints and the run directory."""
    name = fn.__name__.replace("_command", "")
    return _apply(fn, [
        click.option("--output-dir", type=OUT_DIR, default=Path("runs") / name,
                     show_default=True,
                     help="Run directory: checkpoint.npz, metrics.jsonl and the final model/."),
        click.option("--lr", type=click.FloatRange(min=0.0, min_open=True),
                     default=_TRAIN.learning_rate,
                     show_default=True, help="Peak LAMB learning rate."),
        click.option("--warmup", type=PROBABILITY, default=_TRAIN.warmup_proportion,
                     show_default=True, help="Warm-up fraction of each decaying stage."),
        click.option("--weight-decay", type=click.FloatRange(min=0.0),
                     default=_TRAIN.weight_decay,
                     show_default=True, help="Decoupled weight decay (not on biases and norms)."),
        click.option("--max-grad-norm", type=click.FloatRange(min=0.0),
                     default=_TRAIN.max_grad_norm,
                     show_default=True, help="Clip the global gradient norm to this (0: off)."),
        click.option("--grad-accum", type=POSITIVE,
                     default=_TRAIN.gradient_accumulation_steps, show_default=True,
                     help="Micro-batches per optimizer step."),
        click.option("--eval-every", type=POSITIVE, default=_TRAIN.eval_every, show_default=True,
                     help="Evaluate on --eval-corpus every this many steps (and at the end)."),
        click.option("--save-every", type=POSITIVE, default=_TRAIN.save_every, show_default=True,
                     help="Write checkpoint.npz every this many steps (and at the end)."),
        click.option("--resume", is_flag=True,
                     help="Continue the run in --output-dir from its checkpoint.npz (more "
                          "steps than before extend a finished run)."),
        click.option("--overwrite-output-dir", "overwrite", is_flag=True,
                     help="Delete the previous run's files in --output-dir and start afresh "
                          "(without it, a fresh run needs an empty or new directory)."),
    ])


def json_option(what: str = "the result") -> Callable:
    return click.option("--json", "as_json", is_flag=True, help=f"Print {what} as JSON.")


__all__ = ["IN_DIR", "IN_FILE", "OUT_DIR", "OUT_FILE", "POSITIVE", "PROBABILITY", "SEED",
           "ConfigName", "config_option", "json_option", "model_dir_argument", "text_options",
           "train_options"]
