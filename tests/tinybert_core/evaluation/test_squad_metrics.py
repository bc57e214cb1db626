"""SQuAD v1.1/v2.0 scoring: cases worked out by hand from the official scripts' rules, and
HF transformers' `squad_metrics` (transformers < 5) on random data where importable."""
from __future__ import annotations

import json
import random
import warnings
from types import SimpleNamespace

import pytest

from paths import SHARED_DATA
from tinybert_core.evaluation.squad import (
    answer_tokens,
    compute_exact,
    compute_f1,
    find_best_thresh,
    gold_answers_from_squad,
    load_json_mapping,
    load_squad_gold,
    normalize_answer,
    squad_evaluate,
    squad_evaluate_files,
)

SHARED_DEV = SHARED_DATA / "squad" / "dev-v2.0.json"


# ----------------------------------------------------------------------------- normalisation

@pytest.mark.parametrize("text, expected", [
    ("The Cat", "cat"),
    ("a an the", ""),
    ("A", ""),                                   # lower-cased before the articles go
    ("theatre Anthem", "theatre anthem"),        # articles only as whole words
    ("the-end", "theend"),                       # punctuation goes first: no word boundary left
    ("(the)", ""),                               # ... and then "the" stands alone
    ("the_end", "theend"),                       # "_" is in string.punctuation
    ("U.S.A.", "usa"),
    ("l'homme", "lhomme"),
    ("  multiple   spaces\tand\nnewlines ", "multiple spaces and newlines"),
    ("\u201cquoted\u201d", "\u201cquoted\u201d"),  # curly quotes are not ASCII punctuation
    ("war\u2014the end", "war\u2014 end"),        # an em dash stays, but it is a word boundary
    ("\u00e9the caf\u00e9", "\u00e9the caf\u00e9"),  # Unicode \b: no boundary inside "\u00e9the"
    ("the123 an-", "the123"),                    # digits are word characters; "an-" -> "an"
    ("", ""),
])
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_answer_tokens():
    assert answer_tokens("The quick, brown fox.") == ["quick", "brown", "fox"]
    assert answer_tokens("") == [] and answer_tokens("the") == []


# ----------------------------------------------------------------------------- one answer

def test_exact_and_f1_by_hand():
    assert compute_exact("Denver Broncos", "the denver broncos!") == 1
    assert compute_exact("Denver Broncos", "Broncos") == 0
    # gold tokens (x y y z), pred (y y y): 2 shared (a multiset), P = 2/3, R = 2/4, F1 = 4/7
    assert compute_f1("x y y z", "y y y") == pytest.approx(4 / 7, abs=1e-15)
    assert compute_f1("x y y z", "y y y", version="1.1") == pytest.approx(4 / 7, abs=1e-15)
    assert compute_f1("Denver Broncos", "the Broncos") == pytest.approx(2 / 3, abs=1e-15)
    assert compute_f1("cat", "dog") == 0.0


def test_empty_answers_differ_between_versions():
    # v2.0: an empty side scores 1 if both are empty (after normalisation), else 0
    assert compute_f1("", "") == 1.0
    assert compute_f1("the", "") == 1.0         # "the" normalises to nothing
    assert compute_f1("", "Broncos") == 0.0
    assert compute_f1("Broncos", "") == 0.0
    # v1.1: no common token -> 0, even when both are empty; EM still says equal
    assert compute_f1("", "", version="1.1") == 0.0
    assert compute_f1("the", "a", version="1.1") == 0.0
    assert compute_exact("the", "a") == 1
    with pytest.raises(ValueError, match=r"SQuAD version must be one of \('1.1', '2.0'\), "
                                         r"got '3'"):
        compute_f1("a", "b", version="3")


# ----------------------------------------------------------------------------- v2.0

GOLD = {
    "q1": ["Denver Broncos", "Broncos"],   # answerable, two gold answers
    "q2": ["1976"],
    "q3": [],                               # unanswerable
    "q4": [],
    "q5": ["the", "an"],                    # answerable but every gold normalises to nothing
}


def test_v2_scores_split_into_has_ans_and_no_ans():
    preds = {"q1": "the Broncos", "q2": "in 1976 maybe", "q3": "", "q4": "Broncos", "q5": ""}
    result = squad_evaluate(GOLD, preds)
    # exact: q1 1 (max over golds), q2 0, q3 1, q4 0, q5 1 (gold becomes [''])
    # f1: q1 1, q2 2*(1/3)(1)/(4/3) = 0.5, q3 1, q4 0, q5 1
    assert list(result) == ["exact", "f1", "total", "HasAns_exact", "HasAns_f1",
                            "HasAns_total", "NoAns_exact", "NoAns_f1", "NoAns_total"]
    assert result["exact"] == pytest.approx(100 * 3 / 5)
    assert result["f1"] == pytest.approx(100 * 3.5 / 5)
    assert result["total"] == 5
    # HasAns is decided by the raw answers list, so q5 counts as answerable
    assert (result["HasAns_exact"], result["HasAns_f1"], result["HasAns_total"]) == (
        pytest.approx(100 * 2 / 3), pytest.approx(100 * 2.5 / 3), 3)
    assert (result["NoAns_exact"], result["NoAns_f1"], result["NoAns_total"]) == (50.0, 50.0, 2)


