"""SQuAD post-processing: hand-built logits where one rule decides the answer (the span, the
null answer, the minimum null over windows, max context, max_answer_length, n-best), the files,
and HF's `compute_predictions_logits` (Google's algorithm; transformers < 5) on random logits."""
from __future__ import annotations

import json
import math
import random
from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np
import pytest

from autograd import files as serialization  # the atomic writer lives in autograd/files.py
from tinybert_core.evaluation.squad_postprocess import (
    SquadFeature,
    SquadPredictions,
    max_context_flags,
    postprocess_qa_predictions,
    predictions_with_threshold,
    write_predictions,
)

QUESTION = 3  # tokens before the context in every window: [CLS] q q [SEP]


def word_offsets(context: str) -> list[tuple[int, int]]:
    """(start, end) of each whitespace-separated word of `context`."""
    offsets, pos = [], 0
    for word in context.split():
        start = context.index(word, pos)
        offsets.append((start, start + len(word)))
        pos = start + len(word)
    return offsets


def window(qid: str, context: str, start: int = 0, length: int | None = None,
           is_max: list[bool] | None = None, pad: int = 0) -> SquadFeature:
    """[CLS] q q [SEP] <words start..start+length of context> [SEP] [PAD]*pad."""
    words = word_offsets(context)
    words = words[start:] if length is None else words[start:start + length]
    flags = [True] * len(words) if is_max is None else is_max
    offsets = [None] * (QUESTION + 1) + words + [None] * (1 + pad)
    return SquadFeature(qid, offsets, [False] * (QUESTION + 1) + flags + [False] * (1 + pad))


def logits(feature: SquadFeature, start: dict[int, float], end: dict[int, float],
           null: float = -5.0) -> tuple[np.ndarray, np.ndarray]:
    """Logits of one window: 0 everywhere, `null` at [CLS], and the given values at context
    positions (0 = the first context token)."""
    s, e = np.zeros(len(feature.offset_mapping)), np.zeros(len(feature.offset_mapping))
    s[0] = e[0] = null / 2
    for pos, v in start.items():
        s[QUESTION + 1 + pos] = v
    for pos, v in end.items():
        e[QUESTION + 1 + pos] = v
    return s, e


def run(contexts, feats, pairs, **kw):
    """Post-process windows of different lengths, padded with logits of -50."""
    width = max(len(s) for s, _ in pairs)
    start, end = np.full((len(pairs), width), -50.0), np.full((len(pairs), width), -50.0)
    for r, (s, e) in enumerate(pairs):
        start[r, :len(s)], end[r, :len(e)] = s, e
    return postprocess_qa_predictions(contexts, feats, start, end, **kw)


CTX = "Super Bowl 50 was played at Santa Clara in 1976 by the Denver Broncos"
#      0     1    2  3   4      5  6     7     8  9    10 11  12     13


# ----------------------------------------------------------------------------- the answer

def test_the_best_span_is_cut_from_the_context_by_character_offsets():
    context = "Played at Levi's Stadium, in 2016."
    # sub-word tokens with exact offsets: levi ' s stadium , in 2016 .
    tokens = [(10, 14), (14, 15), (15, 16), (17, 24), (24, 25), (26, 28), (29, 33), (33, 34)]
    offsets = [None] * 4 + [(0, 6), (7, 9)] + tokens + [None]
    feature = SquadFeature("q", offsets, [o is not None for o in offsets])
    s, e = np.zeros(len(offsets)), np.zeros(len(offsets))
    s[6], e[9] = 4.0, 4.0  # levi .. stadium: the comma after it is not part of the answer
    result = postprocess_qa_predictions({"q": context}, [feature], s[None], e[None])
    assert result.predictions == {"q": "Levi's Stadium"}
    assert result.null_odds is None
    best = result.nbest["q"][0]
    assert (best["text"], best["start_logit"], best["end_logit"]) == ("Levi's Stadium", 4.0, 4.0)


def test_end_before_start_and_tokens_outside_the_context_are_skipped():
    f = window("q", CTX)
    s, e = logits(f, {9: 6.0, 13: 2.0}, {8: 6.0, 13: 1.0})
    s[1] = e[2] = 9.0  # the question tokens have the highest logits
    # (9, 8) has end < start; the question positions are not context: best valid is (9, 13)
    assert run({"q": CTX}, [f], [(s, e)]).predictions["q"] == "1976 by the Denver Broncos"


