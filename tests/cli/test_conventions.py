"""Every registered command follows the CLI conventions (/work/notes/cli-conventions.md), so a
new command is checked the day it is added: help text on every option, one name per concept,
ranges on every number, a positional MODEL_DIR, an example in the epilog."""
from __future__ import annotations

import click
import pytest

from cli.main import tinybert
from tinybert_core.config import PRESETS

# Names that mean a concept which has another, single name.
FORBIDDEN = {"--seq-len": "--max-seq-length", "--max-length": "--max-seq-length",
             "--seq-length": "--max-seq-length", "--max-len": "--max-seq-length",
             "--student-config": "--config", "--model": "a positional MODEL_DIR",
             "--model-dir": "a positional MODEL_DIR", "--outdir": "--output-dir",
             "--out": "--output", "--output-directory": "--output-dir",
             "--learning-rate": "--lr", "--bs": "--batch-size", "--random-seed": "--seed"}


def problems_of(command: click.Command) -> list[str]:
    problems = []
    if not (command.help or "").strip():
        problems.append("no help text")
    if "Example: tinybert " not in (command.epilog or ""):
        problems.append("no 'Example: tinybert ...' epilog")
    for param in command.params:
        if isinstance(param, click.Argument):
            if param.name.endswith("_dir") and not (
                    isinstance(param.type, click.Path) and param.type.exists
                    and not param.type.file_okay):
                problems.append(f"{param.name}: a directory read must be an existing path")
            continue
        names = param.opts + param.secondary_opts
        first = max(param.opts, key=len)
        if not param.hidden and not (param.help or "").strip():
            problems.append(f"{first} has no help text")
        for name in names:
            if name in FORBIDDEN:
                problems.append(f"{name}: use {FORBIDDEN[name]}")
        if isinstance(param.type, click.Path):
            if "--output" in names and not param.type.file_okay:
                problems.append("--output names a file; a directory is --output-dir")
            if "--output-dir" in names and param.type.file_okay:
                problems.append("--output-dir must not accept a file")
        if isinstance(param.type, (click.types.IntParamType, click.types.FloatParamType)) and \
                not isinstance(param.type, (click.IntRange, click.FloatRange)):
            problems.append(f"{first}: a number needs click.IntRange/FloatRange")
        if param.name == "seed" and not (isinstance(param.type, click.IntRange)
                                         and param.type.min == 0):
            problems.append("--seed must be IntRange(min=0)")
        if not (param.is_flag or param.required or param.multiple or param.show_default) \
                and param.get_default(click.Context(command)) is not None:
            problems.append(f"{first} has a default but no show_default")
        if first == "--config" and not all(p in (param.help or "") for p in PRESETS):
            problems.append("--config help must list the presets")
        if first == "--json" and not param.is_flag:
            problems.append("--json must be a flag")
    return problems


@pytest.mark.parametrize("name", sorted(tinybert.commands))
def test_every_command_follows_the_conventions(name):
    assert problems_of(tinybert.commands[name]) == []


def test_the_checker_catches_violations():
    @click.command("bad", epilog="no example")
    @click.option("--seq-len", type=int, default=3)
    @click.option("--output", type=click.Path(file_okay=False))
    @click.option("--seed", default=0, help="x")
    def bad(seq_len, output, seed):
        """Bad."""
    found = problems_of(bad)
    assert "no 'Example: tinybert ...' epilog" in found
    assert "--seq-len: use --max-seq-length" in found and "--seq-len has no help text" in found
    assert "--seq-len: a number needs click.IntRange/FloatRange" in found
    assert "--seq-len has a default but no show_default" in found
    assert "--output names a file; a directory is --output-dir" in found
    assert "--seed must be IntRange(min=0)" in found
