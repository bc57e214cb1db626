"""`tinybert evaluate-mlm`: a saved model's held-out masked-LM loss, accuracy and perplexity,
next to the unigram baseline on the same masked positions (`describe_eval`, which `pretrain`
and `distill` use for their end-of-run summaries too)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from cli.errors import user_errors
from cli.options import IN_FILE, json_option, model_dir_argument, text_options
from cli.progress import progress
from tinybert_core import recipes


def _no_train_text(fn: Any) -> Any:
    return text_options(fn, train=False)


def describe_eval(e: dict[str, Any]) -> list[str]:
    """Plain lines for an `evaluate_mlm` result: the model, the unigram baseline on the same
    masked positions, whether the model beats it, and a collapse warning."""
    top = e.get("top_prediction_token", e["top_prediction"])
    lines = [f"held-out MLM loss {e['mlm_loss']:.4f}, accuracy {e['mlm_accuracy']:.4f} "
             f"({e['predictions']} masked predictions; {e['distinct_predictions']} distinct "
             f"tokens predicted, the most frequent {top!r} {e['top_prediction_share']:.1%})"]
    if "unigram_loss" in e:
        lines.append(f"unigram baseline (training-text token frequencies, same positions): "
                     f"loss {e['unigram_loss']:.4f}, accuracy {e['unigram_accuracy']:.4f} "
                     f"(always {e.get('unigram_top_token', e['unigram_top_id'])!r})")
        gain = e["mlm_accuracy"] / e["unigram_accuracy"] if e["unigram_accuracy"] else float("inf")
        if e["beats_unigram"]:
            lines.append(f"the model beats the baseline: loss "
                         f"{e['unigram_loss'] - e['mlm_loss']:.3f} nats lower, accuracy "
                         f"{gain:.2f}x")
        else:
            lines.append(f"the model does NOT beat the unigram baseline (loss {e['mlm_loss']:.3f}"
                         f" vs {e['unigram_loss']:.3f}, accuracy {e['mlm_accuracy']:.4f} vs "
                         f"{e['unigram_accuracy']:.4f}): it has learned no more than token "
                         f"frequencies; train longer or with a larger --lr")
    else:
        lines.append("no unigram baseline: the training text is unknown (pass --corpus "
                     "TRAINING_TEXT)")
    if e["collapsed"]:
        lines.append(f"the model has collapsed: it predicts {top!r} at every masked position")
    return lines


@click.command("evaluate-mlm", epilog="Example: tinybert evaluate-mlm runs/pkt/model "
               "--eval-corpus sotu-valid.txt")
@model_dir_argument()
@click.option("--corpus", type=IN_FILE, multiple=True,
              help="The model's training text, for the unigram baseline (repeatable)  "
                   "[default: the counts `pretrain` / `distill` saved with the model, else the "
                   "embedded corpus's training split]")
@_no_train_text
@json_option("the result")
def evaluate_mlm_command(model_dir: Path, as_json: bool, **kw: Any) -> None:
    """Report a pre-training model's held-out masked-LM loss, accuracy and perplexity.

    MODEL_DIR holds config.json, model.safetensors and vocab.txt. The masks are fixed (seeded),
    so two models evaluated on the same text see the same predictions to make. Next to the
    result: the unigram baseline on the same masked positions (predicting the training text's
    token frequencies, add-one smoothed; accuracy of always predicting its most frequent
    token). Says plainly when the model does not beat it, and when it predicts one token
    everywhere (collapsed).
    """
    if not kw["eval_corpus"]:
        click.echo("note: no --eval-corpus given: evaluating on the embedded corpus's held-out "
                   "split (Python docstrings), not on text of your own", err=True)
    data = recipes.DataOptions(
        corpus=list(kw["corpus"]) or None,
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
        return
    for line in describe_eval(result):
        click.echo(line)
    click.echo(f"perplexity {result['perplexity']:.1f}" + (
        f"; baseline counts from {result['unigram_source']}" if result["unigram_source"] else ""))