def test_max_answer_length_counts_tokens():
    f = window("q", CTX)
    s, e = logits(f, {6: 5.0}, {13: 5.0, 7: 3.0})  # "Santa ... Broncos" is 8 tokens
    assert run({"q": CTX}, [f], [(s, e)]).predictions["q"] == (
        "Santa Clara in 1976 by the Denver Broncos")
    assert run({"q": CTX}, [f], [(s, e)], max_answer_length=7).predictions["q"] == "Santa Clara"
    assert run({"q": CTX}, [f], [(s, e)], max_answer_length=2).predictions["q"] == "Santa Clara"


def test_only_the_top_n_best_start_and_end_positions_are_tried():
    f = window("q", CTX)
    # start logits rank: 13 (end has nothing after it), 12, then 6; ends: 7 best
    s, e = logits(f, {13: 9.0, 12: 8.0, 6: 3.0}, {7: 9.0, 11: 1.0})
    s[0] = e[0] = -9.0
    assert run({"q": CTX}, [f], [(s, e)], n_best_size=3).predictions["q"] == "Santa Clara"
    # with 2, start 6 is not among the top starts, and every pair with 13 or 12 and the top
    # two ends (7, 11) has end < start: no valid span at all
    result = run({"q": CTX}, [f], [(s, e)], n_best_size=2)
    assert result.predictions["q"] == "" and result.nbest["q"] == []


# ----------------------------------------------------------------------------- no answer

def test_null_answer_and_its_threshold():
    f = window("q", CTX)
    s, e = logits(f, {9: 2.0}, {9: 1.0}, null=5.0)  # null 5 vs best span 3: diff 2
    v2 = run({"q": CTX}, [f], [(s, e)], version_2_with_negative=True)
    assert v2.predictions == {"q": ""} and v2.null_odds == {"q": 2.0}
    assert v2.nbest["q"][0] == {"text": "", "probability": pytest.approx(
        v2.nbest["q"][0]["probability"]), "start_logit": 2.5, "end_logit": 2.5}
    kept = run({"q": CTX}, [f], [(s, e)], version_2_with_negative=True,
               null_score_diff_threshold=2.0)  # strictly greater than the threshold
    assert kept.predictions == {"q": "1976"} and kept.null_odds == {"q": 2.0}
    assert predictions_with_threshold(v2, 2.0) == {"q": "1976"}
    assert predictions_with_threshold(v2, 1.9) == {"q": ""}
    v1 = run({"q": CTX}, [f], [(s, e)])  # SQuAD v1.1 has no null answer
    assert v1.predictions == {"q": "1976"} and "" not in [x["text"] for x in v1.nbest["q"]]
    with pytest.raises(ValueError, match=r"SQuAD v1.1 predictions"):
        predictions_with_threshold(v1, 0.0)


def test_the_null_score_is_the_minimum_over_windows():
    # window A (words 0-9): null 10, best span "1976" scores 5; window B (words 6-13): null 2
    a = window("q", CTX, 0, 10)
    b = window("q", CTX, 6, 8)
    sa, ea = logits(a, {9: 2.5}, {9: 2.5}, null=10.0)
    sb, eb = logits(b, {}, {}, null=2.0)
    result = run({"q": CTX}, [a, b], [(sa, ea), (sb, eb)], version_2_with_negative=True)
    # min(10, 2) - 5 = -3 <= 0: answered; the maximum (10) would have said "no answer"
    assert result.predictions == {"q": "1976"} and result.null_odds == {"q": -3.0}
    null_entry = [x for x in result.nbest["q"] if x["text"] == ""]
    assert null_entry == [{"text": "", "probability": pytest.approx(null_entry[0]["probability"]),
                           "start_logit": 1.0, "end_logit": 1.0}]


def test_the_start_token_must_have_its_max_context_in_the_window():
    # Both windows hold words 4-7. Window A scores "Santa" (word 6) highest, but word 6 has
    # its max context in window B, where a lower-scored "played" (word 4) span wins.
    a = window("q", CTX, 0, 8, is_max=[True] * 6 + [False] * 2)
    b = window("q", CTX, 4, 8, is_max=[False] * 2 + [True] * 6)
    sa, ea = logits(a, {6: 5.0, 4: 3.0}, {6: 4.0, 4: 4.0})
    sb, eb = logits(b, {0: 1.0}, {0: 1.0})
    result = run({"q": CTX}, [a, b], [(sa, ea), (sb, eb)])
    assert result.predictions == {"q": "played"}
    # the end token needs no max context: a span from word 4 (max in A) to 6 is valid in A
    sa, ea = logits(a, {4: 5.0}, {6: 5.0})
    assert run({"q": CTX}, [a, b], [(sa, ea), (sb, eb)]).predictions == {"q": "played at Santa"}


