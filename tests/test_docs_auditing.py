"""docs/auditing.md runs as printed: its Python blocks are executed in order, in one namespace,
and wherever a block prints, the text block that follows it in the document must be what it
printed (numbers and indices masked: the last digits of a finite difference depend on the CPU's
libm)."""
from __future__ import annotations

import contextlib
import io
import re

from paths import ROOT

DOC = ROOT / "docs" / "auditing.md"
FENCE = re.compile(r"```(\w+)\n(.*?)```", re.S)


def _mask(text: str) -> list[str]:
    text = re.sub(r"-?\d+\.\d+(e[-+]\d+)?", "#", text)
    text = re.sub(r"\((\d+(, )?)+\)", "(i)", text)
    return [line.rstrip() for line in text.strip().splitlines()]


def test_the_auditing_guide_runs_as_printed():
    blocks = FENCE.findall(DOC.read_text(encoding="utf-8"))
    namespace: dict = {"__name__": "auditing_doc"}
    compared = 0
    for i, (lang, code) in enumerate(blocks):
        if lang != "python":
            continue
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"{DOC.name} block {i}", "exec"), namespace)
        following = blocks[i + 1] if i + 1 < len(blocks) else None
        if out.getvalue() and following is not None and following[0] == "text":
            assert _mask(out.getvalue()) == _mask(following[1]), f"block {i}"
            compared += 1
    assert compared == 3                       # the report, the mistake, the fused check
    assert namespace["bad"].worst_at == "index (1, 2)"
