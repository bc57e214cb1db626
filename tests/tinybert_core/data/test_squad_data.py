"""SQuAD files read and checked, and questions cut into windows whose labels and offsets point
back at the answer text."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from paths import BERT_VOCAB, SHARED_DATA
from tinybert_core import BertTokenizer
from tinybert_core.data.squad import (
    answer_token_span,
    doc_windows,
    featurize_squad,
    gold_answers,
    read_squad,
)

SQUAD = SHARED_DATA / "squad"
needs_shared = pytest.mark.skipif(not SQUAD.is_dir(), reason="needs ../shared/data")


def squad_file(tmp_path: Path, qas: list[dict], context: str = "The cat sat on the mat.",
               name: str = "s.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"version": "v2.0", "data": [
        {"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]}))
    return path


def qa(qid: str, answer: str | None = None, start: int | None = None, **kw) -> dict:
    answers = [] if answer is None else [{"text": answer, "answer_start": start}]
    return {"id": qid, "question": "Where did the cat sit?", "answers": answers,
            "is_impossible": answer is None, **kw}


@pytest.fixture(scope="module")
def tok():
    if not BERT_VOCAB.is_file():
        pytest.skip("needs ../shared/data")
    return BertTokenizer(BERT_VOCAB)


def test_reads_and_checks(tmp_path):
    ex = read_squad(squad_file(tmp_path, [qa("a", "the mat", 15), qa("b")]), "2.0")
    assert [(e.qid, e.answers, e.is_impossible) for e in ex] == [
        ("a", (("the mat", 15),), False), ("b", (), True)]
    assert gold_answers(ex) == {"a": ["the mat"], "b": []}


@pytest.mark.parametrize("qas, version, message", [
    ([qa("a", "the mat", 14)], "2.0", r"question 'a': answer 'the mat' does not match the "
                                      r"context at answer_start 14 \(the context there reads "
                                      r"' the ma'\)"),
    ([qa("a", "the mat", 99)], "2.0", r"answer_start 99 \(the context there reads None\)"),
    ([qa("a")], "1.1", r"question 'a' is unanswerable .* use the SQuAD v2.0 task"),
    ([qa("a", "mat", 19), qa("a", "mat", 19)], "2.0", r"question id 'a' appears twice"),
    ([{**qa("a"), "is_impossible": False}], "2.0", r"'a' has no answer and is not marked"),
    ([{**qa("a", "mat", 19), "is_impossible": True}], "2.0", r"marked is_impossible but has"),
    ([{"id": "a", "answers": []}], "2.0", r"question 'a': missing or invalid 'question'"),
    ([], "2.0", r"no questions"),
])
def test_bad_files_name_the_question(tmp_path, qas, version, message):
    with pytest.raises(ValueError, match=message):
        read_squad(squad_file(tmp_path, qas), version)


def test_not_squad(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"x.json: not a SQuAD file"):
        read_squad(path, "2.0")
    path.write_text("{")
    with pytest.raises(ValueError, match=r"x.json: not valid JSON"):
        read_squad(path, "2.0")


def test_unlabelled_files_read_for_prediction(tmp_path):
    path = squad_file(tmp_path, [{"id": "q", "question": "Who?"}])
    assert read_squad(path, "1.1", labelled=False)[0].answers == ()
    with pytest.raises(ValueError, match="missing or invalid 'answers'"):
        read_squad(path, "1.1")


def test_windows_use_googles_stride():
    assert doc_windows(10, 4, 3) == [(0, 4), (3, 4), (6, 4)]
    assert doc_windows(10, 4, 8) == [(0, 4), (4, 4), (8, 2)]    # step min(length, stride)
    assert doc_windows(3, 4, 2) == [(0, 3)]
    for n, m, s in [(100, 20, 7), (57, 30, 30), (31, 5, 1)]:
        spans = doc_windows(n, m, s)
        assert spans[0][0] == 0 and sum(spans[-1]) == n
        assert all(b[0] - a[0] == min(a[1], s) for a, b in zip(spans, spans[1:]))


def test_answer_token_span():
    offsets = [(0, 3), (4, 7), (8, 11), (11, 12)]      # "The cat sat."
    assert answer_token_span(offsets, 4, 7) == (1, 1)
    assert answer_token_span(offsets, 5, 10) == (1, 2)  # partial words take the whole token
    assert answer_token_span(offsets, 3, 4) is None     # only the space


def test_windows_label_answers_and_cls(tmp_path, tok):
    context = " ".join(f"word{i}" for i in range(40)) + " the answer is here ."
    start = context.index("answer")
    ex = read_squad(squad_file(tmp_path, [qa("a", "answer is here", start), qa("b")],
                               context=context), "2.0")
    f = featurize_squad(ex, tok, max_seq_length=32, doc_stride=8, max_query_length=4)
    assert len(f.input_ids[0]) == 32 and max(len(r) for r in f.input_ids) == 32
    for ids, types, feat, s, e in zip(f.input_ids, f.token_type_ids, f.features,
                                      f.start_positions, f.end_positions):
        assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
        q = tok("Where did the cat sit?", add_special_tokens=False)["input_ids"][:4]
        assert ids[1:5].tolist() == q and ids[5] == tok.sep_token_id
        assert types.tolist() == [0] * 6 + [1] * (len(ids) - 6)
        assert [o is None for o in feat.offset_mapping[:6]] == [True] * 6
        if feat.example_id == "b" or s == 0:
            assert s == e == 0
        else:
            o = feat.offset_mapping
            assert context[o[s][0]:o[e][1]] == "answer is here"
    answered = [s for s, feat in zip(f.start_positions, f.features) if feat.example_id == "a"]
    assert 0 < sum(1 for s in answered if s) < len(answered)   # some windows miss it -> [CLS]
    # each context token is the max-context token of exactly one window
    counts: dict[int, int] = {}
    for feat in f.features:
        if feat.example_id == "a":
            for o, flag in zip(feat.offset_mapping, feat.token_is_max_context):
                if o is not None and flag:
                    counts[o[0]] = counts.get(o[0], 0) + 1
    assert set(counts.values()) == {1}


def test_too_long_question_is_an_error(tmp_path, tok):
    ex = read_squad(squad_file(tmp_path, [qa("a", "mat", 19)]), "2.0")
    with pytest.raises(ValueError, match="leaves no room for the context"):
        featurize_squad(ex, tok, max_seq_length=8, doc_stride=2, max_query_length=64)


@needs_shared
def test_shared_squad_v2_reads_and_every_answer_lands_on_its_text(tok):
    dev = read_squad(SQUAD / "dev-v2.0.json", "2.0")
    assert len(dev) == 1600 and sum(e.is_impossible for e in dev) == 414
    train = read_squad(SQUAD / "train-v2.0.json", "2.0")[:600]
    f = featurize_squad(train, tok, 192, 64, 64)
    by_id = {e.qid: e for e in train}
    exact = labelled = 0
    for feat, s, e in zip(f.features, f.start_positions, f.end_positions):
        if s:
            labelled += 1
            o, ex = feat.offset_mapping, by_id[feat.example_id]
            exact += ex.context[o[s][0]:o[e][1]] == ex.answers[0][0]
    assert labelled > 300 and exact == labelled
    with pytest.raises(ValueError, match="unanswerable"):
        read_squad(SQUAD / "dev-v2.0.json", "1.1")


@needs_shared
def test_offsets_equal_the_reference_fast_tokenizer(tmp_path, tok):
    """Our character offsets against the Rust tokenizer's (BertTokenizerFast) on real SQuAD
    contexts; skipped where transformers is not installed."""
    transformers = pytest.importorskip("transformers")
    (tmp_path / "vocab.txt").write_bytes(BERT_VOCAB.read_bytes())
    ref = transformers.BertTokenizerFast.from_pretrained(str(tmp_path))   # a dir: see README
    contexts = sorted({e.context for e in read_squad(SQUAD / "dev-v2.0.json", "2.0")})[:120]
    for context in contexts:
        ours = tok(context, add_special_tokens=False, return_offsets_mapping=True)
        theirs = ref(context, add_special_tokens=False, return_offsets_mapping=True)
        assert ours["input_ids"] == theirs["input_ids"]
        assert [tuple(o) for o in ours["offset_mapping"]] == \
            [tuple(o) for o in theirs["offset_mapping"]]
    assert np.mean([len(c) for c in contexts]) > 200
