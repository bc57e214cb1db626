"""Calibration batches: windows of real text, the input static quantization calibrates on and
the per-layer error report measures on (`tinybert quantize`; here in data/, not in
quantization/, because models import quantization and data imports models' neighbours: the
subpackages keep an acyclic import graph, tests/test_layout.py).

Text files are read as documents (`data.corpus.iter_documents`: blank lines separate them),
tokenized with the model's own tokenizer, joined into one token stream and cut into windows of
`max_seq_length - 2` tokens, each sent as `[CLS] window [SEP]` with no padding (so no attention
mask: the rows are what a model sees of a full-length input). Windows are batched in order;
when the text is shorter than one window, the one shorter window it makes is used.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tinybert_core.data.corpus import iter_documents


def calibration_batches(tokenizer: Any, paths: Sequence[str | Path], batch_size: int = 8,
                        max_seq_length: int = 128, max_batches: int = 8
                        ) -> list[dict[str, np.ndarray]]:
    """Up to `max_batches` batches of `batch_size` windows of the text in `paths`, as model
    arguments ({"input_ids": (B, T) int64, "token_type_ids": zeros}). Reads only as much
    text as the batches need."""
    if batch_size < 1 or max_batches < 1 or max_seq_length < 3:
        raise ValueError(f"calibration_batches: batch_size and max_batches must be >= 1 and "
                         f"max_seq_length >= 3, got {batch_size}, {max_batches}, "
                         f"{max_seq_length}")
    width = max_seq_length - 2
    need = width * batch_size * max_batches
    stream: list[int] = []
    for doc in iter_documents(list(paths)):
        for line in doc:
            stream += tokenizer(line, add_special_tokens=False)["input_ids"]
        if len(stream) >= need:
            break
    if not stream:
        raise ValueError(f"calibration text {', '.join(map(str, paths))} has no tokens")
    n = min(max(len(stream) // width, 1), batch_size * max_batches)
    width = min(width, len(stream))
    windows = np.asarray(stream[:n * width], np.int64).reshape(n, width)
    rows = np.concatenate([np.full((n, 1), tokenizer.cls_token_id, np.int64), windows,
                           np.full((n, 1), tokenizer.sep_token_id, np.int64)], axis=1)
    return [{"input_ids": rows[i:i + batch_size],
             "token_type_ids": np.zeros_like(rows[i:i + batch_size])}
            for i in range(0, n, batch_size)]


__all__ = ["calibration_batches"]
