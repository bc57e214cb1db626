"""`tinybert`: the click group, the global --backend option, and the list of subcommands.

Each subcommand lives in its own small module of `cli/` and is a thin shell around one library
function; this file only wires them together. The --backend option (envvar TINYBERT_BACKEND)
sets the process default backend once, before any subcommand creates a tensor; --int8-dispatch
(envvar TINYBERT_INT8_DISPATCH) sets when int8 layers fall back to float32, for the command.
A process started by mpiexec gets its `DataParallel` here too (cli/parallel.py), in `ctx.obj`.
"""
from __future__ import annotations

import importlib
import os

import click

import backends
from autograd.distributed import MPIUnavailable
from cli import parallel
from tinybert_core.quantization import dispatch

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
    ("cli.quickstart_cmd", "quickstart_command"),
    ("cli.teaching_cmd", "trace_command"),
    ("cli.teaching_cmd", "plot_command"),
    ("cli.teaching_cmd", "attention_command"),
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tinybert")
@click.option("--backend", type=click.Choice(backends.names()), envvar=backends.ENV_VAR,
              default="numpy", show_default=True, show_envvar=True,
              help="Array backend for every tensor this command creates.")
@click.option("--bucket-cap-mb", type=click.FloatRange(min=0, min_open=True), default=25.0,
              show_default=True, help="Under mpiexec: gradients are averaged in buckets of at "
              "most this many MB (PyTorch DDP's bucket_cap_mb).")
@click.option("--int8-dispatch", type=click.Choice(dispatch.MODES), envvar=dispatch.ENV_VAR,
              default="auto", show_default=True, show_envvar=True,
              help="int8 models: run each layer's int8 GEMM only where it beats float32 (auto), "
              "always (exact int8 semantics at every batch size), or never (docs/int8.md).")
@click.pass_context
def tinybert(ctx: click.Context, backend: str, bucket_cap_mb: float, int8_dispatch: str
             ) -> None:
    """MobileBERT from scratch: autograd, kernels, models and distillation in NumPy.

    Under `mpiexec -n N`, pretrain, distill and finetune train data-parallel: each process
    takes batch-size / N examples of every batch and only rank 0 prints and writes files
    (docs/distributed.md).
    """
    try:
        backends.set_default_backend(backend)
        data_parallel = parallel.data_parallel_for(ctx.invoked_subcommand, os.environ,
                                                   bucket_cap_mb)
    except (backends.BackendUnavailable, ValueError, MPIUnavailable) as e:
        raise click.ClickException(str(e)) from e
    ctx.with_resource(dispatch.int8_dispatch(int8_dispatch))     # restored when the command ends
    ctx.obj = {"data_parallel": data_parallel}


for _module, _attr in _COMMANDS:
    tinybert.add_command(getattr(importlib.import_module(_module), _attr))
