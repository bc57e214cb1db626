"""`run_quickstart`: the stages in order, each skipped once done (see pipeline.py)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tinybert_core.quickstart import stages as S
from tinybert_core.quickstart.pipeline import (DESCRIPTIONS, STAGES, STATE_NAME,
                                               Context, QuickstartSettings, Run, StageReporter)
from tinybert_core.training.run_dir import LOCK_NAME, open_run_directory


def run_quickstart(output_dir: Path, settings: QuickstartSettings,
                   reporter: StageReporter | None = None, overwrite: bool = False,
                   cache_dir: Path | None = None,
                   stop_after: str | None = None) -> dict[str, Any]:
    """Run (or continue) the quickstart in `output_dir`; returns the state dict.

    `stop_after` ends the call after that stage (tests and partial runs)."""
    settings.check()
    reporter = reporter or StageReporter()
    output_dir = Path(output_dir)
    inputs = [*settings.corpus, *settings.eval_corpus, settings.train_file, settings.dev_file]
    existing = (output_dir / STATE_NAME).is_file() and not overwrite
    others = sorted(p.name for p in output_dir.iterdir() if p.name != LOCK_NAME) \
        if output_dir.is_dir() else []
    if not existing and not overwrite and others:
        held = ", ".join(others[:3])
        raise ValueError(f"output directory {output_dir} is not empty and holds no quickstart "
                         f"run (it holds {held}); choose another --output-dir, or replace a "
                         f"tinybert run there with --overwrite-output-dir")
    with open_run_directory(output_dir, resume=existing, overwrite=overwrite,
                            inputs=inputs) as run_dir:
        run = Run(output_dir, settings)
        if run.load_or_start():
            done = [s for s in STAGES if run.done(s)]
            reporter.note(f"continuing the quickstart in {output_dir}: "
                          f"{', '.join(done) if done else 'no stage'} done")
        elif run_dir.previous is not None:
            reporter.note("the previous run in this directory did not exit cleanly")
        ctx = Context(run, reporter, cache_dir)
        for i, name in enumerate(STAGES, start=1):
            if run.done(name):
                reporter.note(f"[{i}/{len(STAGES)}] {name}: done in an earlier call, skipped")
            else:
                reporter.note(f"[{i}/{len(STAGES)}] {name}: {DESCRIPTIONS[name]}")
                start = time.perf_counter()
                resumed, info = getattr(S, f"stage_{name}")(ctx)
                run.record(name, time.perf_counter() - start, resumed, **info)
            if stop_after == name:
                break
        return run.state


__all__ = ["run_quickstart"]