def test_v2_without_unanswerable_questions_has_no_no_ans_keys():
    result = squad_evaluate({"q1": ["a cat"]}, {"q1": "cat"})
    assert result == {"exact": 100.0, "f1": 100.0, "total": 1, "HasAns_exact": 100.0,
                      "HasAns_f1": 100.0, "HasAns_total": 1}


def test_na_prob_thresh_turns_confident_questions_into_no_answer():
    gold = {"a": ["cat"], "b": ["dog"], "n": []}
    preds = {"a": "cat", "b": "cat", "n": "cat"}
    na = {"a": 0.9, "b": 0.2, "n": 0.7}
    # default 1.0: nothing is above it, raw scores a 1, b 0, n 0
    assert squad_evaluate(gold, preds, na_probs=na)["exact"] == pytest.approx(100 / 3)
    # 0.5: a and n are predicted unanswerable -> a 0 (has an answer), n 1; b keeps 0
    result = squad_evaluate(gold, preds, na_probs=na, na_prob_thresh=0.5)
    assert (result["exact"], result["HasAns_exact"], result["NoAns_exact"]) == (
        pytest.approx(100 / 3), 0.0, 100.0)
    # strictly greater: na_prob == threshold keeps the answer
    assert squad_evaluate(gold, preds, na_probs=na, na_prob_thresh=0.9)["HasAns_exact"] == 50.0


def test_best_threshold_search_by_hand():
    gold = {"a1": ["x"], "a2": ["p q r s"], "a3": ["y"], "n1": [], "n2": []}
    preds = {"a1": "x", "a2": "p q r t", "a3": "y", "n1": "z", "n2": ""}
    na = {"n2": 0.8, "a3": 0.6, "a2": 0.5, "n1": 0.3, "a1": 0.1}
    # start: all no-answer = 2 (n1, n2). In na order:
    #   a1 +1 -> 3 (best, 0.1); n1 -1 -> 2; a2 +0 (EM) / +0.75 (F1); a3 +1; n2 "" +0
    #   EM: 2, 3 (not above 3)          -> best 3 at 0.1 -> 60.0
    #   F1: 2.75, 3.75 (best at 0.6)    -> 75.0
    result = squad_evaluate(gold, preds, na_probs=na)
    assert list(result)[-4:] == ["best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh"]
    assert (result["best_exact"], result["best_exact_thresh"]) == (60.0, 0.1)
    assert result["best_f1"] == pytest.approx(75.0) and result["best_f1_thresh"] == 0.6
    # the starting point (everyone null, threshold 0.0) wins when answering never helps
    bad = {"a1": "wrong", "a2": "wrong", "a3": "wrong", "n1": "z", "n2": "z"}
    result = squad_evaluate(gold, bad, na_probs=na)
    assert (result["best_exact"], result["best_exact_thresh"]) == (40.0, 0.0)


def test_best_threshold_search_with_ties_follows_the_script_order():
    gold = {"t1": [], "t2": ["cat"]}
    preds = {"t1": "dog", "t2": "cat"}
    # Start 1 (t1 is unanswerable). t2 first: +1 -> 2 at 0.4 (a new best), then t1: -1.
    exact, thresh = find_best_thresh(preds, {"t1": 0, "t2": 1}, {"t2": 0.4, "t1": 0.4},
                                     {"t1": False, "t2": True})
    assert (exact, thresh) == (100.0, 0.4)  # unreachable: no threshold splits the tie (50.0)
    for t in (0.3, 0.4):
        assert squad_evaluate(gold, preds, na_probs={"t1": 0.4, "t2": 0.4},
                              na_prob_thresh=t)["exact"] == 50.0
    # t1 first: -1 -> 0, then +1 -> 1, never above the start
    exact, thresh = find_best_thresh(preds, {"t1": 0, "t2": 1}, {"t1": 0.4, "t2": 0.4},
                                     {"t1": False, "t2": True})
    assert (exact, thresh) == (50.0, 0.0)


