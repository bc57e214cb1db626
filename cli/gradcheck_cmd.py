"""`tinybert gradcheck`: audit gradients against finite differences — every built-in op, or a
whole model for every loss it trains with (`--config NAME_OR_DIR` or a positional MODEL_DIR)."""
from __future__ import annotations

import json
from pathlib import Path

import click

import backends
from autograd.audit import audit_ops
from autograd.torch_replay import TorchUnavailable
from cli.errors import user_errors
from cli.options import IN_DIR, POSITIVE, SEED, ConfigName, json_option
from cli.progress import progress
from tinybert_core.config import PRESETS
from tinybert_core.model_audit import LOSSES, TEACHERS, audit_model

_MODEL_OPTIONS = {"layers": "--layers", "max_seq_length": "--max-seq-length",
                  "batch_size": "--batch-size", "losses": "--loss",
                  "teacher_config": "--teacher-config", "directions": "--directions"}
_EPILOG = """Example: tinybert gradcheck --config mobilebert --layers 2

\b
More examples:
  tinybert gradcheck                                  # every built-in op, NumPy
  tinybert --backend numba gradcheck --json > ops.json
  tinybert gradcheck runs/student/model --layers 2 --loss mlm+nsp --against torch
"""


@click.command("gradcheck", epilog=_EPILOG)
@click.argument("model_dir", type=IN_DIR, required=False, metavar="[MODEL_DIR]")
@click.option("--config", "config_name", type=ConfigName(), default=None,
              help=f"Audit a whole model built from this preset ({', '.join(PRESETS)}), model "
                   f"directory or config.json, at an audit point, instead of the built-in ops "
                   f"(MODEL_DIR audits a model at its own weights).")
@click.option("--layers", type=POSITIVE, default=None,
              help="Model audit: keep only the first N blocks (every width is kept).  "
                   "[default: all]")
@click.option("--max-seq-length", type=click.IntRange(min=4), default=16, show_default=True,
              help="Model audit: tokens per sequence of the audit batch.")
@click.option("--batch-size", type=POSITIVE, default=2, show_default=True,
              help="Model audit: sequences in the audit batch (the last one padded).")
@click.option("--loss", "losses", multiple=True, type=click.Choice(list(LOSSES)),
              help="Model audit: check only this loss (repeatable).  [default: every loss]")
@click.option("--teacher-config", type=ConfigName(), default=None,
              help="Model audit: the teacher of FMT, AT and PD.  [default: the paper's teacher "
                   "of a student preset (" + ", ".join(f"{k} -> {v}" for k, v in
                                                       TEACHERS.items())
                   + "), else the model's own architecture]")
@click.option("--directions", type=POSITIVE, default=2, show_default=True,
              help="Model audit: random directions per parameter.")
@click.option("--against", type=click.Choice(["torch"]), default=None,
              help="Also replay the same ops in PyTorch (if installed) and compare every "
                   "gradient with PyTorch's.")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Seed of the random inputs, weights and directions.")
@click.option("--only", default=None, help="Op audit: only ops whose name contains this text.")
@json_option("the report")
def gradcheck(model_dir: Path | None, config_name: str | Path | None, layers: int | None,
              max_seq_length: int, batch_size: int, losses: tuple[str, ...],
              teacher_config: str | None, directions: int, against: str | None, seed: int,
              only: str | None, as_json: bool) -> None:
    """Gradient-check every differentiable op, or a whole model, in float64.

    Without --config or MODEL_DIR, each built-in op runs on small random inputs that cover
    broadcasting, multi-axis reductions, masks and ignored targets; backward's gradients are
    compared with central finite differences, and the report gives every case's largest
    absolute and relative error, where it occurred and the tolerances. With --config or
    MODEL_DIR, the model (shrunk to --layers blocks, widths kept) is cast to float64 and every
    parameter's gradient is checked along random directions for the MLM+NSP loss, the
    distillation losses (FMT, AT, PD, against a teacher) and the fine-tuning heads, listed by
    name under the paper's blocks. On a backend other than numpy (tinybert --backend numba
    gradcheck ...) each gradient is also compared with NumPy's. Exits with status 1 if any
    check fails.
    """
    device = backends.default_backend_name()
    ctx = click.get_current_context()
    if config_name is not None and model_dir is not None:
        raise click.BadParameter("give --config or MODEL_DIR, not both", param_hint="--config")
    whole_model = config_name is not None or model_dir is not None
    if whole_model and only is not None:
        raise click.BadParameter("--only selects built-in ops; a model audit takes --loss",
                                 param_hint="--only")
    if not whole_model:
        given = [flag for name, flag in _MODEL_OPTIONS.items()
                 if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE]
        if given:
            raise click.UsageError(f"{', '.join(given)} applies to a model audit: give "
                                   f"--config NAME_OR_DIR or MODEL_DIR")
    label = f"gradcheck on {device}"
    try:
        with user_errors(), progress(None, label, unit="checks", describe=str) as bar:
            def step(total: int, item: str) -> None:
                bar.update(1, item, total=total)
            if whole_model:
                report = audit_model(config_name, model_dir, layers=layers,
                                     max_seq_length=max_seq_length, batch_size=batch_size,
                                     losses=losses or tuple(LOSSES),
                                     teacher_config=teacher_config, directions=directions,
                                     seed=seed, device=device, against=against, progress=step)
            else:
                report = audit_ops(seed, device, only, against, progress=step)
    except TorchUnavailable as e:                # an ImportError: not one of user_errors'
        raise click.ClickException(str(e)) from e
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.format())
    passed = report.passed if whole_model else not report.failed
    if not passed:
        raise SystemExit(1)
