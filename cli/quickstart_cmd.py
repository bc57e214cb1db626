"""`tinybert quickstart`: the whole MobileBERT path in one command (a thin shell over
`tinybert_core.quickstart.run_quickstart`), with a progress bar or lines per stage."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from cli.errors import user_errors
from cli.options import IN_FILE, OUT_DIR, POSITIVE, SEED, ConfigName
from cli.progress import progress
from tinybert_core.config import PRESETS
from tinybert_core.distillation.strategies import STRATEGIES
from tinybert_core.quickstart import QuickstartSettings, run_quickstart
from tinybert_core.quickstart.pipeline import StageReporter

_DEFAULTS = QuickstartSettings()


def _describe(record: Any) -> str | None:
    if not isinstance(record, dict):
        return str(record) if record is not None else None
    text = f"{record.get('stage', '')} loss {record['loss']:.4f}" if "loss" in record else ""
    for key in ("eval_mlm_loss", "eval_mlm_accuracy", "eval_accuracy"):
        if key in record:
            text += f" {key[5:]} {record[key]:.3f}"
    return text.strip() or None


class CliReporter(StageReporter):
    def stage(self, name: str, total: int | None, unit: str = "steps") -> Any:
        return progress(total, f"quickstart {name}", unit=unit, describe=_describe)

    def note(self, text: str) -> None:
        click.echo(text, err=True)


@click.command("quickstart", epilog="Example: tinybert quickstart --output-dir "
               "runs/quickstart  (again after a kill: the same command continues)")
@click.option("--output-dir", type=OUT_DIR, default=Path("runs") / "quickstart",
              show_default=True, help="Where every stage's run and the report go.")
@click.option("--strategy", type=click.Choice(STRATEGIES), default=_DEFAULTS.strategy,
              show_default=True, help="Knowledge-transfer strategy (paper section 4.3).")
@click.option("--corpus", type=IN_FILE, multiple=True,
              help="Plain-text pre-training file(s)  [default: the embedded corpus]")
@click.option("--eval-corpus", type=IN_FILE, multiple=True,
              help="Held-out text for masked LM (needed with --corpus)  [default: the embedded "
                   "corpus's held-out split]")
@click.option("--task", default=_DEFAULTS.task, show_default=True,
              help="Task of --train-file/--dev-file: a GLUE name or custom (labels from the "
                   "file).")
@click.option("--train-file", type=IN_FILE, default=None,
              help="Task training file (GLUE layout or TSV/CSV/JSONL with sentence, label)  "
                   "[default: the embedded task]")
@click.option("--dev-file", type=IN_FILE, default=None,
              help="Task dev file, scored float and int8  [default: the embedded task's]")
@click.option("--config", "student_config", type=ConfigName(), default=None,
              help=f"Student to create: a preset ({', '.join(PRESETS)}), a model directory or "
                   f"a config.json  [default: the built-in quickstart student, "
                   f"configs/student/config.json]")
@click.option("--teacher-config", type=ConfigName(), default=None,
              help="Teacher to pre-train: a preset or config  [default: the built-in "
                   "quickstart teacher, configs/teacher/config.json]")
@click.option("--teacher-steps", type=POSITIVE, default=_DEFAULTS.teacher_steps,
              show_default=True, help="Teacher pre-training steps.")
@click.option("--kt-steps-per-layer", type=click.IntRange(min=0),
              default=_DEFAULTS.kt_steps_per_layer, show_default=True,
              help="Layer-wise knowledge-transfer steps per student block.")
@click.option("--pd-steps", type=click.IntRange(min=0), default=_DEFAULTS.pd_steps,
              show_default=True, help="Pre-training distillation steps of the student.")
@click.option("--finetune-epochs", type=click.FloatRange(min=0.0, min_open=True),
              default=_DEFAULTS.finetune_epochs, show_default=True,
              help="Fine-tuning epochs over the task's training file.")
@click.option("--max-train-examples", type=POSITIVE, default=None,
              help="Fine-tune on a seeded sample of this many training examples  [default: "
                   "all]")
@click.option("--batch-size", type=POSITIVE, default=_DEFAULTS.batch_size, show_default=True,
              help="Pre-training and distillation sequences per batch.")
@click.option("--max-seq-length", type=click.IntRange(min=8, max=128),
              default=_DEFAULTS.max_seq_length, show_default=True,
              help="Tokens per sequence, [CLS] and [SEP] included (all stages).")
@click.option("--eval-batches", type=POSITIVE, default=_DEFAULTS.eval_batches,
              show_default=True, help="Held-out masked-LM batches per evaluation.")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Seed of weights, data order and masks.")
@click.option("--cache-dir", type=OUT_DIR, default=None,
              help="Token-shard and embedded-corpus cache  [default: ~/.cache/tinybert]")
@click.option("--overwrite-output-dir", "overwrite", is_flag=True,
              help="Delete the previous quickstart in --output-dir and start afresh.")
@click.option("--json", "as_json", is_flag=True, help="Print quickstart.json's state at the end.")
def quickstart_command(output_dir: Path, strategy: str, corpus: tuple[Path, ...],
                       eval_corpus: tuple[Path, ...], task: str, train_file: Path | None,
                       dev_file: Path | None, student_config: Path | str | None,
                       teacher_config: Path | str | None, teacher_steps: int,
                       kt_steps_per_layer: int, pd_steps: int, finetune_epochs: float,
                       max_train_examples: int | None, batch_size: int, max_seq_length: int,
                       eval_batches: int, seed: int, cache_dir: Path | None, overwrite: bool,
                       as_json: bool) -> None:
    """Run the whole MobileBERT path and write a report.

    Stages: a WordPiece vocabulary -> pre-train an IB-BERT teacher -> knowledge transfer into a
    MobileBERT student (--strategy) -> fine-tune the student on a task (the embedded one:
    which part of Python's standard library a docstring sentence comes from) -> quantize it to
    int8 -> evaluate float and int8 -> OUTPUT_DIR/report.md (with pictures when matplotlib is
    installed: pip install 'tinybert[plots]'). About 10-15 minutes on 2 cores with the
    defaults and nothing downloaded.

    Every stage is checkpointed: run the same command again after a kill (or Ctrl-C) and it
    skips the finished stages and resumes the interrupted one. Other settings on the same
    --output-dir are refused unless --overwrite-output-dir.
    """
    settings = QuickstartSettings(
        strategy=strategy, corpus=[str(p) for p in corpus],
        eval_corpus=[str(p) for p in eval_corpus], task=task,
        train_file=str(train_file) if train_file else None,
        dev_file=str(dev_file) if dev_file else None,
        teacher_config=str(teacher_config) if teacher_config else _DEFAULTS.teacher_config,
        student_config=str(student_config) if student_config else _DEFAULTS.student_config,
        teacher_steps=teacher_steps, kt_steps_per_layer=kt_steps_per_layer, pd_steps=pd_steps,
        finetune_epochs=finetune_epochs, max_train_examples=max_train_examples,
        batch_size=batch_size, max_seq_length=max_seq_length, eval_batches=eval_batches,
        seed=seed)
    try:
        with user_errors():
            state = run_quickstart(output_dir, settings, CliReporter(), overwrite=overwrite,
                                   cache_dir=cache_dir)
    except KeyboardInterrupt:
        click.echo("\ninterrupted; every finished stage and the last checkpoint are kept: run "
                   "the same command again to continue", err=True)
        raise click.exceptions.Exit(130) from None
    if as_json:
        click.echo(json.dumps(state, indent=1))
        return
    seconds = sum(v.get("seconds", 0.0) for v in state["stages"].values())
    click.echo(f"quickstart done ({seconds / 60:.1f} min in stages run so far); report: "
               f"{output_dir / 'report.md'}")
