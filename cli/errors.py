"""How a command reports failure: one line naming the file and the problem, never a traceback.

Every command runs its library call inside `user_errors()`, which turns what the library raises
for bad input (ValueError and its CheckpointError / RunDirectoryError, OSError such as a
read-only or full disk, TrainingDiverged, MemoryError) into click's `Error: ...` line and exit
status 1. A `--resume` refused because an option differs names this command's option
(`options` maps the library's field names to them). Ctrl-C during a run prints which
checkpoint is the last good one and the command that continues it (`resume_line`), exit 130.
Programming errors (TypeError, KeyError, ...) still show their traceback: they are bugs.
"""
from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from tinybert_core.training.checkpoint import ResumeMismatch
from tinybert_core.training.loop import TrainingInterrupted
from tinybert_core.training.step import TrainingDiverged

# Library field names (a config field, TrainingArguments, data options) -> CLI options.
OPTION_NAMES = {"config": "--config", "strategy": "--strategy",
                "kt_steps_per_layer": "--kt-steps-per-layer", "pd_steps": "--steps",
                "corpus": "--corpus", "max_seq_length": "--max-seq-length",
                "masked_lm_prob": "--mlm-probability",
                "max_predictions_per_seq": "--max-predictions",
                "whole_word_mask": "--whole-word-mask", "seed": "--seed"}


_FUNCTION_PREFIX = re.compile(r"^[a-z][a-z0-9]*_[a-z0-9_]*: ")   # "train_wordpiece_vocab: "


def one_line(e: BaseException, renames: dict[str, str] | None = None) -> str:
    """The message on one line, without a Python function's name in front, with the library's
    argument names replaced by the command's options (`renames`)."""
    text = _FUNCTION_PREFIX.sub("", " ".join(str(e).split())) or type(e).__name__
    for name, option in (renames or {}).items():
        text = re.sub(rf"(?<![\w-]){re.escape(name)}\b", option, text)
    return text


@contextmanager
def user_errors(options: dict[str, str] | None = None,
                renames: dict[str, str] | None = None) -> Iterator[None]:
    """Run a library call; its user-facing errors become one-line click errors.

    `options` maps a refused resume's field to this command's option (on top of
    OPTION_NAMES); `renames` replaces argument names in any message by option names.
    """
    try:
        yield
    except ResumeMismatch as e:
        option = {**OPTION_NAMES, **(options or {})}.get(e.field, e.field)
        raise click.ClickException(f"cannot resume: {option} differs from the checkpoint's "
                                   f"run: {one_line(e, renames)}") from e
    except (ValueError, OSError, TrainingDiverged) as e:
        raise click.ClickException(one_line(e, renames)) from e
    except MemoryError as e:
        raise click.ClickException(f"out of memory{': ' + one_line(e) if str(e) else ''}; try "
                                   f"a smaller model, --batch-size or --max-seq-length") from e


def resume_line(ctx: click.Context) -> str:
    """The command line that continues this run: its options as given, plus --resume."""
    parts = ctx.command_path.split()
    backend = ctx.find_root().params.get("backend")
    if backend and backend != "numpy":
        parts[1:1] = ["--backend", backend]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if param.name in ("resume", "overwrite", "as_json") or value is None:
            continue
        if isinstance(param, click.Argument):
            parts.append(str(value))
            continue
        default = param.get_default(ctx)
        if value == default or value == () or (default is None and value is False):
            continue
        opt = max(param.opts, key=len)
        if getattr(param, "is_flag", False):
            if param.secondary_opts and not value:
                opt = max(param.secondary_opts, key=len)
            parts.append(opt)
        elif param.multiple:
            for v in value:
                parts += [opt, _text(v)]
        else:
            parts += [opt, _text(value)]
    return shlex.join([*parts, "--resume"])


def _text(value: Any) -> str:
    return str(value) if not isinstance(value, Path) else value.as_posix()


@contextmanager
def interruptible(ctx: click.Context) -> Iterator[None]:
    """Ctrl-C in a training run: say where to resume from instead of click's "Aborted!"."""
    try:
        yield
    except TrainingInterrupted as e:
        click.echo(f"\n{e}", err=True)
        if e.checkpoint_step is not None:
            click.echo(f"continue with: {resume_line(ctx)}", err=True)
        ctx.exit(130)


__all__ = ["OPTION_NAMES", "interruptible", "one_line", "resume_line", "user_errors"]
