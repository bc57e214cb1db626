"""`tinybert evaluate-mlm`: a saved model's held-out masked-LM loss, accuracy and perplexity."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from cli.errors import user_errors
from cli.options import json_option, model_dir_argument, text_options
from cli.progress import progress
from tinybert_core import recipes


def _no_train_text(fn: Any) -> Any:
    return text_options(fn, train=False)


@click.command("evaluate-mlm", epilog="Example: tinybert evaluate-mlm runs/pkt/model "
               "--eval-corpus sotu-valid.txt")
@model_dir_argument()
@_no_train_text
@json_option("the result")
def evaluate_mlm_command(model_dir: Path, as_json: bool, **kw: Any) -> None:
    """Report a pre-training model's held-out masked-LM loss, accuracy and perplexity.

    MODEL_DIR holds config.json, model.safetensors and vocab.txt. The masks are fixed (seeded),
    so two models evaluated on the same text see the same predictions to make.
    """
    if not kw["eval_corpus"]:
        click.echo("note: no --eval-corpus given: evaluating on the embedded corpus's held-out "
                   "split (Python docstrings), not on text of your own", err=True)
    data = recipes.DataOptions(
        eval_corpus=list(kw["eval_corpus"]) or None, vocab=kw["vocab"],
        batch_size=kw["batch_size"], max_seq_length=kw["max_seq_length"],
        max_predictions_per_seq=kw["max_predictions"], mlm_probability=kw["mlm_probability"],
        whole_word_mask=kw["whole_word_mask"], eval_batches=kw["eval_batches"],
        cache_dir=kw["cache_dir"])
    with user_errors(), progress(None, "evaluate-mlm", unit="batches") as bar:
        result = recipes.evaluate(model_dir, data, on_batch=lambda done, total:
                                  bar.update(done - bar.done, total=total))
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(f"MLM loss {result['mlm_loss']:.4f}  accuracy {result['mlm_accuracy']:.4f}  "
                   f"perplexity {result['perplexity']:.1f}  ({result['predictions']} predictions)")