def test_a_prediction_of_only_articles_counts_as_answered_in_the_search():
    # The raw score of "the" against an unanswerable question is 1 (it normalises to ""),
    # but the search tests the raw string, which is non-empty, so answering it costs a point.
    gold, preds, na = {"n": []}, {"n": "the"}, {"n": 0.5}
    result = squad_evaluate(gold, preds, na_probs=na)
    assert result["exact"] == 100.0
    assert (result["best_exact"], result["best_exact_thresh"]) == (100.0, 0.0)


def test_v2_input_errors():
    with pytest.raises(ValueError, match=r"2 of 5 questions have no prediction, e\.g\. "
                                         r"\['q4', 'q5'\]"):
        squad_evaluate(GOLD, {"q1": "", "q2": "", "q3": ""})
    preds = dict.fromkeys(GOLD, "")
    with pytest.raises(ValueError, match=r"no no-answer probability for 1 question\(s\), "
                                         r"e\.g\. \['q5'\]"):
        squad_evaluate(GOLD, preds, na_probs={"q1": 0, "q2": 0, "q3": 0, "q4": 0})
    with pytest.raises(ValueError, match=r"no-answer probability is NaN for \['q1'\]"):
        squad_evaluate(GOLD, preds, na_probs={**dict.fromkeys(GOLD, 0.0), "q1": float("nan")})
    with pytest.raises(TypeError, match=r"prediction for 'q1' is int, not str"):
        squad_evaluate(GOLD, {**preds, "q1": 3})
    with pytest.raises(ValueError, match=r"no questions in the gold data"):
        squad_evaluate({}, {})
    with pytest.raises(ValueError, match=r"SQuAD version must be one of"):
        squad_evaluate(GOLD, preds, version="2")


# ----------------------------------------------------------------------------- v1.1

def test_v1_scores_and_missing_predictions_count_as_zero():
    gold = {"q1": ["Denver Broncos", "Broncos"], "q2": ["1976"], "q3": ["a cat"]}
    preds = {"q1": "Broncos!", "q2": "1976 and 1977", "extra": "ignored"}
    # q1 EM 1 F1 1; q2 EM 0 F1 2*(1/3)(1)/(4/3) = 0.5; q3 missing: 0 but in the total
    assert squad_evaluate(gold, preds, version="1.1") == {
        "exact_match": pytest.approx(100 / 3), "f1": pytest.approx(100 * 1.5 / 3)}


def test_v1_keeps_gold_answers_that_normalise_to_nothing():
    # v1.1 keeps gold "the": prediction "a" matches it exactly (both normalise to ""), but F1
    # finds no common token. v2.0 drops "the", leaving gold ["x"]: EM 0 and F1 0.
    gold, preds = {"q": ["the", "x"]}, {"q": "a"}
    assert squad_evaluate(gold, preds, version="1.1") == {"exact_match": 100.0, "f1": 0.0}
    result = squad_evaluate(gold, preds)
    assert (result["exact"], result["f1"]) == (0.0, 0.0)


def test_v1_rejects_unanswerable_questions_and_na_probs():
    with pytest.raises(ValueError, match=r"v1.1 scoring: question 'q3' has no gold answer"):
        squad_evaluate(GOLD, dict.fromkeys(GOLD, ""), version="1.1")
    with pytest.raises(ValueError, match=r"v1.1 scoring has no no-answer probabilities"):
        squad_evaluate({"q": ["x"]}, {"q": "x"}, version="1.1", na_probs={"q": 0.0})


# ----------------------------------------------------------------------------- files

def _squad_json(qas_per_paragraph):
    return {"version": "v2.0", "data": [{"title": "t", "paragraphs": [
        {"context": "c", "qas": qas} for qas in qas_per_paragraph]}]}


