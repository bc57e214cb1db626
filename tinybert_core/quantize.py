"""The `tinybert quantize` recipe: a float model directory in, an int8 model directory and the
per-layer error report out.

Checks first (the input is a float model with a vocabulary, the keep-float patterns match
layers; `open_run_directory`: the output directory is not an input, holds no other run's files
and is locked while this runs), then: calibration
batches of real text (the files given, else the validation split of the embedded default
corpus), post-training quantization (`quantization.ptq.quantize_model`), `save_pretrained` in
the int8 format, and the error report on the first sequences of the same text, written as
`quantization_report.json` beside the model, with `int8_dispatch`: which layers run int8 and
which fall back to float32 at batch 1 and 8 on this CPU's Numba backend.

A model fine-tuned with `--qat` records how it expects to be quantized (config.json's
`quantization_aware_training`); dynamic mode then takes that record's activation ranges and
float32 layers unless the caller chooses others, so the int8 model does the rounding the
training saw.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autograd.serialization import atomic_write_text
from tinybert_core.config import MobileBertConfig
from tinybert_core.models.auto import load_model, saved_task
from tinybert_core.models.hf_io import VOCAB_NAME, WEIGHTS_NAME
from tinybert_core.data.calibration import calibration_batches
from tinybert_core.quantization.checkpoint import quantization_config
from tinybert_core.quantization.modules import model_nbytes
from tinybert_core.quantization.ptq import quantize_model, resolve_keep_float
from tinybert_core.quantization.qat import CONFIG_KEY as QAT_KEY
from tinybert_core.quantization.qat import QATConfig
from tinybert_core.quantization.report import dispatch_summary, quantization_report
from tinybert_core.text.tokenization import BertTokenizer
from tinybert_core.training.run_dir import open_run_directory

REPORT_NAME = "quantization_report.json"


def quantize(model_dir: Path, output_dir: Path, mode: str = "dynamic",
             activations: str | None = None, calibration_files: Sequence[Path] = (),
             calibration_batches_n: int = 8, batch_size: int = 8, max_seq_length: int = 128,
             observer: str = "minmax", percentile: float | None = None,
             keep_float: Sequence[str] | None = None, report_sequences: int = 8,
             overwrite: bool = False, cache_dir: Path | None = None,
             on_progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Quantize the float model in `model_dir` into `output_dir`; returns a summary with the
    error report (see the module docstring). `on_progress(stage, done, total)` is called as
    calibration batches and report sequences are done. `activations` and `keep_float` None:
    the model's QAT record's (dynamic mode), else "per_row" and no layer."""
    model_dir, output_dir = Path(model_dir), Path(output_dir)
    config = MobileBertConfig.from_pretrained(model_dir)
    if quantization_config(config, str(model_dir / "config.json")) is not None:
        raise ValueError(f"{model_dir} is already an int8 model; quantize its float original")
    if not (model_dir / VOCAB_NAME).is_file():
        raise ValueError(f"{model_dir} has no {VOCAB_NAME}: calibration and the error report "
                         f"read text with the model's own tokenizer")
    task = saved_task(config)
    model = load_model(model_dir, task)
    tokenizer = BertTokenizer.from_pretrained(model_dir)
    record = config.extra.get(QAT_KEY) if mode == "dynamic" else None
    qat = None if record is None else QATConfig.from_record(record, str(model_dir /
                                                                        "config.json"))
    if activations is None:
        activations = qat.activations if qat else "per_row"
    if keep_float is None:
        keep_float = qat.modules_to_not_convert if qat else ()
    keep = resolve_keep_float(model, keep_float)
    files = [Path(f) for f in calibration_files]
    if not files:
        from tinybert_core.data.default_corpus import build_default_corpus
        files = [build_default_corpus(cache_dir).valid]
    seq_len = min(max_seq_length, config.max_position_embeddings)
    n_batches = calibration_batches_n if mode == "static" else 0
    n_batches = max(n_batches, -(-report_sequences // batch_size))
    batches = calibration_batches(tokenizer, files, batch_size, seq_len, max(n_batches, 1))
    info = {"files": [str(f) for f in files], "batches": min(calibration_batches_n,
                                                             len(batches)),
            "batch_size": batch_size, "max_seq_length": seq_len}
    with open_run_directory(output_dir, overwrite=overwrite, inputs=[model_dir, *files]):
        calibration = None
        if mode == "static":
            calibration = _counted(batches[:calibration_batches_n], "calibrate", on_progress)
        qmodel = quantize_model(model, mode=mode, activations=activations,
                                calibration=calibration, observer=observer,
                                percentile=percentile, keep_float=keep,
                                calibration_info=info if mode == "static" else None)
        qmodel.save_pretrained(output_dir)
        summary: dict[str, Any] = {
            "model_dir": str(model_dir), "output_dir": str(output_dir), "task": task,
            "architecture": type(model).__name__,
            "quantization_config": qmodel.config.extra["quantization_config"],
            "keep_float": keep, "qat_record": record,
            "bytes_on_disk": {"float32": (model_dir / WEIGHTS_NAME).stat().st_size
                              if (model_dir / WEIGHTS_NAME).is_file() else None,
                              "int8": (output_dir / WEIGHTS_NAME).stat().st_size},
            "bytes_in_memory": {"float32": model_nbytes(model), "int8": model_nbytes(qmodel)}}
        summary["int8_dispatch"] = dispatch_summary(qmodel, seq_len)
        if report_sequences:
            rows = [{k: v[i:i + 1] for k, v in b.items()} for b in batches
                    for i in range(len(b["input_ids"]))][:report_sequences]
            summary["report"] = quantization_report(
                model, qmodel, _counted(rows, "measure error", on_progress), len(rows), keep)
        atomic_write_text(output_dir / REPORT_NAME,
                          json.dumps(summary, indent=1, default=_json_default) + "\n")
    summary["report_file"] = str(output_dir / REPORT_NAME)
    return summary


def _counted(items: list, stage: str, on_progress: Callable[[str, int, int], None] | None
             ) -> Iterator:
    """`items`, reporting each one done to `on_progress`."""
    for i, item in enumerate(items):
        yield item
        if on_progress is not None:
            on_progress(stage, i + 1, len(items))


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


__all__ = ["quantize", "REPORT_NAME"]
