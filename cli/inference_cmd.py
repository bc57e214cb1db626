"""`tinybert fill-mask` and `tinybert encode`: run a saved model on text."""
from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from autograd.serialization import CheckpointError, atomic_open
from cli.progress import progress

_LOAD_ERRORS = (ValueError, TypeError, FileNotFoundError, CheckpointError)


def _load(model_dir: Path, task: str):
    from tinybert_core import BertTokenizer, load_model
    if not (model_dir / "vocab.txt").is_file():
        raise click.ClickException(f"{model_dir} has no vocab.txt; save the tokenizer with "
                                   f"the model (save_pretrained(dir, tokenizer=...))")
    try:
        tokenizer = BertTokenizer.from_pretrained(model_dir)
        model = load_model(model_dir, task)
    except _LOAD_ERRORS as e:
        raise click.ClickException(str(e)) from e
    return model, tokenizer


@click.command("fill-mask",
               epilog='Example: tinybert fill-mask ./mobilebert "Paris is the [MASK] of France."')
@click.argument("model_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.argument("text")
@click.option("--top-k", default=5, show_default=True, type=click.IntRange(min=1),
              help="How many candidate tokens to show per [MASK].")
@click.option("--json", "as_json", is_flag=True, help="Print the predictions as JSON.")
def fill_mask_command(model_dir: Path, text: str, top_k: int, as_json: bool) -> None:
    """Predict the tokens hidden behind each [MASK] in TEXT.

    MODEL_DIR holds config.json, model.safetensors and vocab.txt (a pre-training or masked-LM
    checkpoint). Prints the top-k tokens per mask with their probabilities.
    """
    from tinybert_core.inference import fill_mask
    model, tokenizer = _load(model_dir, "masked_lm")
    try:
        results = fill_mask(model, tokenizer, text, top_k)
    except ValueError as e:
        raise click.ClickException(str(e)) from e
    if as_json:
        click.echo(json.dumps({"text": text, "predictions": results}, indent=2))
        return
    for i, entries in enumerate(results):
        if len(results) > 1:
            click.echo(f"[MASK] #{i + 1}")
        for e in entries:
            click.echo(f"  {e['score']:.4f}  {e['token']:<15}  {e['sequence']}")


@click.command("encode", epilog="Example: tinybert encode ./mobilebert --input sentences.txt "
                                "--output embeddings.npy --pooling mean")
@click.argument("model_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--input", "input_path", required=True,
              type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="UTF-8 text file, one text per line.")
@click.option("--output", "output_path", required=True,
              type=click.Path(path_type=Path, dir_okay=False),
              help="Where to write the (lines, hidden_size) float32 .npy array.")
@click.option("--pooling", type=click.Choice(["cls", "mean"]), default="cls", show_default=True,
              help="[CLS] hidden state, or the mean over all tokens.")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1),
              help="Texts per forward pass.")
@click.option("--max-length", default=None, type=click.IntRange(min=2),
              show_default="max_position_embeddings", help="Truncate texts to this many tokens.")
def encode_command(model_dir: Path, input_path: Path, output_path: Path, pooling: str,
                   batch_size: int, max_length: int | None) -> None:
    """Embed each line of --input with the model's last layer and save them as .npy.

    Row i of the output is line i of the input. Lines are batched by token length, so no
    padding is used and each row equals the line encoded on its own.
    """
    from tinybert_core.inference import embed_texts
    model, tokenizer = _load(model_dir, "base")
    try:
        texts = input_path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise click.ClickException(f"{input_path} is not UTF-8 text: {e}") from e
    if not texts:
        raise click.ClickException(f"{input_path} is empty")
    with progress(len(texts), "encode", unit="texts") as bar:
        vectors = embed_texts(model, tokenizer, texts, pooling, batch_size, max_length,
                              on_batch=lambda done, total: bar.update(done - bar.done))
    if not output_path.parent.is_dir():
        raise click.ClickException(f"output directory {output_path.parent} does not exist")
    with atomic_open(output_path, "wb") as f:
        np.save(f, vectors, allow_pickle=False)
    click.echo(f"wrote {vectors.shape[0]} x {vectors.shape[1]} embeddings to {output_path}")
