"""SQuAD v1.1 and v2.0 scoring: exact match and F1, computed as the official scripts do.

The official scripts are `evaluate-v1.1.py` and `evaluate-v2.0.py` from the SQuAD site
(https://rajpurkar.github.io/SQuAD-explorer/; v2.0 is CodaLab bundle
0x6b567e1cf2e041ec80d7098f031c5c9e). This module follows their rules step by step, in our own
words, and keeps the v2.0 script's function and key names so the two can be read side by side.

Answer normalisation (both scripts, identical under Python 3): lower-case; delete every
character of `string.punctuation` (ASCII only: curly quotes and dashes stay); replace the
words a/an/the (`\\b(a|an|the)\\b`) by a space; split on whitespace and join with one space.
(v2.0 compiles the regex with `re.UNICODE`, v1.1 does not; under Python 3 a str pattern is
Unicode-aware either way, so they agree. Only the Python 2 run of v1.1 had ASCII-only `\\b`.)

Where the two versions differ, `version` selects the script's behaviour:

    rule                          v1.1                           v2.0
    gold answers                  all of them; none is an error  those that normalise to
                                  (the script crashes in max())  non-empty; none left -> ['']
    F1 with an empty side         0 (no common token)            1 if both are empty, else 0
    question without prediction   scores 0, counts in total      the script stops (KeyError);
                                                                 we raise ValueError
    keys                          exact_match, f1                exact, f1, total, HasAns_*,
                                                                 NoAns_*, best_* (see below)

v2.0 keys. `exact`, `f1`: mean over all questions x100, after the no-answer threshold: a
question whose no-answer probability is > `na_prob_thresh` (default 1.0, so never for
probabilities) counts as predicted unanswerable and scores 1 if it is unanswerable, else 0.
`total`: number of questions. `HasAns_exact/f1/total`: the same over the answerable questions
(those whose answers list is non-empty), present only if there are any; `NoAns_*` likewise for
the unanswerable ones. Only when `na_probs` is given (the script's `--na-prob-file`, our
`null_odds.json`): `best_exact` / `best_f1` and `best_exact_thresh` / `best_f1_thresh`, the best
score over thresholds on na_probs and the threshold reaching it (`find_best_thresh`). The
script's optional precision-recall curves (`pr_*_ap`, drawn only with `--out-image-dir`) are
not computed.
"""
from __future__ import annotations

import json
import math
import re
import string
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "SQUAD_VERSIONS",
    "answer_tokens",
    "apply_no_ans_threshold",
    "compute_exact",
    "compute_f1",
    "find_all_best_thresh",
    "find_best_thresh",
    "get_raw_scores",
    "gold_answers_from_squad",
    "load_json_mapping",
    "load_squad_gold",
    "make_eval_dict",
    "normalize_answer",
    "squad_evaluate",
    "squad_evaluate_files",
]

SQUAD_VERSIONS = ("1.1", "2.0")
_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def _check_version(version: str) -> str:
    if version not in SQUAD_VERSIONS:
        raise ValueError(f"SQuAD version must be one of {SQUAD_VERSIONS}, got {version!r}")
    return version


# ----------------------------------------------------------------------------- one answer

