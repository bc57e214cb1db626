"""The embedded task: which part of Python's standard library a docstring sentence comes from.

Real labelled text with nothing to download, derived deterministically from the embedded
corpus (`data/default_corpus.py`): each sentence of a module in one of five families is labelled
with that family, the topic a reader would name it by:

    concurrency  asyncio, threading, multiprocessing, concurrent.futures, queue, subprocess,
                 sched, selectors
    internet     email, http, urllib, xmlrpc, imaplib, poplib, smtplib, ftplib, socket,
                 socketserver, mailbox, wsgiref
    markup       xml, html, json, csv, plistlib, base64, quopri
    testing      unittest, doctest, bdb, traceback, trace, profile, pstats, timeit
    logging      logging

Sentences of other modules are not used. The split follows the corpus's: sentences of the
corpus's training documents train, those of its validation documents are the dev set, so the
dev sentences are text that pre-training never saw either. The files are TSV with a
`sentence<TAB>label` header (the generic format of `data/glue.py`, task `custom`), written once
per Python version into the corpus cache.

Licence: the sentences are CPython's docstrings, under the Python Software Foundation License
Version 2 (https://docs.python.org/3/license.html), which permits copying and derivative
works; the labels are ours (Apache-2.0, as the rest of tinybert).
"""
from __future__ import annotations

import hashlib
import json
import platform
from collections import Counter
from pathlib import Path
from typing import NamedTuple

from autograd.files import atomic_write_text
from tinybert_core.data.corpus import PathLike, default_cache_dir
from tinybert_core.data.default_corpus import (BUILDER_VERSION, DEFAULT_MODULES, VALID_EVERY,
                                               iter_default_documents)

TASK_VERSION = 1
LICENCE = ("sentences: CPython docstrings, Python Software Foundation License Version 2; "
           "labels: tinybert, Apache-2.0")
FAMILIES: dict[str, tuple[str, ...]] = {
    "concurrency": ("asyncio", "threading", "multiprocessing", "concurrent", "queue",
                    "subprocess", "sched", "selectors"),
    "internet": ("email", "http", "urllib", "xmlrpc", "imaplib", "poplib", "smtplib", "ftplib",
                 "socket", "socketserver", "mailbox", "wsgiref"),
    "markup": ("xml", "html", "json", "csv", "plistlib", "base64", "quopri"),
    "testing": ("unittest", "doctest", "bdb", "traceback", "trace", "profile", "pstats",
                "timeit"),
    "logging": ("logging",),
}
LABELS = tuple(FAMILIES)
MIN_WORDS = 4


class EmbeddedTask(NamedTuple):
    train: Path
    dev: Path
    labels: tuple[str, ...]
    counts: dict[str, dict[str, int]]      # split -> label -> sentences


def family_of(module: str) -> str | None:
    """The family of a dotted module name (its top-level package decides), or None."""
    top = module.split(".")[0]
    for label, members in FAMILIES.items():
        if top in members:
            return label
    return None


def task_rows() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(sentence, label) rows of the training and dev splits, in corpus order."""
    splits: tuple[list[tuple[str, str]], list[tuple[str, str]]] = ([], [])
    for i, (module, _, lines) in enumerate(iter_default_documents(DEFAULT_MODULES)):
        label = family_of(module)
        if label is None:
            continue
        rows = splits[i % VALID_EVERY == VALID_EVERY // 2]
        for line in lines:
            text = " ".join(line.replace("\t", " ").split())
            if len(text.split()) >= MIN_WORDS:
                rows.append((text, label))
    return splits


def _tsv(rows: list[tuple[str, str]]) -> str:
    return "sentence\tlabel\n" + "".join(f"{s}\t{label}\n" for s, label in rows)


def build_embedded_task(cache_dir: PathLike | None = None) -> EmbeddedTask:
    """Write (once) and return the task's train.tsv and dev.tsv in
    `cache_dir/embedded-task/<key>`, the key naming the Python version and the families."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    meta = {"task": TASK_VERSION, "corpus_builder": BUILDER_VERSION,
            "python": platform.python_version(),
            "implementation": platform.python_implementation(), "families": FAMILIES,
            "modules": sorted(DEFAULT_MODULES), "valid_every": VALID_EVERY}
    key = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]
    d = root / "embedded-task" / key
    manifest = d / "manifest.json"
    if manifest.is_file() and (d / "train.tsv").is_file() and (d / "dev.tsv").is_file():
        info = json.loads(manifest.read_text(encoding="utf-8"))
        return EmbeddedTask(d / "train.tsv", d / "dev.tsv", tuple(info["labels"]),
                            info["counts"])
    train, dev = task_rows()
    if not train or not dev:
        raise ValueError("the embedded task has no sentences: the standard-library modules it "
                         "reads did not import on this Python")
    counts = {"train": dict(Counter(label for _, label in train)),
              "dev": dict(Counter(label for _, label in dev))}
    d.mkdir(parents=True, exist_ok=True)
    atomic_write_text(d / "train.tsv", _tsv(train))
    atomic_write_text(d / "dev.tsv", _tsv(dev))
    atomic_write_text(manifest, json.dumps({**meta, "labels": list(LABELS), "counts": counts,
                                            "licence": LICENCE}, indent=1) + "\n")
    return EmbeddedTask(d / "train.tsv", d / "dev.tsv", LABELS, counts)


__all__ = ["EmbeddedTask", "FAMILIES", "LABELS", "LICENCE", "build_embedded_task", "family_of",
           "task_rows"]
