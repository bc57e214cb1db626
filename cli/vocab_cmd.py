"""`tinybert vocab`: train a WordPiece vocabulary on your own text and write vocab.txt."""
from __future__ import annotations

from pathlib import Path

import click

from cli.errors import user_errors
from cli.options import IN_FILE, OUT_FILE, POSITIVE
from cli.progress import progress
from tinybert_core import recipes

# The trainer's argument names, as this command's options (for its error messages).
_FLAGS = {"vocab_size": "--vocab-size", "min_frequency": "--min-frequency",
          "limit_alphabet": "--limit-alphabet"}


@click.command("vocab", epilog="Example: tinybert vocab --corpus book.txt --vocab-size 8000 "
               "--output vocab.txt")
@click.option("--corpus", type=IN_FILE, multiple=True, required=True,
              help="Plain-text training file (repeatable).")
@click.option("--output", type=OUT_FILE, required=True,
              help="Where to write vocab.txt (one token a line; the line number is the id).")
@click.option("--vocab-size", type=POSITIVE, default=recipes.DEFAULT_VOCAB_SIZE,
              show_default=True, help="Tokens in the vocabulary, special tokens included.")
@click.option("--min-frequency", type=POSITIVE, default=2, show_default=True,
              help="Merge a pair only if it occurs at least this many times in the corpus.")
@click.option("--limit-alphabet", type=POSITIVE, default=1000, show_default=True,
              help="Keep at most this many distinct characters (the most frequent); words "
                   "with other characters become [UNK].")
@click.option("--cased", is_flag=True, help="Keep case (default: lower-case, like uncased BERT).")
def vocab_command(corpus: tuple[Path, ...], output: Path, vocab_size: int, min_frequency: int,
                  limit_alphabet: int, cased: bool) -> None:
    """Train a WordPiece vocabulary on your own text and write vocab.txt.

    Merges the most frequent pair of adjacent pieces until the vocabulary is full, as the
    `tokenizers` library's WordPieceTrainer does, on words split exactly as the tokenizer splits
    them, so frequent words become single tokens. The result depends only on the text and the
    options.
    """
    from tinybert_core.text.wordpiece_trainer import save_vocab, train_wordpiece_vocab
    total = sum(p.stat().st_size for p in corpus)
    with user_errors(renames=_FLAGS):
        with progress(total, "vocab: reading the corpus", unit="bytes") as bar:
            tokens = train_wordpiece_vocab(list(corpus), vocab_size, min_frequency=min_frequency,
                                           lowercase=not cased, limit_alphabet=limit_alphabet,
                                           on_bytes=lambda n: bar.update(n - bar.done))
        save_vocab(tokens, output)
    note = "" if len(tokens) == vocab_size else \
        f" (no pair occurs {min_frequency} times any more; fewer than --vocab-size {vocab_size})"
    click.echo(f"wrote {len(tokens)} tokens to {output}{note}")