def test_a_question_without_any_valid_span():
    f = window("q", CTX)
    s, e = logits(f, {}, {}, null=-1.0)
    s[:] = -1.0
    s[1] = 5.0  # the only start candidate is a question token
    result = run({"q": CTX}, [f], [(s, e)], version_2_with_negative=True, n_best_size=1)
    assert result.predictions == {"q": ""} and result.null_odds == {"q": math.inf}
    assert [x["text"] for x in result.nbest["q"]] == [""]
    assert result.nbest["q"][0]["probability"] == 1.0


# ----------------------------------------------------------------------------- n-best

def test_nbest_is_deduplicated_sorted_and_softmaxed():
    a = window("q", CTX, 0, 10)
    b = window("q", CTX, 6, 8)
    sa, ea = logits(a, {9: 2.0, 8: 1.0}, {9: 2.0}, null=-4.0)  # "1976" 4, "in 1976" 3
    sb, eb = logits(b, {3: 1.5}, {3: 1.5, 4: 1.5})  # "1976" again 3, "1976 by" 3; null -5
    result = run({"q": CTX}, [a, b], [(sa, ea), (sb, eb)], version_2_with_negative=True,
                 n_best_size=3)
    nbest = result.nbest["q"]
    # window B's "1976" is a duplicate; among the ties at 3.0 window A's span comes first
    assert [x["text"] for x in nbest] == ["1976", "in 1976", "1976 by", ""]  # null appended
    assert (nbest[-1]["start_logit"], nbest[-1]["end_logit"]) == (-2.5, -2.5)  # min: B's
    scores = np.array([x["start_logit"] + x["end_logit"] for x in nbest])
    np.testing.assert_array_equal(scores, [4.0, 3.0, 3.0, -5.0])
    np.testing.assert_allclose([x["probability"] for x in nbest],
                               np.exp(scores) / np.exp(scores).sum(), rtol=1e-14)
    # a null that makes the top n is not appended a second time
    sa, ea = logits(a, {9: 2.0, 8: 1.0}, {9: 2.0}, null=9.0)
    sb, eb = logits(b, {3: 1.5}, {3: 1.5, 4: 1.5}, null=7.0)
    result = run({"q": CTX}, [a, b], [(sa, ea), (sb, eb)], version_2_with_negative=True,
                 n_best_size=3)
    assert [x["text"] for x in result.nbest["q"]] == ["", "1976", "in 1976"]
    assert result.predictions == {"q": ""} and result.null_odds == {"q": 3.0}


def test_several_examples_keep_the_order_of_the_contexts():
    contexts = {"b": "red green blue", "a": "one two three"}
    fa, fb = window("a", contexts["a"]), window("b", contexts["b"])
    sa, ea = logits(fa, {1: 3.0}, {1: 3.0})
    sb, eb = logits(fb, {2: 3.0}, {2: 3.0})
    result = run(contexts, [fa, fb], [(sa, ea), (sb, eb)], version_2_with_negative=True)
    assert list(result.predictions.items()) == [("b", "blue"), ("a", "two")]
    assert list(result.nbest) == list(result.null_odds) == ["b", "a"]


# ----------------------------------------------------------------------------- max context

def test_max_context_flags_by_hand():
    # 10 tokens, windows (0, 6) and (4, 6). Position 4: window 0 has min(4, 1) + 0.06, window
    # 1 min(0, 5) + 0.06 -> window 0. Position 5: min(5, 0) vs min(1, 4) -> window 1.
    flags = max_context_flags([(0, 6), (4, 6)])
    assert flags == [[True] * 5 + [False], [False] + [True] * 5]
    # equal scores: the first window wins (position 2 in (0, 5) and (0, 5))
    assert max_context_flags([(0, 5), (0, 5)]) == [[True] * 5, [False] * 5]
    # the longer window wins a tie in min(left, right) by its 0.01 * length
    assert max_context_flags([(0, 3), (0, 5)])[1][1] is True
    with pytest.raises(ValueError, match=r"window 1 is \(start=2, length=0\)"):
        max_context_flags([(0, 3), (2, 0)])


# ----------------------------------------------------------------------------- bad input