def test_gold_answers_from_squad_and_file_errors(tmp_path):
    data = _squad_json([[{"id": "a", "answers": [{"text": "x", "answer_start": 0}]}],
                        [{"id": "b", "answers": [], "is_impossible": True}]])
    assert gold_answers_from_squad(data) == {"a": ["x"], "b": []}
    assert gold_answers_from_squad(data["data"]) == {"a": ["x"], "b": []}
    dup = _squad_json([[{"id": "a", "answers": []}, {"id": "a", "answers": []}]])
    with pytest.raises(ValueError, match=r"dev.json: data\[0\].paragraphs\[0\].qas\[1\]: "
                                         r"duplicate question id 'a'"):
        gold_answers_from_squad(dup, source="dev.json")
    with pytest.raises(ValueError, match=r"qas\[0\] \(id 'a'\): 'answers' must be a list"):
        gold_answers_from_squad(_squad_json([[{"id": "a"}]]))
    with pytest.raises(ValueError, match=r"expected a SQuAD JSON object with a 'data' list"):
        gold_answers_from_squad({"version": "1.1"})

    bad = tmp_path / "dev.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"dev.json: not a valid JSON SQuAD data file"):
        load_squad_gold(bad)
    with pytest.raises(FileNotFoundError, match=r"missing.json: predictions file not found"):
        load_json_mapping(tmp_path / "missing.json", str)
    preds = tmp_path / "predictions.json"
    preds.write_text(json.dumps({"a": 1}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"predictions.json: value for question 'a' is 1, "
                                         r"not a str"):
        load_json_mapping(preds, str)


def test_squad_evaluate_files(tmp_path):
    data = _squad_json([[{"id": "a", "answers": [{"text": "x", "answer_start": 0}]},
                         {"id": "b", "answers": []}]])
    (tmp_path / "dev.json").write_text(json.dumps(data), encoding="utf-8")
    (tmp_path / "predictions.json").write_text(json.dumps({"a": "x", "b": "y"}), "utf-8")
    (tmp_path / "null_odds.json").write_text(json.dumps({"a": -2.0, "b": 0.5}), "utf-8")
    files = (tmp_path / "dev.json", tmp_path / "predictions.json", tmp_path / "null_odds.json")
    # b answered "y" although unanswerable: exact 50. Search: start 1 (b null), a at -2.0:
    # +1 -> 2 (best), b at 0.5: -1.
    result = squad_evaluate_files(*files)
    assert (result["exact"], result["best_exact"], result["best_exact_thresh"]) == (
        50.0, 100.0, -2.0)
    # Null odds are not probabilities, yet the default na_prob_thresh=1.0 still applies to
    # them: odds of 1.5 make b a null prediction in "exact" too, as in the official script.
    (tmp_path / "null_odds.json").write_text(json.dumps({"a": -2.0, "b": 1.5}), "utf-8")
    assert squad_evaluate_files(*files)["exact"] == 100.0
    assert squad_evaluate_files(*files, na_prob_thresh=2.0)["exact"] == 50.0


@pytest.mark.skipif(not SHARED_DEV.is_file(), reason="../shared/data/squad not present")
def test_all_null_baseline_on_the_shared_dev_set():
    gold = load_squad_gold(SHARED_DEV)
    result = squad_evaluate(gold, dict.fromkeys(gold, ""))
    no_ans = sum(1 for answers in gold.values() if not answers)
    assert (result["total"], result["NoAns_total"]) == (1600, 414) and no_ans == 414
    assert result["exact"] == result["f1"] == pytest.approx(100 * 414 / 1600)
    assert (result["HasAns_exact"], result["NoAns_exact"]) == (0.0, 100.0)


# ----------------------------------------------------------------------------- HF reference

WORDS = ["the", "a", "An", "cat", "Cat.", "dog", "caf\u00e9", "U.S.", "war\u2014the", "1976",
         "x", "(the)", "don't", "  "]


def _random_text(rng: random.Random, max_words: int = 4) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, max_words)))


def test_scores_equal_hf_squad_metrics_when_importable():
    sm = pytest.importorskip("transformers.data.metrics.squad_metrics")  # transformers < 5
    rng = random.Random(0)
    for trial in range(40):
        n = rng.randint(1, 30)
        gold = {f"q{i}": [_random_text(rng) for _ in range(rng.choice([0, 0, 1, 2, 3]))]
                for i in range(n)}
        preds = {qid: _random_text(rng) if rng.random() < 0.7 else "" for qid in gold}
        # few distinct values, so the threshold search meets ties; dict order is shuffled
        qids = list(gold)
        rng.shuffle(qids)
        na = {qid: rng.choice([-3.0, -1.0, 0.0, 0.5, 2.0]) for qid in qids}
        thresh = rng.choice([1.0, 0.0, -1.0])
        examples = [SimpleNamespace(qas_id=qid, answers=[{"text": t} for t in answers])
                    for qid, answers in gold.items()]
        for s in [t for answers in gold.values() for t in answers] + list(preds.values()):
            assert normalize_answer(s) == sm.normalize_answer(s)
            for g in gold.get("q0", []) + [""]:
                assert compute_f1(g, s) == pytest.approx(sm.compute_f1(g, s), abs=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = sm.squad_evaluate(examples, preds, no_answer_probs=na,
                                         no_answer_probability_threshold=thresh)
        ours = squad_evaluate(gold, preds, na_probs=na, na_prob_thresh=thresh)
        assert ours == dict(expected), f"trial {trial}"
        # Without probabilities HF still adds best_* (threshold 0.0); the script does not.
        expected = dict(sm.squad_evaluate(examples, preds))
        ours = squad_evaluate(gold, preds)
        assert ours == {k: v for k, v in expected.items() if not k.startswith("best_")}