def normalize_answer(s: str) -> str:
    """Lower-case, drop ASCII punctuation, replace a/an/the by a space, collapse whitespace."""
    text = "".join(ch for ch in s.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def answer_tokens(s: str) -> list[str]:
    """The tokens F1 compares: the normalised answer split on whitespace."""
    return normalize_answer(s).split() if s else []


def compute_exact(a_gold: str, a_pred: str) -> int:
    """1 if the normalised answers are equal, else 0 (same in v1.1 and v2.0)."""
    return int(normalize_answer(a_gold) == normalize_answer(a_pred))


def compute_f1(a_gold: str, a_pred: str, version: str = "2.0") -> float:
    """Token-level F1 of one prediction against one gold answer.

    Common tokens are counted as a multiset (a token shared twice counts twice);
    precision = common / len(pred), recall = common / len(gold), F1 = 2PR / (P + R), 0 when
    nothing is shared. v2.0 first scores an empty side (no token after normalisation) as
    1 if both are empty and 0 otherwise; v1.1 has no such rule, so empty vs empty is 0.
    """
    gold, pred = answer_tokens(a_gold), answer_tokens(a_pred)
    if _check_version(version) == "2.0" and (not gold or not pred):
        return float(gold == pred)
    num_same = sum((Counter(gold) & Counter(pred)).values())
    if num_same == 0:
        return 0.0
    precision, recall = num_same / len(pred), num_same / len(gold)
    return 2 * precision * recall / (precision + recall)


# ----------------------------------------------------------------------------- gold data

def gold_answers_from_squad(dataset: Any, source: str = "SQuAD data") -> dict[str, list[str]]:
    """Question id -> gold answer texts (an empty list for an unanswerable question), in file
    order, from a SQuAD JSON object (`{"version", "data": [...]}`) or its "data" list.

    `source` names the file in error messages, which also give the position of a bad entry.
    """
    articles = dataset.get("data") if isinstance(dataset, Mapping) else dataset
    if not isinstance(articles, list):
        raise ValueError(f"{source}: expected a SQuAD JSON object with a 'data' list")
    gold: dict[str, list[str]] = {}
    for i, article in enumerate(articles):
        paragraphs = article.get("paragraphs") if isinstance(article, Mapping) else None
        if not isinstance(paragraphs, list):
            raise ValueError(f"{source}: data[{i}] has no 'paragraphs' list")
        for j, paragraph in enumerate(paragraphs):
            qas = paragraph.get("qas") if isinstance(paragraph, Mapping) else None
            if not isinstance(qas, list):
                raise ValueError(f"{source}: data[{i}].paragraphs[{j}] has no 'qas' list")
            for k, qa in enumerate(qas):
                where = f"{source}: data[{i}].paragraphs[{j}].qas[{k}]"
                if not isinstance(qa, Mapping) or not isinstance(qa.get("id"), str):
                    raise ValueError(f"{where} has no string 'id'")
                answers = qa.get("answers")
                if not isinstance(answers, list) or not all(
                        isinstance(a, Mapping) and isinstance(a.get("text"), str)
                        for a in answers):
                    raise ValueError(f"{where} (id {qa['id']!r}): 'answers' must be a list of "
                                     f"{{'text': str, ...}}")
                if qa["id"] in gold:
                    raise ValueError(f"{where}: duplicate question id {qa['id']!r}")
                gold[qa["id"]] = [a["text"] for a in answers]
    return gold


def _read_json(path: str | Path, what: str) -> Any:
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{path}: {what} file not found") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a valid JSON {what} file ({e})") from e


def load_squad_gold(path: str | Path) -> dict[str, list[str]]:
    """`gold_answers_from_squad` of a SQuAD JSON file (dev-v1.1.json, dev-v2.0.json)."""
    return gold_answers_from_squad(_read_json(path, "SQuAD data"), source=str(path))


def load_json_mapping(path: str | Path, kind: type) -> dict[str, Any]:
    """A JSON object of question id -> `kind` (str for predictions.json, float for
    null_odds.json / a na-prob file), checked; errors name the file and the question id."""
    what = "predictions" if kind is str else "no-answer probability"
    data = _read_json(path, what)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object of question id -> {kind.__name__}")
    for qid, value in data.items():
        ok = isinstance(value, str) if kind is str else (
            isinstance(value, (int, float)) and not isinstance(value, bool))
        if not ok:
            raise ValueError(f"{path}: value for question {qid!r} is {value!r}, "
                             f"not a {kind.__name__}")
    return data


# ----------------------------------------------------------------------------- the script

