"""cli/progress.py: a click bar on a terminal, periodic plain lines everywhere else."""
from __future__ import annotations

import io

from cli.progress import progress


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_lines_when_stderr_is_not_a_terminal():
    out, clock = io.StringIO(), Clock()
    with progress(200, "pretrain", unit="steps", every_s=10,
                  describe=lambda r: f"loss {r['loss']:.2f}", file=out) as bar:
        bar.clock = clock
        bar.update(1, {"loss": 9.0})              # the first step always prints: it started
        for step in range(2, 42):
            clock.now += 0.5                      # 2 steps/s: a line every 20 steps
            bar.update(1, {"loss": 9.0 - step / 100})
    lines = out.getvalue().splitlines()
    assert lines[0] == "pretrain: 1/200 steps (0%) | loss 9.00"
    assert lines[1] == "pretrain: 21/200 steps (10%), 2 steps/s, 90 s left | loss 8.79"
    assert lines[2] == "pretrain: 41/200 steps (20%), 2 steps/s, 80 s left | loss 8.59"
    assert len(lines) == 3                        # step 41 printed already: no duplicate last line


def test_the_last_line_comes_at_the_end_and_an_unknown_total_is_learned():
    out, clock = io.StringIO(), Clock()
    with progress(None, "evaluate-mlm", unit="batches", file=out) as bar:
        bar.clock = clock
        for done in range(1, 6):
            clock.now += 1
            bar.update(1, total=5)
    assert out.getvalue().splitlines() == ["evaluate-mlm: 1/5 batches (20%)",
                                           "evaluate-mlm: 5/5 batches (100%), 1 batches/s"]


def test_no_last_line_after_an_error():
    out = io.StringIO()
    try:
        with progress(10, "distill", file=out, every_s=1e9) as bar:
            bar.update(1)
            bar.update(1)
            raise RuntimeError("diverged")
    except RuntimeError:
        pass
    assert out.getvalue().splitlines() == ["distill: 1/10 steps (10%)"]


def test_a_bar_on_a_terminal():
    out = Terminal()
    with progress(4, "gradcheck", unit="ops", describe=str, file=out) as bar:
        for op in ["add", "mul", "softmax", "relu"]:
            bar.update(1, op)
    text = out.getvalue()
    assert "gradcheck" in text and "100%" in text and "relu" in text
    assert "ops/s" not in text                    # click's bar, not our lines
