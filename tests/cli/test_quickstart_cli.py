"""`tinybert quickstart`'s checks before any work (fast; the run itself is in
tests/test_quickstart_slow.py)."""
from __future__ import annotations

from click.testing import CliRunner

from cli.quickstart_cmd import quickstart_command


def test_bad_combinations_are_one_line_errors(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("one line.\n")
    out = tmp_path / "out"
    for args, message in (
            (["--corpus", str(corpus)], "--corpus needs --eval-corpus too"),
            (["--train-file", str(corpus)], "--train-file and --dev-file go together"),
            (["--task", "rte"], "--task rte needs --train-file and --dev-file")):
        result = CliRunner().invoke(quickstart_command, ["--output-dir", str(out), *args])
        assert result.exit_code == 1, result.output
        assert message in result.output and "Traceback" not in result.output
    assert not out.exists()                     # refused before the directory was made


def test_a_foreign_directory_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = CliRunner().invoke(quickstart_command, ["--output-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "is not empty and holds no quickstart run (it holds notes.txt)" in result.output
    assert (tmp_path / "notes.txt").read_text() == "mine"
