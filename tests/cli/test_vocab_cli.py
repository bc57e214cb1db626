"""`tinybert vocab`: the trainer's options from the command line, on hand-made text."""
from __future__ import annotations

from click.testing import CliRunner

from cli.main import tinybert

HUGS = " ".join(["hug"] * 10 + ["pug"] * 5 + ["pun"] * 12 + ["bun"] * 4 + ["hugs"] * 5)


def run(*args):
    return CliRunner().invoke(tinybert, [str(a) for a in args])


def test_vocab_options(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(HUGS + "\nzzz\n", encoding="utf-8")
    out = tmp_path / "vocab.txt"
    result = run("vocab", "--corpus", corpus, "--output", out, "--vocab-size", 100,
                 "--min-frequency", 6, "--limit-alphabet", 7)
    assert result.exit_code == 0, result.output
    # z is the rarest character: gone with its word; pug, hugs (5) and bun (4) are not merged.
    assert out.read_text().split()[5:] == ["b", "g", "h", "n", "p", "s", "u", "##g", "##n",
                                           "##s", "##u", "##ug", "##un", "hug", "pun"]
    assert "wrote 20 tokens" in result.output and "fewer than --vocab-size 100" in result.output


def test_vocab_errors_are_one_line(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(HUGS + "\n", encoding="utf-8")
    result = run("vocab", "--corpus", corpus, "--output", tmp_path / "v.txt", "--vocab-size", 10)
    assert result.exit_code == 1
    last = result.stderr.splitlines()[-1]
    assert last.startswith("Error: --vocab-size=10 is smaller than the 5 special tokens")
    assert last.endswith("raise --vocab-size or lower --limit-alphabet")   # flags that exist
    assert not (tmp_path / "v.txt").exists()


def test_vocab_progress_and_a_binary_corpus(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(HUGS + "\n", encoding="utf-8")
    result = run("vocab", "--corpus", corpus, "--output", tmp_path / "v.txt", "--vocab-size", 30)
    assert result.exit_code == 0, result.output
    size = corpus.stat().st_size
    assert f"vocab: reading the corpus: {size}/{size} bytes (100%)" in result.stderr
    binary = tmp_path / "model.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    result = run("vocab", "--corpus", binary, "--output", tmp_path / "w.txt")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.splitlines()[-1] == (
        f"Error: '{binary}' line 2 is not UTF-8 text (invalid start byte "
        f"at byte 117 of the line); is it a binary file?")
    assert not (tmp_path / "w.txt").exists()
