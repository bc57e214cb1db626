"""`tinybert trace`, `tinybert plot` and `tinybert attention`: the teaching views, each a thin
shell over `tinybert_core.teaching`. Drawing needs the optional extra `tinybert[plots]`
(matplotlib); without it the drawing commands say so in one line, and `plot --text` and
`trace` need nothing."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from autograd.files import atomic_write_text
from cli.errors import user_errors
from cli.options import IN_DIR, OUT_FILE, SEED, config_option, json_option
from tinybert_core.teaching import plots
from tinybert_core.teaching.trace import DEFAULT_TEXT, SCOPES, trace_model, trace_op


def _refuse_inside(output: Path | None, *inputs: Path | None) -> None:
    """A command never writes into a directory it reads."""
    if output is None:
        return
    out = output.resolve()
    for d in inputs:
        if d is not None and (d.resolve() == out.parent or d.resolve() in out.parents):
            raise click.BadParameter(f"{output} lies inside the input directory {d}; write "
                                     f"it somewhere else", param_hint="--output")


@click.command("trace", epilog="Example: tinybert trace --config mobilebert --layer 0  |  "
               "tinybert trace runs/quickstart/student/model --text 'the file is [MASK] .'  |  "
               "tinybert trace --op softmax_masked --dot softmax.dot")
@click.argument("model_dir", type=IN_DIR, metavar="[MODEL_DIR]", required=False)
@config_option("mobilebert", "Model to build with random weights when no MODEL_DIR is given")
@click.option("--op", default=None,
              help="Trace one op of the gradient audit instead of a model (e.g. softmax_masked, "
                   "layer_norm, no_norm, linear, cross_entropy; `tinybert gradcheck` lists "
                   "them).")
@click.option("--scope", type=click.Choice(SCOPES), default="layer", show_default=True,
              help="One encoder block, grouped under the paper's block names, or the whole "
                   "backbone.")
@click.option("--layer", type=click.IntRange(min=0), default=0, show_default=True,
              help="Which encoder block to trace (--scope layer).")
@click.option("--text", default=DEFAULT_TEXT, show_default=True,
              help="Input text (through MODEL_DIR's vocab.txt; random ids of the same length "
                   "otherwise).")
@click.option("--max-seq-length", type=click.IntRange(min=2), default=16, show_default=True,
              help="Tokens of --text kept, [CLS] and [SEP] included.")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Seed of the random weights and ids.")
@click.option("--dot", "dot_file", type=OUT_FILE, default=None,
              help="Also write the graph as Graphviz DOT (draw with `dot -Tsvg`; Graphviz is "
                   "not needed to write it).")
@click.option("--output", type=OUT_FILE, default=None,
              help="Write the text here instead of standard output.")
def trace_command(model_dir: Path | None, config: str | Path, op: str | None, scope: str,
                  layer: int, text: str, max_seq_length: int, seed: int,
                  dot_file: Path | None, output: Path | None) -> None:
    """Print the autograd graph of one forward and backward.

    Each node: its op, output shape, dtype and backend, the module that ran it, its inputs,
    the kernel that ran forward and backward (a named kernel with the implementation that
    served it, e.g. `softmax_fwd [numba]`, or the array module's BLAS matmul) and what the op
    saved for backward. A MobileBERT block is grouped under the paper's block names: input
    bottleneck, multi-head attention, the stacked FFNs, output bottleneck. Pick the backend
    with `tinybert --backend numba trace ...`.
    """
    _refuse_inside(output, model_dir)
    _refuse_inside(dot_file, model_dir)
    with user_errors():
        if op is not None:
            result = trace_op(op, seed=seed)
        else:
            result = trace_model(model_dir, config, text, scope, layer, max_seq_length, seed)
        body = result.text()
        if dot_file is not None:
            atomic_write_text(dot_file, result.dot())
        if output is not None:
            atomic_write_text(output, body)
    if output is None:
        click.echo(body, nl=False)
    else:
        click.echo(f"wrote {output}", err=True)
    if dot_file is not None:
        click.echo(f"wrote {dot_file} (draw it with: dot -Tsvg {dot_file} -o graph.svg)",
                   err=True)


@click.command("plot", epilog="Example: tinybert plot runs/quickstart/student --output "
               "student-curves.png")
@click.argument("run_dir", type=IN_DIR, metavar="RUN_DIR")
@click.option("--output", type=OUT_FILE, default=None,
              help="PNG to write  [default: ./<RUN_DIR name>-curves.png]")
@click.option("--text", "as_text", is_flag=True,
              help="Print each curve's first, last and best value instead of drawing "
                   "(needs no matplotlib).")
@json_option("the curve summary")
def plot_command(run_dir: Path, output: Path | None, as_text: bool, as_json: bool) -> None:
    """Draw the training curves of a run from RUN_DIR/metrics.jsonl.

    One panel of training losses (every logged loss term), one of held-out evaluations, one of
    the learning rate and gradient norm; the stages of a distillation run are shaded and
    named. Needs matplotlib (`pip install 'tinybert[plots]'`) unless --text or --json.
    """
    with user_errors():
        records = plots.read_metrics(run_dir)
        if as_text or as_json:
            rows = plots.curve_summary(records)
            if as_json:
                click.echo(json.dumps(rows, indent=2))
                return
            click.echo(f"{'curve':<24} {'points':>6} {'first':>10} {'last':>10} {'min':>10} "
                       f"{'at step':>8}")
            for r in rows:
                click.echo(f"{r['curve']:<24} {r['points']:>6} {r['first']:>10.4g} "
                           f"{r['last']:>10.4g} {r['min']:>10.4g} {r['min_step']:>8}")
            return
        output = output or Path(f"{run_dir.resolve().name}-curves.png")
        _refuse_inside(output, run_dir)
        plots.plot_run(run_dir, output)
    click.echo(f"wrote {output} ({len(records)} steps)")


@click.command("attention", epilog="Example: tinybert attention runs/quickstart/student/model "
               "\"the file is opened for reading .\" --compare runs/quickstart/teacher/model")
@click.argument("model_dir", type=IN_DIR, metavar="MODEL_DIR")
@click.argument("text")
@click.option("--compare", type=IN_DIR, default=None,
              help="A second model directory (a teacher) drawn beside MODEL_DIR, with the "
                   "per-layer feature-map MSE and attention KL between them.")
@click.option("--output", type=OUT_FILE, default=Path("attention.png"), show_default=True,
              help="PNG of the heat-maps (rows: model and layer; columns: heads).")
@click.option("--max-seq-length", type=click.IntRange(min=2), default=32, show_default=True,
              help="Tokens of TEXT kept, [CLS] and [SEP] included.")
@json_option("the per-layer comparison")
def attention_command(model_dir: Path, text: str, compare: Path | None, output: Path,
                      max_seq_length: int, as_json: bool) -> None:
    """Draw the attention heat-maps of MODEL_DIR on TEXT, per layer and head.

    With --compare OTHER_DIR both models are drawn layer by layer, and the per-layer
    feature-map distance (L_FMT, mean squared difference of block outputs) and attention
    KL (L_AT, teacher || student) are printed: what knowledge transfer minimises. Needs
    matplotlib (`pip install 'tinybert[plots]'`) for the picture.
    """
    from tinybert_core.teaching.attention import attention_maps, compare_models
    _refuse_inside(output, model_dir, compare)
    with user_errors():
        plots.require_matplotlib()
        view = attention_maps(model_dir, text, max_seq_length)
        maps = {model_dir.name if model_dir.name != "model" else model_dir.parent.name:
                view.probs}
        rows: list[dict[str, Any]] = []
        if compare is not None:
            other = attention_maps(compare, text, max_seq_length)
            rows = compare_models(other, view)
            label = compare.name if compare.name != "model" else compare.parent.name
            if label in maps:
                label += " (--compare)"
            maps = {label: other.probs, **maps}
        plots.plot_attention(maps, view.tokens, output, title=text)
    if as_json:
        click.echo(json.dumps({"tokens": view.tokens, "output": str(output), "layers": rows},
                              indent=2))
        return
    click.echo(f"tokens: {' '.join(view.tokens)}")
    for r in rows:
        click.echo(f"layer {r['layer']}: feature-map MSE {r['feature_map_mse']:.4f}  "
                   f"attention KL {max(r['attention_kl'], 0.0):.4f}")  # KL >= 0; -0 is rounding
    click.echo(f"wrote {output}")
