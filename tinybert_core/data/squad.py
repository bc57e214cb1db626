"""SQuAD v1.1 / v2.0: the JSON files read and checked, and questions cut into model windows.

Reading (`read_squad`) checks what the rest relies on and stops at the first problem, naming
the file and the question: every answer's text must be the context's text at `answer_start`
(the official files always are; a shifted offset would silently train the wrong span), ids are
unique, an answerable question has an answer, and a v1.1 task gets no unanswerable questions
(v2.0 data scored as v1.1 is huggingface/transformers#7812's F1 44).

Windows (`featurize_squad`), as Google's BERT/MobileBERT `run_squad.py` builds them:
`[CLS] question [SEP] context window [SEP]`, the question cut to `max_query_length` tokens,
each window holding up to max_seq_length - len(question) - 3 context tokens. **doc_stride is
Google's step**: the next window starts `doc_stride` tokens after the previous one (HF's fast
tokenizers read `stride` as the overlap instead, so the same number gives other windows: with
384 / 128 and a 20-token question Google steps 128 tokens, HF steps 233). A token seen by
several windows is scored in the one where it has the most context (`max_context_flags`).

Tokens are mapped back to the context by character offsets (`BertTokenizer`'s
`offset_mapping`, equal to the Rust tokenizers'), so a training answer's token span is the
tokens overlapping its characters: the first token ending after `answer_start` to the last
token starting before its end. An answer not wholly inside a window, and every window of an
unanswerable question, is labelled at [CLS] (position 0), as in both references.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from tinybert_core.evaluation.squad_postprocess import SquadFeature, max_context_flags

VERSIONS = ("1.1", "2.0")


@dataclass(frozen=True)
class SquadExample:
    """One question: its id, text, context, gold answers (text, answer_start) and whether it
    is unanswerable (v2.0)."""

    qid: str
    question: str
    context: str
    answers: tuple[tuple[str, int], ...]
    is_impossible: bool


def read_squad(path: str | Path, version: str, labelled: bool = True) -> list[SquadExample]:
    """Every question of a SQuAD JSON file, in file order, checked (see the module docstring).

    `version` ("1.1" or "2.0") is the task's; a v1.1 task refuses unanswerable questions.
    `labelled=False` reads a file to predict, whose questions may have no answers."""
    path = Path(path)
    if version not in VERSIONS:
        raise ValueError(f"unknown SQuAD version {version!r}; known: {', '.join(VERSIONS)}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise ValueError(f"{path}: not a SQuAD file (needs a top-level 'data' list)")
    examples: list[SquadExample] = []
    seen: set[str] = set()
    for a, article in enumerate(data["data"]):
        for p, paragraph in enumerate(_field(path, article, "paragraphs", list, f"article {a}")):
            where = f"article {a}, paragraph {p}"
            context = _field(path, paragraph, "context", str, where)
            for qa in _field(path, paragraph, "qas", list, where):
                example = _example(path, qa, context, where, version, labelled)
                if example.qid in seen:
                    raise ValueError(f"{path}: question id {example.qid!r} appears twice")
                seen.add(example.qid)
                examples.append(example)
    if not examples:
        raise ValueError(f"{path}: no questions")
    return examples


def _field(path: Path, obj: Any, key: str, kind: type, where: str) -> Any:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise ValueError(f"{path}: {where}: missing or invalid {key!r} (expected {names})")
    return value


def _example(path: Path, qa: Any, context: str, where: str, version: str,
             labelled: bool) -> SquadExample:
    qid = str(_field(path, qa, "id", (str, int), where))
    where = f"question {qid!r}"
    question = _field(path, qa, "question", str, where)
    impossible = bool(qa.get("is_impossible", False))
    answers = []
    listed = qa.get("answers") if isinstance(qa, dict) else None
    for answer in (_field(path, qa, "answers", list, where) if labelled or listed else []):
        text = _field(path, answer, "text", str, where)
        start = _field(path, answer, "answer_start", int, where)
        found = context[start:start + len(text)] if 0 <= start <= len(context) else None
        if found != text:
            raise ValueError(f"{path}: {where}: answer {text!r} does not match the context at "
                             f"answer_start {start} (the context there reads {found!r})")
        answers.append((text, start))
    if impossible and version == "1.1":
        raise ValueError(f"{path}: {where} is unanswerable (is_impossible), which SQuAD v1.1 "
                         f"does not have; use the SQuAD v2.0 task")
    if impossible and answers:
        raise ValueError(f"{path}: {where} is marked is_impossible but has answers")
    if labelled and not impossible and not answers:
        raise ValueError(f"{path}: {where} has no answer and is not marked is_impossible")
    return SquadExample(qid, question, context, tuple(answers), impossible)


def gold_answers(examples: Sequence[SquadExample]) -> dict[str, list[str]]:
    """Question id -> gold answer texts ([] if unanswerable), what `squad_evaluate` scores."""
    return {ex.qid: [text for text, _ in ex.answers] for ex in examples}


# ----------------------------------------------------------------------------- windows

class SquadFeatures(NamedTuple):
    """The windows of a set of questions: model inputs (one int32 row each, unpadded),
    training targets (token positions; 0 = [CLS]) and what post-processing needs."""

    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray]
    start_positions: np.ndarray     # (F,) int64
    end_positions: np.ndarray       # (F,) int64
    features: list[SquadFeature]


def doc_windows(num_tokens: int, max_tokens: int, doc_stride: int) -> list[tuple[int, int]]:
    """(start, length) of each window over a context of `num_tokens` tokens: Google's windows,
    each starting doc_stride after the last, until one reaches the end."""
    spans, start = [], 0
    while True:
        length = min(num_tokens - start, max_tokens)
        spans.append((start, length))
        if start + length >= num_tokens:
            return spans
        start += min(length, doc_stride)


def answer_token_span(offsets: Sequence[tuple[int, int]], start_char: int,
                      end_char: int) -> tuple[int, int] | None:
    """(first, last) context token overlapping the characters [start_char, end_char), or None
    when no token does (an answer made only of characters the tokenizer drops)."""
    first = next((i for i, (_, e) in enumerate(offsets) if e > start_char), None)
    last = next((i for i in range(len(offsets) - 1, -1, -1) if offsets[i][0] < end_char), None)
    if first is None or last is None or last < first:
        return None
    return first, last


def featurize_squad(examples: Sequence[SquadExample], tokenizer: Any, max_seq_length: int,
                    doc_stride: int, max_query_length: int) -> SquadFeatures:
    """Cut every question into windows (see the module docstring); training targets come from
    the first gold answer, as in both references."""
    if doc_stride < 1 or max_query_length < 1:
        raise ValueError(f"doc_stride ({doc_stride}) and max_query_length "
                         f"({max_query_length}) must be at least 1")
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    contexts: dict[str, tuple[list[int], list[tuple[int, int]]]] = {}
    ids_out, types_out, starts, ends, features = [], [], [], [], []
    for ex in examples:
        if ex.context not in contexts:
            enc = tokenizer(ex.context, add_special_tokens=False, return_offsets_mapping=True)
            contexts[ex.context] = (enc["input_ids"], [tuple(o) for o in enc["offset_mapping"]])
        doc_ids, doc_offsets = contexts[ex.context]
        query = tokenizer(ex.question, add_special_tokens=False)["input_ids"][:max_query_length]
        max_tokens = max_seq_length - len(query) - 3
        if max_tokens < 1:
            raise ValueError(f"max_seq_length {max_seq_length} leaves no room for the context "
                             f"after a {len(query)}-token question (question {ex.qid!r}); "
                             f"raise it or lower max_query_length")
        target = None
        if ex.answers and not ex.is_impossible:
            text, start_char = ex.answers[0]
            target = answer_token_span(doc_offsets, start_char, start_char + len(text))
        spans = doc_windows(len(doc_ids), max_tokens, doc_stride) if doc_ids else [(0, 0)]
        flags = max_context_flags(spans) if doc_ids else [[]]
        head = [cls] + query + [sep]
        for (start, length), window_flags in zip(spans, flags):
            ids = head + doc_ids[start:start + length] + [sep]
            types = [0] * len(head) + [1] * (length + 1)
            offsets = [None] * len(head) + doc_offsets[start:start + length] + [None]
            max_context = [False] * len(head) + list(window_flags) + [False]
            s = e = 0
            if target is not None and start <= target[0] and target[1] < start + length:
                s, e = (len(head) + t - start for t in target)
            ids_out.append(np.asarray(ids, np.int32))
            types_out.append(np.asarray(types, np.int32))
            starts.append(s)
            ends.append(e)
            features.append(SquadFeature(ex.qid, offsets, max_context, cls_index=0))
    return SquadFeatures(ids_out, types_out, np.asarray(starts, np.int64),
                         np.asarray(ends, np.int64), features)