def test_input_errors():
    f = window("q", CTX)
    s, e = logits(f, {9: 2.0}, {9: 2.0})
    with pytest.raises(ValueError, match=r"example 'other' has no features"):
        run({"q": CTX, "other": "x"}, [f], [(s, e)])
    with pytest.raises(ValueError, match=r"feature 0 belongs to example 'q', which is not"):
        run({"x": CTX}, [f], [(s, e)])
    with pytest.raises(ValueError, match=r"must both be \(F, T\) with F = 1 features, got "
                                         r"\(2, 19\)"):
        postprocess_qa_predictions({"q": CTX}, [f], np.stack([s, s]), np.stack([e, e]))
    with pytest.raises(ValueError, match=r"feature 0 \('q'\) has 19 tokens .* logits have 5"):
        postprocess_qa_predictions({"q": CTX}, [f], s[None, :5], e[None, :5])
    bad = s.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match=r"hold NaN or infinite values"):
        run({"q": CTX}, [f], [(bad, e)])
    with pytest.raises(ValueError, match=r"feature 0 \('q'\): offset_mapping reaches character "
                                         r"69, past the end of its context \(60 characters\)"):
        run({"q": CTX[:60]}, [f], [(s, e)])
    with pytest.raises(ValueError, match=r"n_best_size \(0\) and max_answer_length"):
        run({"q": CTX}, [f], [(s, e)], n_best_size=0)
    with pytest.raises(ValueError, match=r"token_is_max_context has 1 entries, "
                                         r"offset_mapping 2"):
        SquadFeature("q", [None, (0, 1)], [False])
    with pytest.raises(ValueError, match=r"offset_mapping\[1\] = \(3, 1\) is not"):
        SquadFeature("q", [None, (3, 1)], [False, True])
    with pytest.raises(ValueError, match=r"cls_index 1 must be a non-context position"):
        SquadFeature("q", [None, (0, 1)], [False, True], cls_index=1)


# ----------------------------------------------------------------------------- files

def _result(v2: bool = True) -> SquadPredictions:
    f = window("q", CTX)
    s, e = logits(f, {9: 2.0}, {9: 2.0})
    return run({"q": CTX}, [f], [(s, e)], version_2_with_negative=v2)


def test_write_predictions_writes_the_three_files(tmp_path):
    result = _result()
    paths = write_predictions(tmp_path / "out", result)
    assert [p.name for p in paths] == ["predictions.json", "nbest_predictions.json",
                                       "null_odds.json"]
    assert json.loads((tmp_path / "out" / "predictions.json").read_text()) == result.predictions
    assert json.loads((tmp_path / "out" / "nbest_predictions.json").read_text()) == result.nbest
    assert json.loads((tmp_path / "out" / "null_odds.json").read_text()) == result.null_odds
    v1_paths = write_predictions(tmp_path / "v1", _result(v2=False))
    assert [p.name for p in v1_paths] == ["predictions.json", "nbest_predictions.json"]