def get_raw_scores(gold_answers: Mapping[str, list[str]], preds: Mapping[str, str],
                   version: str = "2.0") -> tuple[dict[str, int], dict[str, float]]:
    """Per-question exact match and F1, the max over the gold answers, before any threshold.

    Questions without a prediction are left out, as both scripts do before counting them.
    """
    _check_version(version)
    exact_scores: dict[str, int] = {}
    f1_scores: dict[str, float] = {}
    for qid, answers in gold_answers.items():
        if version == "2.0":
            # An answer that normalises to nothing cannot be matched; none left = unanswerable.
            golds = [a for a in answers if normalize_answer(a)] or [""]
        else:
            golds = list(answers)
            if not golds:
                raise ValueError(f"SQuAD v1.1 scoring: question {qid!r} has no gold answer "
                                 f"(an unanswerable v2.0 question?); use version='2.0'")
        if qid not in preds:
            continue
        pred = preds[qid]
        exact_scores[qid] = max(compute_exact(a, pred) for a in golds)
        f1_scores[qid] = max(compute_f1(a, pred, version) for a in golds)
    return exact_scores, f1_scores


def apply_no_ans_threshold(scores: Mapping[str, float], na_probs: Mapping[str, float],
                           qid_to_has_ans: Mapping[str, bool],
                           na_prob_thresh: float) -> dict[str, float]:
    """Questions with na_prob > na_prob_thresh are answered "no answer": their score becomes
    1.0 if they are unanswerable and 0.0 if not; the others keep their score."""
    return {qid: float(not qid_to_has_ans[qid]) if na_probs[qid] > na_prob_thresh else s
            for qid, s in scores.items()}


def make_eval_dict(exact_scores: Mapping[str, float], f1_scores: Mapping[str, float],
                   qid_list: list[str] | None = None) -> dict[str, float]:
    """{"exact", "f1", "total"} over `qid_list` (all scored questions when None or empty)."""
    qids = list(qid_list) if qid_list else list(exact_scores)
    total = len(qids)
    return {
        "exact": 100.0 * sum(exact_scores[k] for k in qids) / total,
        "f1": 100.0 * sum(f1_scores[k] for k in qids) / total,
        "total": total,
    }


def find_best_thresh(preds: Mapping[str, str], scores: Mapping[str, float],
                     na_probs: Mapping[str, float],
                     qid_to_has_ans: Mapping[str, bool]) -> tuple[float, float]:
    """(best score x100, threshold): the best total over thresholds t on na_probs, answering
    the questions with na_prob <= t and predicting "no answer" for the rest.

    Walks the questions in increasing na_prob starting from "all no answer" (a score of the
    number of unanswerable questions). Each step answers one more question: an answerable one
    adds its raw score, an unanswerable one with a non-empty prediction string loses its point
    (-1). The best running total and the na_prob of the question that reached it are kept.

    As in the script, ties in na_prob are walked in the order of `na_probs` (a stable sort),
    and a running total reached in the middle of a tie is kept although no threshold can
    split the tie: with ties, the best score may not be reachable by `na_prob > thresh`.
    """
    cur_score = best_score = sum(1 for has_ans in qid_to_has_ans.values() if not has_ans)
    best_thresh = 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        if qid_to_has_ans[qid]:
            cur_score += scores[qid]
        elif preds[qid]:
            cur_score -= 1
        if cur_score > best_score:
            best_score, best_thresh = cur_score, na_probs[qid]
    return 100.0 * best_score / len(scores), best_thresh


def find_all_best_thresh(main_eval: dict[str, float], preds: Mapping[str, str],
                         exact_raw: Mapping[str, float], f1_raw: Mapping[str, float],
                         na_probs: Mapping[str, float],
                         qid_to_has_ans: Mapping[str, bool]) -> None:
    """Add best_exact, best_exact_thresh, best_f1, best_f1_thresh to `main_eval`."""
    best_exact, exact_thresh = find_best_thresh(preds, exact_raw, na_probs, qid_to_has_ans)
    best_f1, f1_thresh = find_best_thresh(preds, f1_raw, na_probs, qid_to_has_ans)
    main_eval["best_exact"] = best_exact
    main_eval["best_exact_thresh"] = exact_thresh
    main_eval["best_f1"] = best_f1
    main_eval["best_f1_thresh"] = f1_thresh


