"""`tinybert summary`: parameters per top-level module and matmul FLOPs of a config."""
from __future__ import annotations

import json
from pathlib import Path

import click

from cli.errors import user_errors
from cli.options import POSITIVE, config_option, json_option
from tinybert_core.config import MobileBertConfig
from tinybert_core.models.counting import summary


@click.command("summary",
               epilog="Example: tinybert summary --config mobilebert --max-seq-length 128")
@config_option(None, "Model to count")
@click.option("--architecture", default=None, show_default="the backbone",
              help="Model class to count, e.g. MobileBertForPreTraining or ForPreTraining.")
@click.option("--max-seq-length", "seq_len", default=128, show_default=True, type=POSITIVE,
              help="Sequence length for the FLOP count.")
@click.option("--batch-size", default=1, show_default=True, type=POSITIVE,
              help="Batch size for the FLOP count.")
@json_option("the summary")
def summary_command(config: str, architecture: str | None, seq_len: int, batch_size: int,
                    as_json: bool) -> None:
    """Count a model's parameters and matmul FLOPs from its config.

    Parameters are listed per top-level module (embeddings, encoder, pooler, heads) and in
    total, computed from the config's shapes without building the model. FLOPs are
    2 x multiply-accumulates of the dense layers and of the attention products Q K^T and P V
    for one forward pass at --max-seq-length.
    """
    config_name = str(config)
    with user_errors():
        model_config = MobileBertConfig.from_pretrained(config)
        info = summary(model_config, architecture, seq_len, batch_size)
        quantized = _int8_info(config_name, model_config)
    if quantized:
        info["quantization"] = quantized
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"{info['architecture']} ({config_name})")
    width = max(len(k) for k in [*info["parameters"], "total"])
    for name, count in info["parameters"].items():
        click.echo(f"  {name:<{width}}  {count:>13,}")
    click.echo(f"  {'total':<{width}}  {info['total_parameters']:>13,}")
    flops = info["flops"]
    parts = ", ".join(f"{k.replace('_', ' ')} {v / 1e9:.3f} G" for k, v in flops.items()
                      if k != "total" and v)
    click.echo(f"matmul FLOPs at seq_len {seq_len}, batch {batch_size}: "
               f"{flops['total'] / 1e9:.3f} G ({parts})")
    if quantized:
        size = quantized.get("weights_bytes")
        click.echo(f"int8 model: {quantized['mode']} quantization, activations "
                   f"{quantized['activations'].replace('_', '-')}"
                   + (f", {size / 2**20:.1f} MiB of weights on disk" if size else "")
                   + (f", kept float32: {', '.join(quantized['modules_to_not_convert'])}"
                      if quantized["modules_to_not_convert"] else ""))


def _int8_info(name: str, config: MobileBertConfig) -> dict | None:
    """An int8 directory's quantization settings and weight-file size (None for float)."""
    from tinybert_core.quantization import quantization_config
    qconfig = quantization_config(config, name)
    if qconfig is None:
        return None
    info = qconfig.to_dict()
    weights = Path(name) / "model.safetensors"
    if weights.is_file():
        info["weights_bytes"] = weights.stat().st_size
    return info
