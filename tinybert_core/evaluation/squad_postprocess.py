"""SQuAD post-processing: start/end logits of the windows ("features") of each question back to
answer text in the original context, and the files the official v2.0 evaluation reads.

The procedure is Google BERT's `write_predictions` (google-research/bert `run_squad.py`, copied
in google-research/google-research `mobilebert/run_squad.py`), with the answer text cut from
the context by character offsets as in Hugging Face's `postprocess_qa_predictions`
(transformers `examples/pytorch/question-answering/utils_qa.py`). For each question:

1. In every window, take the `n_best_size` highest start logits and the `n_best_size` highest
   end logits (ties: the lower position first). Each (start, end) pair is a candidate span with
   score start_logit + end_logit, unless a token is outside the window's context part (offset
   None or past the offsets), end < start, the span is longer than `max_answer_length` tokens,
   or the window is not the max-context window of the start token (`token_is_max_context`;
   Google always applies it, HF only when given it).
2. v2.0 (`version_2_with_negative`): the null score is the *minimum* over the windows of
   start_logit[CLS] + end_logit[CLS]: a question is unanswerable only if every window says so.
3. Sort all candidates by score (stable, the null last among equals) and keep the first
   `n_best_size` distinct answer texts (Google's dedup; HF's utils_qa keeps duplicates). v2.0
   appends the null ("") if it did not make the list. Probabilities are the softmax of the
   kept scores.
4. v1.1: the answer is the top entry. v2.0: score_diff = null_score - (start_logit + end_logit)
   of the best non-null span; the answer is "" if score_diff > `null_score_diff_threshold`,
   else that span. score_diff is what null_odds.json holds, the file to pass to the v2.0
   script as its na-prob file to search the best threshold (`squad.find_best_thresh`).

Where the references print a placeholder answer "empty" (no valid span in any window, or
Google's `n_best_size=1` with the null on top), we do not: the best non-null span is searched
among all candidates, and a question with no valid span gets answer "", no n-best span, and
null odds +inf (JSON `Infinity`, which Python's json and the official script read).
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from autograd.serialization import atomic_write_text

__all__ = [
    "PREDICTION_FILES",
    "SquadFeature",
    "SquadPredictions",
    "max_context_flags",
    "postprocess_qa_predictions",
    "predictions_with_threshold",
    "write_predictions",
]

PREDICTION_FILES = ("predictions.json", "nbest_predictions.json", "null_odds.json")


@dataclass(frozen=True)
class SquadFeature:
    """One window of one question: what post-processing needs from the featurizer.

    example_id: the question id (SQuAD's "id"); every window of a question carries it.
    offset_mapping: one entry per token of the window, in model-input order: the token's
        (char_start, char_end) in the question's *context* string (`context[start:end]` is
        the token's text) for a context token, None for every other token ([CLS], question,
        [SEP], padding). The logits may be longer (padding); missing entries count as None.
    token_is_max_context: one bool per token of `offset_mapping`: True where this window is
        the max-context window of the token (Google's `_check_is_max_context`, computed by
        `max_context_flags`); read for context tokens only, False elsewhere.
    cls_index: position of [CLS], whose start + end logits score "no answer" (0 for BERT).
    """

    example_id: str
    offset_mapping: Sequence[tuple[int, int] | None]
    token_is_max_context: Sequence[bool]
    cls_index: int = 0

    def __post_init__(self) -> None:
        offsets = tuple(None if o is None else (int(o[0]), int(o[1]))
                        for o in self.offset_mapping)
        flags = tuple(bool(f) for f in self.token_is_max_context)
        where = f"SquadFeature of example {self.example_id!r}"
        if len(flags) != len(offsets):
            raise ValueError(f"{where}: token_is_max_context has {len(flags)} entries, "
                             f"offset_mapping {len(offsets)}")
        for i, o in enumerate(offsets):
            if o is not None and not 0 <= o[0] <= o[1]:
                raise ValueError(f"{where}: offset_mapping[{i}] = {o} is not a "
                                 f"(start, end) pair with 0 <= start <= end")
        if self.cls_index < 0 or (self.cls_index < len(offsets)
                                  and offsets[self.cls_index] is not None):
            raise ValueError(f"{where}: cls_index {self.cls_index} must be a non-context "
                             f"position")
        object.__setattr__(self, "offset_mapping", offsets)
        object.__setattr__(self, "token_is_max_context", flags)


class SquadPredictions(NamedTuple):
    """The three outputs, keyed by question id in the order of the contexts given."""

    predictions: dict[str, str]                 # predictions.json: id -> answer ("" = none)
    nbest: dict[str, list[dict[str, Any]]]      # nbest_predictions.json: text, probability,
                                                # start_logit, end_logit, best first
    null_odds: dict[str, float] | None          # null_odds.json (v2.0 only): score_diff


def max_context_flags(doc_spans: Sequence[tuple[int, int]]) -> list[list[bool]]:
    """For windows given as (start, length) over a document's tokens, flags[w][i] is True when
    window w is the max-context window of its i-th token (document position start + i).

    A window's score for a position is min(tokens left of it, tokens right of it in the
    window) + 0.01 * window length; the highest score wins, the first window among equals
    (Google BERT's `_check_is_max_context`).
    """
    best: dict[int, tuple[float, int]] = {}
    for w, (start, length) in enumerate(doc_spans):
        if start < 0 or length < 1:
            raise ValueError(f"max_context_flags: window {w} is (start={start}, "
                             f"length={length}); need start >= 0 and length >= 1")
        for position in range(start, start + length):
            score = min(position - start, start + length - 1 - position) + 0.01 * length
            if position not in best or score > best[position][0]:
                best[position] = (score, w)
    return [[best[start + i][1] == w for i in range(length)]
            for w, (start, length) in enumerate(doc_spans)]


class _Candidate(NamedTuple):
    score: float
    start_logit: float
    end_logit: float
    text: str | None  # None marks the null answer


def _window_candidates(feature: SquadFeature, start: np.ndarray, end: np.ndarray,
                       context: str, n_best_size: int,
                       max_answer_length: int) -> list[_Candidate]:
    """The valid spans among the top start x top end positions of one window, in the order
    (start rank, end rank) that the references' nested loops produce them."""
    offsets, n = feature.offset_mapping, len(feature.offset_mapping)
    in_context = np.zeros(start.size, dtype=bool)  # (T,)
    in_context[:n] = [o is not None for o in offsets]
    may_start = in_context.copy()
    may_start[:n] &= np.asarray(feature.token_is_max_context, dtype=bool)
    starts = np.argsort(-start, kind="stable")[:n_best_size]  # ties: the lower position first
    ends = np.argsort(-end, kind="stable")[:n_best_size]
    i, j = starts[:, None], ends[None, :]  # (k, 1), (1, k)
    valid = may_start[i] & in_context[j] & (j >= i) & (j - i + 1 <= max_answer_length)
    spans = []
    for a, b in zip(*np.nonzero(valid)):  # row-major: start rank, then end rank
        s, e = int(starts[a]), int(ends[b])
        text = context[offsets[s][0]:offsets[e][1]]
        if text:  # a zero-width span is no answer and would be confused with the null
            spans.append(_Candidate(float(start[s] + end[e]), float(start[s]), float(end[e]),
                                    text))
    return spans


def _group_windows(contexts: Mapping[str, str], features: Sequence[SquadFeature],
                   width: int) -> dict[str, list[int]]:
    """Question id -> indices of its features, checking each feature against its context."""
    windows: dict[str, list[int]] = {qid: [] for qid in contexts}
    for f, feature in enumerate(features):
        qid = feature.example_id
        if qid not in windows:
            raise ValueError(f"feature {f} belongs to example {qid!r}, which is not among "
                             f"the contexts")
        if len(feature.offset_mapping) > width or feature.cls_index >= width:
            raise ValueError(f"feature {f} ({qid!r}) has {len(feature.offset_mapping)} tokens "
                             f"and cls_index {feature.cls_index}, but the logits have {width}")
        reach = max((o[1] for o in feature.offset_mapping if o is not None), default=0)
        if reach > len(contexts[qid]):
            raise ValueError(f"feature {f} ({qid!r}): offset_mapping reaches character "
                             f"{reach}, past the end of its context ({len(contexts[qid])} "
                             f"characters)")
        windows[qid].append(f)
    for qid, indices in windows.items():
        if not indices:
            raise ValueError(f"example {qid!r} has no features (windows) to predict from")
    return windows


def _nbest(candidates: list[_Candidate], null: _Candidate | None,
           n_best_size: int) -> list[dict[str, Any]]:
    """The first `n_best_size` distinct texts of the sorted candidates (plus the null, if it
    is given and missed the cut), with softmax probabilities over their scores."""
    kept: list[_Candidate] = []
    seen: set[str] = set()
    for candidate in candidates:
        if len(kept) == n_best_size:
            break
        text = candidate.text or ""
        if text not in seen:
            seen.add(text)
            kept.append(candidate)
    if null is not None and "" not in seen:
        kept.append(null)
    if not kept:
        return []
    scores = np.array([c.score for c in kept])
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    return [{"text": c.text or "", "probability": float(p), "start_logit": c.start_logit,
             "end_logit": c.end_logit} for c, p in zip(kept, probs)]


def postprocess_qa_predictions(
    contexts: Mapping[str, str],
    features: Sequence[SquadFeature],
    start_logits,
    end_logits,
    *,
    version_2_with_negative: bool = False,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    null_score_diff_threshold: float = 0.0,
) -> SquadPredictions:
    """Answers, n-best lists and null odds of every question in `contexts` (id -> context).

    start_logits, end_logits: (F, T) arrays, row f for `features[f]`; computed in float64.
    See the module docstring for the procedure.
    """
    if n_best_size < 1 or max_answer_length < 1:
        raise ValueError(f"n_best_size ({n_best_size}) and max_answer_length "
                         f"({max_answer_length}) must be at least 1")
    start_all = np.asarray(start_logits, dtype=np.float64)  # (F, T)
    end_all = np.asarray(end_logits, dtype=np.float64)
    if start_all.ndim != 2 or start_all.shape != end_all.shape or \
            start_all.shape[0] != len(features):
        raise ValueError(f"start_logits and end_logits must both be (F, T) with F = "
                         f"{len(features)} features, got {start_all.shape} and "
                         f"{end_all.shape}")
    if not (np.isfinite(start_all).all() and np.isfinite(end_all).all()):
        raise ValueError("start_logits or end_logits hold NaN or infinite values")
    windows = _group_windows(contexts, features, start_all.shape[1])

    predictions: dict[str, str] = {}
    all_nbest: dict[str, list[dict[str, Any]]] = {}
    null_odds: dict[str, float] | None = {} if version_2_with_negative else None
    for qid, context in contexts.items():
        candidates: list[_Candidate] = []
        null: _Candidate | None = None  # the window with the lowest [CLS] score
        for f in windows[qid]:
            feature, start, end = features[f], start_all[f], end_all[f]
            candidates += _window_candidates(feature, start, end, context, n_best_size,
                                             max_answer_length)
            cls = feature.cls_index
            if null is None or start[cls] + end[cls] < null.score:
                null = _Candidate(float(start[cls] + end[cls]), float(start[cls]),
                                  float(end[cls]), None)
        if version_2_with_negative:
            candidates.append(null)
        candidates.sort(key=lambda c: c.score, reverse=True)  # stable: null last among equals
        all_nbest[qid] = _nbest(candidates, null if version_2_with_negative else None,
                                n_best_size)

        best = next((c for c in candidates if c.text is not None), None)  # best non-null
        if not version_2_with_negative:
            predictions[qid] = best.text if best is not None else ""
            continue
        score_diff = math.inf if best is None else null.score - (best.start_logit +
                                                                 best.end_logit)
        null_odds[qid] = score_diff
        predictions[qid] = "" if score_diff > null_score_diff_threshold else best.text
    return SquadPredictions(predictions, all_nbest, null_odds)


def predictions_with_threshold(result: SquadPredictions, threshold: float) -> dict[str, str]:
    """Re-decide v2.0 answers for another `null_score_diff_threshold` (e.g. the best_f1_thresh
    found on dev) from the null odds and n-best lists, without running the model again.

    The best span is the first non-empty n-best entry, so this needs `n_best_size` >= 2 (with
    1, a null on top leaves no span in the list)."""
    if result.null_odds is None:
        raise ValueError("predictions_with_threshold: these are SQuAD v1.1 predictions "
                         "(no null odds)")
    answers = {}
    for qid, odds in result.null_odds.items():
        best = next((e["text"] for e in result.nbest[qid] if e["text"]), "")
        answers[qid] = "" if odds > threshold else best
    return answers


def write_predictions(output_dir: str | Path, result: SquadPredictions, *,
                      overwrite: bool = False) -> list[Path]:
    """Write predictions.json, nbest_predictions.json and (v2.0) null_odds.json into
    `output_dir` (created if missing), each atomically; returns the paths written.

    Unless `overwrite`, an existing file of any of the three names is an error and nothing
    is written, so the files of two runs never mix.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(f"{output_dir}: exists and is not a directory")
    if not overwrite:
        for name in PREDICTION_FILES:
            if (output_dir / name).exists():
                raise FileExistsError(f"{output_dir / name} already exists; refusing to mix "
                                      f"two runs' predictions (choose another directory or "
                                      f"pass overwrite)")
    contents = {"predictions.json": result.predictions,
                "nbest_predictions.json": result.nbest}
    if result.null_odds is not None:
        contents["null_odds.json"] = result.null_odds
    texts = {name: json.dumps(data, indent=4) + "\n" for name, data in contents.items()}
    output_dir.mkdir(parents=True, exist_ok=True)
    stale = output_dir / "null_odds.json"
    if "null_odds.json" not in texts and stale.exists():
        stale.unlink()  # overwrite with v1.1 results: an old v2.0 null_odds.json would mix
    paths = []
    for name, text in texts.items():
        atomic_write_text(output_dir / name, text)
        paths.append(output_dir / name)
    return paths