def _check_inputs(gold_answers, preds, na_probs) -> None:
    if not gold_answers:
        raise ValueError("SQuAD scoring: no questions in the gold data")
    for qid, pred in preds.items():
        if not isinstance(pred, str):
            raise TypeError(f"SQuAD scoring: prediction for {qid!r} is "
                            f"{type(pred).__name__}, not str")
    if na_probs is not None:
        missing = [qid for qid in gold_answers if qid in preds and qid not in na_probs]
        if missing:
            raise ValueError(f"SQuAD scoring: no no-answer probability for {len(missing)} "
                             f"question(s), e.g. {missing[:3]}")
        nan = [qid for qid, p in na_probs.items() if math.isnan(p)]
        if nan:
            raise ValueError(f"SQuAD scoring: no-answer probability is NaN for {nan[:3]}")


def squad_evaluate(gold_answers: Mapping[str, list[str]], preds: Mapping[str, str], *,
                   version: str = "2.0", na_probs: Mapping[str, float] | None = None,
                   na_prob_thresh: float = 1.0) -> dict[str, float]:
    """Score predictions (question id -> answer text, "" for no answer) against gold answers
    (question id -> texts, [] if unanswerable) as the official script of `version` does.

    v1.1 returns {"exact_match", "f1"}; v2.0 the keys listed in the module docstring, with
    best_* only when `na_probs` (question id -> no-answer score, e.g. null_odds.json) is given.
    """
    _check_version(version)
    _check_inputs(gold_answers, preds, na_probs)
    if version == "1.1":
        if na_probs is not None:
            raise ValueError("SQuAD v1.1 scoring has no no-answer probabilities; "
                             "use version='2.0'")
        exact_raw, f1_raw = get_raw_scores(gold_answers, preds, "1.1")
        total = len(gold_answers)  # a question without a prediction scores 0
        return {"exact_match": 100.0 * sum(exact_raw.values()) / total,
                "f1": 100.0 * sum(f1_raw.values()) / total}

    missing = [qid for qid in gold_answers if qid not in preds]
    if missing:
        raise ValueError(f"SQuAD v2.0 scoring: {len(missing)} of {len(gold_answers)} questions "
                         f"have no prediction, e.g. {missing[:3]} (the official script stops "
                         f"with a KeyError here)")
    qid_to_has_ans = {qid: bool(answers) for qid, answers in gold_answers.items()}
    has_ans_qids = [qid for qid, has_ans in qid_to_has_ans.items() if has_ans]
    no_ans_qids = [qid for qid, has_ans in qid_to_has_ans.items() if not has_ans]
    probs = na_probs if na_probs is not None else {qid: 0.0 for qid in preds}
    exact_raw, f1_raw = get_raw_scores(gold_answers, preds, "2.0")
    exact_thresh = apply_no_ans_threshold(exact_raw, probs, qid_to_has_ans, na_prob_thresh)
    f1_thresh = apply_no_ans_threshold(f1_raw, probs, qid_to_has_ans, na_prob_thresh)
    out_eval = make_eval_dict(exact_thresh, f1_thresh)
    for prefix, qids in (("HasAns", has_ans_qids), ("NoAns", no_ans_qids)):
        if qids:
            for key, value in make_eval_dict(exact_thresh, f1_thresh, qids).items():
                out_eval[f"{prefix}_{key}"] = value
    if na_probs is not None:
        find_all_best_thresh(out_eval, preds, exact_raw, f1_raw, na_probs, qid_to_has_ans)
    return out_eval


def squad_evaluate_files(data_file: str | Path, pred_file: str | Path,
                         na_prob_file: str | Path | None = None, *, version: str = "2.0",
                         na_prob_thresh: float = 1.0) -> dict[str, float]:
    """The official script's command line as a function: score predictions.json (and, for
    v2.0, a null-odds / na-prob file) against a SQuAD data file."""
    gold = load_squad_gold(data_file)
    preds = load_json_mapping(pred_file, str)
    na_probs = load_json_mapping(na_prob_file, float) if na_prob_file is not None else None
    return squad_evaluate(gold, preds, version=version, na_probs=na_probs,
                          na_prob_thresh=na_prob_thresh)