def test_write_predictions_never_mixes_two_runs(tmp_path):
    write_predictions(tmp_path, _result())
    before = (tmp_path / "predictions.json").read_text()
    with pytest.raises(FileExistsError, match=r"predictions.json already exists"):
        write_predictions(tmp_path, _result(v2=False))
    assert (tmp_path / "predictions.json").read_text() == before
    # overwriting with v1.1 results removes the old run's null_odds.json
    write_predictions(tmp_path, _result(v2=False), overwrite=True)
    assert not (tmp_path / "null_odds.json").exists()
    with pytest.raises(NotADirectoryError, match=r"exists and is not a directory"):
        write_predictions(tmp_path / "predictions.json", _result())


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    write_predictions(tmp_path, _result())
    before = (tmp_path / "predictions.json").read_text()
    real_open = serialization.atomic_open

    @contextmanager
    def disk_full(path, mode):
        with real_open(path, mode) as f:
            class Half:
                def write(self, text):
                    f.write(text[: len(text) // 2])
                    raise OSError("No space left on device")
            yield Half()

    monkeypatch.setattr(serialization, "atomic_open", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_predictions(tmp_path, _result(), overwrite=True)
    assert (tmp_path / "predictions.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nbest_predictions.json",
                                                          "null_odds.json", "predictions.json"]


# ----------------------------------------------------------------------------- HF reference

def test_equals_hf_compute_predictions_logits_when_importable(tmp_path):
    sm = pytest.importorskip("transformers.data.metrics.squad_metrics")  # transformers < 5
    rng = random.Random(1)
    vocab = [f"w{i}" for i in range(12)]  # few words: repeated answer texts test the dedup
    tokenizer = SimpleNamespace(convert_tokens_to_string=lambda tokens: " ".join(tokens))
    compared = placeholders = 0
    for trial in range(80):
        contexts, hf_examples, ours, hf_features, hf_results, rows = {}, [], [], [], [], []
        for x in range(rng.randint(1, 3)):
            qid = f"t{trial}q{x}"
            words = [rng.choice(vocab) for _ in range(rng.randint(1, 25))]
            contexts[qid] = " ".join(words)
            hf_examples.append(SimpleNamespace(qas_id=qid, doc_tokens=words))
            length = rng.randint(1, 10)
            spans, start = [], 0
            while True:
                spans.append((start, min(length, len(words) - start)))
                if start + length >= len(words):
                    break
                start += rng.randint(1, length)
            flags = max_context_flags(spans)
            offsets_all = word_offsets(contexts[qid])
            for (start, n), is_max in zip(spans, flags):
                pad = rng.randint(0, 3)
                head = QUESTION + 1
                offsets = [None] * head + offsets_all[start:start + n] + [None] * (1 + pad)
                max_ctx = [False] * head + is_max + [False] * (1 + pad)
                ours.append(SquadFeature(qid, offsets[:head + n], max_ctx[:head + n]))
                uid = len(hf_features)
                hf_features.append(SimpleNamespace(
                    example_index=x, unique_id=uid,
                    tokens=["[CLS]", "q", "q", "[SEP]"] + words[start:start + n] + ["[SEP]"],
                    token_to_orig_map={head + i: start + i for i in range(n)},
                    token_is_max_context={head + i: f for i, f in enumerate(is_max)}))
                s = [rng.gauss(0, 2) for _ in offsets]
                e = [rng.gauss(0, 2) for _ in offsets]
                hf_results.append(SimpleNamespace(unique_id=uid, start_logits=s, end_logits=e))
                rows.append((s, e))
        width = max(len(s) for s, _ in rows)
        start_logits = np.full((len(rows), width), -50.0)
        end_logits = np.full((len(rows), width), -50.0)
        for r, (s, e) in enumerate(rows):
            start_logits[r, :len(s)], end_logits[r, :len(e)] = s, e
            hf_results[r].start_logits = start_logits[r].tolist()
            hf_results[r].end_logits = end_logits[r].tolist()
        kw = dict(n_best_size=rng.choice([2, 3, 5, 20]), max_answer_length=rng.choice([1, 3, 30]),
                  version_2_with_negative=rng.random() < 0.7,
                  null_score_diff_threshold=rng.choice([0.0, -1.0, 1.5]))
        expected = sm.compute_predictions_logits(
            hf_examples, hf_features, hf_results, kw["n_best_size"], kw["max_answer_length"],
            False, str(tmp_path / "p.json"), str(tmp_path / "n.json"), str(tmp_path / "o.json"),
            False, kw["version_2_with_negative"], kw["null_score_diff_threshold"], tokenizer)
        hf_nbest = json.loads((tmp_path / "n.json").read_text())
        hf_odds = json.loads((tmp_path / "o.json").read_text()) if (
            kw["version_2_with_negative"]) else None
        result = postprocess_qa_predictions(contexts, ours, start_logits, end_logits, **kw)
        assert list(result.predictions) == list(expected) == list(result.nbest) == list(hf_nbest)
        for qid, entries in hf_nbest.items():
            if any(x["text"] == "empty" for x in entries):
                # HF's placeholder when no window has a valid span: we answer "" instead
                assert result.predictions[qid] == ""
                assert [x["text"] for x in result.nbest[qid] if x["text"]] == []
                placeholders += 1
                continue
            assert result.predictions[qid] == expected[qid], f"trial {trial} {qid}"
            assert [x["text"] for x in result.nbest[qid]] == [x["text"] for x in entries]
            for key in ("probability", "start_logit", "end_logit"):
                np.testing.assert_allclose([x[key] for x in result.nbest[qid]],
                                           [x[key] for x in entries], rtol=1e-12, atol=1e-12)
            if hf_odds is not None:
                np.testing.assert_allclose(result.null_odds[qid], hf_odds[qid], rtol=1e-12,
                                           atol=1e-12)
            compared += 1
    assert compared >= 100 and placeholders >= 1
