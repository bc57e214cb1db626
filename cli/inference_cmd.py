"""`tinybert fill-mask` and `tinybert encode`: run a saved model on text."""
from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from autograd.files import atomic_open
from cli.errors import user_errors
from cli.options import IN_FILE, OUT_FILE, POSITIVE, json_option, model_dir_argument
from cli.progress import progress


def _load(model_dir: Path, task: str):
    from tinybert_core import BertTokenizer, load_model
    if not (model_dir / "vocab.txt").exists():
        raise click.ClickException(f"{model_dir} has no vocab.txt: a model directory needs the "
                                   f"vocabulary the model was trained with (copy that vocab.txt "
                                   f"into it)")
    with user_errors():
        tokenizer = BertTokenizer.from_pretrained(model_dir)
        model = load_model(model_dir, task)
    return model, tokenizer


@click.command("fill-mask",
               epilog='Example: tinybert fill-mask ./mobilebert "Paris is the [MASK] of France."')
@model_dir_argument()
@click.argument("text")
@click.option("--top-k", default=5, show_default=True, type=POSITIVE,
              help="How many candidate tokens to show per [MASK].")
@json_option("the predictions")
def fill_mask_command(model_dir: Path, text: str, top_k: int, as_json: bool) -> None:
    """Predict the tokens hidden behind each [MASK] in TEXT.

    MODEL_DIR holds config.json, model.safetensors and vocab.txt (a pre-training or masked-LM
    checkpoint). Prints the top-k tokens per mask with their probabilities.
    """
    from tinybert_core.inference import fill_mask
    model, tokenizer = _load(model_dir, "masked_lm")
    with user_errors():
        results = fill_mask(model, tokenizer, text, top_k)
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
@model_dir_argument()
@click.option("--input", "input_path", required=True, type=IN_FILE,
              help="UTF-8 text file, one text per line.")
@click.option("--output", "output_path", required=True, type=OUT_FILE,
              help="Where to write the (lines, hidden_size) float32 .npy array.")
@click.option("--pooling", type=click.Choice(["cls", "mean"]), default="cls", show_default=True,
              help="[CLS] hidden state, or the mean over all tokens.")
@click.option("--batch-size", default=32, show_default=True, type=POSITIVE,
              help="Texts per forward pass.")
@click.option("--max-seq-length", default=None, type=click.IntRange(min=2),
              show_default="the model's max_position_embeddings",
              help="Truncate texts to this many tokens, [CLS] and [SEP] included.")
def encode_command(model_dir: Path, input_path: Path, output_path: Path, pooling: str,
                   batch_size: int, max_seq_length: int | None) -> None:
    """Embed each line of --input with the model's last layer and save them as .npy.

    Row i of the output is line i of the input. Lines are batched by token length, so no
    padding is used and each row equals the line encoded on its own.
    """
    from tinybert_core.inference import embed_texts
    if not output_path.parent.is_dir():
        raise click.ClickException(f"cannot write {output_path}: directory {output_path.parent} "
                                   f"does not exist")
    model, tokenizer = _load(model_dir, "base")
    try:
        texts = input_path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise click.ClickException(f"{input_path} is not UTF-8 text: {e.reason} at byte "
                                   f"{e.start}") from e
    if not texts:
        raise click.ClickException(f"{input_path} is empty")
    with user_errors(), progress(len(texts), "encode", unit="texts") as bar:
        vectors = embed_texts(model, tokenizer, texts, pooling, batch_size, max_seq_length,
                              on_batch=lambda done, total: bar.update(done - bar.done))
    with user_errors(), atomic_open(output_path, "wb") as f:
        np.save(f, vectors, allow_pickle=False)
    click.echo(f"wrote {vectors.shape[0]} x {vectors.shape[1]} embeddings to {output_path}")
