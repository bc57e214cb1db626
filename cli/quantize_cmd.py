"""`tinybert quantize`: a float model directory -> an int8 one, with the per-layer error report
(a thin shell over `tinybert_core.quantize.quantize`)."""
from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from cli.errors import user_errors
from cli.options import IN_FILE, OUT_DIR, POSITIVE, json_option, model_dir_argument
from cli.progress import progress


@click.command("quantize", epilog="Example: tinybert quantize runs/pretrain/model --output-dir "
               "runs/pretrain/model-int8 --mode static --calibration-file held-out.txt "
               "--observer percentile")
@model_dir_argument()
@click.option("--output-dir", type=OUT_DIR, required=True,
              help="Where to write the int8 model (config.json, model.safetensors, vocab.txt) "
                   "and quantization_report.json.")
@click.option("--mode", type=click.Choice(["dynamic", "static"]), default="dynamic",
              show_default=True, help="dynamic: activation ranges measured at run time; "
                                      "static: calibrated once on --calibration-file.")
@click.option("--activations", type=click.Choice(["per-row", "per-tensor"]), default=None,
              help="Dynamic mode: one activation range per token (row) or per tensor "
                   "[default: per-row, or what a `finetune --qat` run recorded]. Static ranges "
                   "are per tensor.")
@click.option("--calibration-file", type=IN_FILE, multiple=True,
              help="UTF-8 text to calibrate on and measure the error on (repeatable); default: "
                   "the embedded corpus's validation split.")
@click.option("--calibration-batches", default=8, show_default=True,
              type=POSITIVE, help="Static mode: batches the observers see.")
@click.option("--batch-size", default=8, show_default=True, type=POSITIVE,
              help="Sequences per calibration batch.")
@click.option("--max-seq-length", default=128, show_default=True, type=click.IntRange(min=3),
              help="Tokens per calibration sequence ([CLS] and [SEP] included).")
@click.option("--observer", type=click.Choice(["minmax", "percentile"]), default="minmax",
              show_default=True, help="Static mode: how a layer's input range is calibrated.")
@click.option("--percentile", default=99.99, show_default=True,
              type=click.FloatRange(50.0, 100.0, min_open=True),
              help="The percentile observer's upper percentile (the lower is 100 minus it).")
@click.option("--keep-float", multiple=True, metavar="PATTERN",
              help="Leave matching Linear/Embedding layers float32: a shell pattern on the "
                   "layer name or its end, e.g. 'classifier', 'encoder.layer.23.*' "
                   "(repeatable; default: none, or those a `finetune --qat` run kept).")
@click.option("--report-sequences", default=8, show_default=True, type=click.IntRange(min=0),
              help="Sequences to measure each layer's quantization error on (0: no report).")
@click.option("--overwrite-output-dir", is_flag=True,
              help="Replace the model files in a non-empty --output-dir.")
@json_option("the summary and report")
def quantize_command(model_dir: Path, output_dir: Path, mode: str, activations: str,
                     calibration_file: tuple[Path, ...], calibration_batches: int,
                     batch_size: int, max_seq_length: int, observer: str, percentile: float,
                     keep_float: tuple[str, ...], report_sequences: int,
                     overwrite_output_dir: bool, as_json: bool) -> None:
    """Quantize a float model to int8 and report where the error comes from.

    Every Linear layer (backbone and heads) gets int8 weights, symmetric per output channel;
    the word-embedding table is stored int8 per row and the MLM decoder stays tied to it.
    Softmax, NoNorm/LayerNorm, residual adds, GELU/ReLU and the attention mask stay float32.
    The output directory loads wherever a model directory does (evaluate, predict,
    evaluate-mlm, fill-mask, encode, summary); int8 runs fastest with `tinybert --backend
    numba`. See docs/int8.md.
    """
    from tinybert_core.quantize import quantize
    bars: dict[str, tuple[ExitStack, Any]] = {}

    def on_progress(stage: str, done: int, total: int) -> None:
        if stage not in bars:
            stack = ExitStack()
            unit = "batches" if stage == "calibrate" else "sequences"
            bars[stage] = stack, stack.enter_context(progress(total, stage, unit=unit))
        stack, bar = bars[stage]
        bar.update(1)
        if done == total:
            stack.close()
    with user_errors():
        summary = quantize(model_dir, output_dir, mode,
                           activations.replace("-", "_") if activations else None,
                           calibration_file, calibration_batches, batch_size, max_seq_length,
                           observer, percentile if observer == "percentile" else None,
                           keep_float or None, report_sequences, overwrite_output_dir,
                           on_progress=on_progress)
    if as_json:
        click.echo(json.dumps(summary, indent=1))
        return
    _print_summary(summary)


def _print_summary(summary: dict[str, Any]) -> None:
    from tinybert_core.quantization.report import format_dispatch, format_report
    q = summary["quantization_config"]
    disk, memory = summary["bytes_on_disk"], summary["bytes_in_memory"]
    click.echo(f"{summary['architecture']} -> int8 ({q['mode']}, activations "
               f"{q['activations'].replace('_', '-')}"
               + (f", {q['observer']} observer" if q["mode"] == "static" else "") + ")")
    if summary["keep_float"]:
        click.echo(f"kept float32: {', '.join(summary['keep_float'])}")
    if summary.get("qat_record"):
        click.echo("settings from the model's quantization-aware fine-tuning record "
                   "(config.json: quantization_aware_training) unless given here")
    if disk["float32"]:
        click.echo(f"model.safetensors: {disk['float32'] / 2**20:.1f} MiB -> "
                   f"{disk['int8'] / 2**20:.1f} MiB ({disk['float32'] / disk['int8']:.2f}x "
                   f"smaller); weights in memory {memory['float32'] / 2**20:.1f} -> "
                   f"{memory['int8'] / 2**20:.1f} MiB")
    if "report" in summary:
        click.echo("")
        click.echo(format_report(summary["report"]))
    click.echo("")
    click.echo(format_dispatch(summary["int8_dispatch"]))
    click.echo("")
    click.echo(f"wrote {summary['output_dir']} and {summary['report_file']}")
