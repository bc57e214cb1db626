"""`tinybert`: the click group, the global --backend option, and the list of subcommands.

Each subcommand lives in its own small module of `cli/` and is a thin shell around one library
function; this file only wires them together. The --backend option (envvar TINYBERT_BACKEND)
sets the process default backend once, before any subcommand creates a tensor.
"""
from __future__ import annotations

import importlib

import click

import backends

__version__ = "0.1.0"

# (module, command attribute): listed here so the command set is visible in one place.
_COMMANDS = [
    ("cli.gradcheck_cmd", "gradcheck"),
    ("cli.backends_cmd", "backends_command"),
    ("cli.summary_cmd", "summary_command"),
    ("cli.inference_cmd", "fill_mask_command"),
    ("cli.inference_cmd", "encode_command"),
    ("cli.train_cmd", "pretrain_command"),
    ("cli.train_cmd", "distill_command"),
    ("cli.evaluate_cmd", "evaluate_mlm_command"),
    ("cli.vocab_cmd", "vocab_command"),
    ("cli.task_cmd", "finetune_command"),
    ("cli.task_cmd", "evaluate_command"),
    ("cli.task_cmd", "predict_command"),
    ("cli.quantize_cmd", "quantize_command"),
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tinybert")
@click.option("--backend", type=click.Choice(backends.names()), envvar=backends.ENV_VAR,
              default="numpy", show_default=True, show_envvar=True,
              help="Array backend for every tensor this command creates.")
def tinybert(backend: str) -> None:
    """MobileBERT from scratch: autograd, kernels, models and distillation in NumPy."""
    try:
        backends.set_default_backend(backend)
    except (backends.BackendUnavailable, ValueError) as e:
        raise click.ClickException(str(e)) from e


for _module, _attr in _COMMANDS:
    tinybert.add_command(getattr(importlib.import_module(_module), _attr))
