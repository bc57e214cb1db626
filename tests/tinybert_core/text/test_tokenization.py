"""Tests for tinybert_core/text: tokenization (BertTokenizer) and wordpiece_trainer.

The reference is tests/fixtures/tokenizer_reference.json, written by
scripts/make_tokenizer_fixture.py from transformers' slow BertTokenizer (ids) and
BertTokenizerFast (offsets) with the real bert-base-uncased vocabulary.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paths import FIXTURES, SHARED_DATA
from tinybert_core.text.basic_tokenizer import BasicTokenizer
from tinybert_core.text.tokenization import BertTokenizer
from tinybert_core.text.wordpiece_trainer import save_vocab, train_wordpiece_vocab

DATA = SHARED_DATA
VOCAB = DATA / "vocab" / "bert-base-uncased-vocab.txt"
FIXTURE = FIXTURES / "tokenizer_reference.json"
CASES = json.loads(FIXTURE.read_text(encoding="utf-8"))["cases"]


def _case_id(case: dict) -> str:
    return repr(case["text"][:24]) + ("+pair" if "text_pair" in case else "")


@pytest.fixture(scope="module")
def tok() -> BertTokenizer:
    if not VOCAB.is_file():
        pytest.skip(f"vocabulary not found: {VOCAB}")
    return BertTokenizer(VOCAB)


@pytest.fixture(scope="module")
def cased_tok() -> BertTokenizer:
    if not VOCAB.is_file():
        pytest.skip(f"vocabulary not found: {VOCAB}")
    return BertTokenizer(VOCAB, do_lower_case=False)


def _encode_case(case: dict, tok: BertTokenizer, cased_tok: BertTokenizer) -> dict:
    lower = case.get("options", {}).get("do_lower_case", True)
    return (tok if lower else cased_tok)(
        case["text"], case.get("text_pair"), truncation=case.get("truncation", False),
        max_length=case.get("max_length"), return_offsets_mapping=True)


# ----- parity with Hugging Face -----

@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_ids_match_reference(case, tok, cased_tok):
    enc = _encode_case(case, tok, cased_tok)
    assert enc["input_ids"] == case["input_ids"]
    assert enc["token_type_ids"] == case["token_type_ids"]
    assert enc["attention_mask"] == [1] * len(case["input_ids"])


@pytest.mark.parametrize("case", [c for c in CASES if "offsets" in c and "text_pair" not in c],
                         ids=_case_id)
def test_offsets_match_fast_tokenizer(case, tok, cased_tok):
    enc = _encode_case(case, tok, cased_tok)
    assert [list(o) for o in enc["offset_mapping"]] == case["offsets"]


def test_fixture_covers_the_hard_cases():
    # Where HF's slow and fast tokenizers differ (Greek final sigma, specials revealed by
    # cleaning, longest_first pairs) the ids follow the slow one and offsets are not recorded.
    assert len(CASES) >= 60
    assert sum("truncation" in c for c in CASES) >= 5
    assert sum("offsets" in c for c in CASES) >= 60


def test_offsets_point_at_the_token_text(tok):
    # What SQuAD answer extraction relies on: normalizing text[start:end] gives the token back
    # (or, where NFD splits one character into several pieces, text that contains it).
    basic = BasicTokenizer()
    for case in CASES:
        if "text_pair" in case or "options" in case:
            continue
        enc = tok(case["text"], return_offsets_mapping=True)
        tokens = tok.convert_ids_to_tokens(enc["input_ids"])
        for token, (start, end) in zip(tokens, enc["offset_mapping"]):
            if token in tok.all_special_tokens:
                continue
            span = "".join(basic.tokenize(case["text"][start:end]))
            piece = token.removeprefix("##")
            assert span == piece or (end - start == 1 and piece in span)


def test_tokenize_matches_ids(tok):
    for case in CASES[:30]:
        if "text_pair" not in case:
            assert tok.convert_tokens_to_ids(tok.tokenize(case["text"])) == case["input_ids"][1:-1]


def test_known_tokens(tok):
    assert tok.tokenize("Café naïve résumé Ångström") == ["cafe", "naive", "resume", "ang",
                                                          "##strom"]
    assert tok.tokenize("hello[MASK]world") == ["hello", "[MASK]", "world"]
    assert tok.tokenize("x" * 101) == ["[UNK]"]
    assert tok.tokenize("\x00\u200b\ufffd") == []


def test_special_token_ids(tok):
    assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id,
            tok.mask_token_id) == (0, 100, 101, 102, 103)
    assert tok.vocab_size == len(tok) == 30522
    assert sorted(tok.all_special_ids) == [0, 100, 101, 102, 103]
    assert tok.convert_tokens_to_ids("notawordzz") == tok.unk_token_id


# ----- model inputs: pairs, padding, truncation, tensors -----

def test_pair_layout(tok):
    enc = tok("a b", "c d e")
    assert enc["input_ids"][0] == tok.cls_token_id
    assert enc["token_type_ids"] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert [i for i, t in enumerate(enc["input_ids"]) if t == tok.sep_token_id] == [3, 7]


def test_batch_padding_shapes(tok):
    texts = ["short", "a somewhat longer sentence here", "mid length one"]
    enc = tok(texts, padding=True)
    lengths = {len(r) for key in ("input_ids", "token_type_ids", "attention_mask")
               for r in enc[key]}
    assert lengths == {len(tok(texts[1])["input_ids"])}
    assert [sum(m) for m in enc["attention_mask"]] == [len(tok(t)["input_ids"]) for t in texts]
    assert enc["input_ids"][0][-1] == tok.pad_token_id

    arr = tok(texts, padding="max_length", max_length=16, return_tensors="np",
              return_offsets_mapping=True)
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert arr[key].shape == (3, 16) and arr[key].dtype == np.int64
    assert arr["offset_mapping"].shape == (3, 16, 2)
    single = tok("one text", return_tensors="np")
    assert single["input_ids"].shape == (1, 4)
    assert isinstance(tok("one text")["input_ids"][0], int)  # a single text gives flat lists


def test_truncation(tok):
    long_text = " ".join(["word"] * 50)
    assert len(tok(long_text, truncation=True, max_length=10)["input_ids"]) == 10
    assert len(tok.encode(long_text, max_length=10)) == 10  # a bare max_length truncates (HF)
    ids = tok(long_text, truncation=True, max_length=10)["input_ids"]
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert len(tok(long_text, truncation=True)["input_ids"]) == 52  # within model_max_length

    enc = tok("one two", long_text, truncation="only_second", max_length=12)
    assert enc["token_type_ids"] == [0] * 4 + [1] * 8
    enc = tok(long_text, "one two", truncation="longest_first", max_length=12)
    assert enc["token_type_ids"] == [0] * 9 + [1] * 3  # the longer one is cut to fit
    assert len(tok(long_text, add_special_tokens=False, max_length=7)["input_ids"]) == 7
    with pytest.raises(ValueError, match="only_first.*2 tokens"):
        tok("one two", long_text, truncation="only_first", max_length=12)
    with pytest.raises(ValueError, match="needs a text_pair"):
        tok(long_text, truncation="only_second", max_length=12)
    with pytest.raises(ValueError, match="max_length must be an int >= 3"):
        tok("a", "b", max_length=2)


def test_bad_arguments(tok):
    with pytest.raises(ValueError, match="padding must be"):
        tok("a", padding="sideways")
    with pytest.raises(ValueError, match="truncation must be"):
        tok("a", truncation="middle")
    with pytest.raises(ValueError, match="pass padding=True"):
        tok(["a", "a b c"], return_tensors="np")
    with pytest.raises(ValueError, match="return_tensors"):
        tok("a", return_tensors="pt")
    with pytest.raises(ValueError, match="text_pair must match"):
        tok(["a", "b"], ["c"])
    with pytest.raises(TypeError, match="text must be str"):
        tok([b"bytes"])
    with pytest.raises(ValueError, match="id 30522 is outside"):
        tok.convert_ids_to_tokens([30522])


def test_decode_round_trip(tok):
    valid = DATA / "corpus" / "sotu-valid.txt"
    lines = valid.read_text(encoding="utf-8").splitlines()[:200] if valid.is_file() else []
    for text in [c["text"] for c in CASES if "text_pair" not in c] + lines:
        ids = tok.encode(text)
        if set(ids[1:-1]) & set(tok.all_special_ids):
            continue  # [UNK] does not round-trip; skip_special_tokens drops a literal [MASK]
        decoded = tok.decode(ids, skip_special_tokens=True)
        assert decoded == " ".join(tok.basic_tokenizer.tokenize(text))
        assert tok.encode(decoded) == ids
    assert tok.decode(tok.encode("Hello, world!")) == "[CLS] hello , world ! [SEP]"
    assert tok.decode(tok.encode("Hello, world!"), skip_special_tokens=True,
                      clean_up_tokenization_spaces=True) == "hello, world!"


# ----- vocabulary files -----

def test_save_and_load_pretrained(tok, tmp_path):
    cased = BertTokenizer(VOCAB, do_lower_case=False, model_max_length=128)
    vocab_path, _ = cased.save_pretrained(tmp_path / "tok")
    assert sorted(p.name for p in (tmp_path / "tok").iterdir()) == ["tokenizer_config.json",
                                                                    "vocab.txt"]
    assert vocab_path.read_bytes() == VOCAB.read_bytes()
    again = BertTokenizer.from_pretrained(tmp_path / "tok")
    assert (again.do_lower_case, again.model_max_length) == (False, 128)
    assert again.tokenize("Hello World") == cased.tokenize("Hello World")
    assert BertTokenizer.from_pretrained(tmp_path / "tok", do_lower_case=True).do_lower_case
    with pytest.raises(FileNotFoundError, match="nowhere"):
        BertTokenizer.from_pretrained(tmp_path / "nowhere")


def _vocab_file(tmp_path: Path, tokens: list[str]) -> Path:
    path = tmp_path / "vocab.txt"
    path.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    return path


def test_vocab_errors(tmp_path):
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    with pytest.raises(FileNotFoundError, match="missing-vocab.txt"):
        BertTokenizer(tmp_path / "missing-vocab.txt")
    with pytest.raises(ValueError, match=r"mask_token '\[MASK\]' is missing"):
        BertTokenizer(_vocab_file(tmp_path, specials[:4] + ["a"]))
    with pytest.raises(ValueError, match=r"duplicate token 'a' .* line 7"):
        BertTokenizer(_vocab_file(tmp_path, specials + ["a", "a"]))
    with pytest.raises(ValueError, match="is empty"):
        BertTokenizer(_vocab_file(tmp_path, []))
    tiny = BertTokenizer(_vocab_file(tmp_path, specials + ["a", "##b"]))
    assert tiny.tokenize("ab ba") == ["a", "##b", "[UNK]"]


# ----- vocabulary training -----

@pytest.fixture(scope="module")
def sotu_lines() -> list[str]:
    path = DATA / "corpus" / "sotu-train.txt"
    if not path.is_file():
        pytest.skip(f"corpus not found: {path}")
    return path.read_text(encoding="utf-8").splitlines()


def test_trained_vocab_works_with_the_tokenizer(sotu_lines, tmp_path):
    train, held_out = sotu_lines[:2000], sotu_lines[-300:]
    tokens = train_wordpiece_vocab(train, vocab_size=2000)
    assert len(tokens) == len(set(tokens)) == 2000
    assert tokens[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    shuffled = train[:]
    random.Random(0).shuffle(shuffled)
    assert train_wordpiece_vocab(shuffled, vocab_size=2000) == tokens  # deterministic

    tok = BertTokenizer(save_vocab(tokens, tmp_path / "vocab.txt"))
    # A held-out word is [UNK] only if it has a character the training lines never had.
    for line in held_out:
        for word in tok.basic_tokenizer.tokenize(line):
            if tok.wordpiece_tokenizer.pieces(word)[0] == (tok.unk_token_id,):
                assert any(c not in tok.vocab for c in word), word
    for line in held_out[:100]:
        ids = tok.encode(line)
        if tok.unk_token_id not in ids:
            assert tok.decode(ids, skip_special_tokens=True) == " ".join(
                tok.basic_tokenizer.tokenize(line))


def test_trainer_errors(tmp_path):
    with pytest.raises(ValueError, match="corpus is empty"):
        train_wordpiece_vocab([], vocab_size=100)
    with pytest.raises(ValueError, match="corpus is empty"):
        train_wordpiece_vocab(["   ", "\u200b"], vocab_size=100)
    with pytest.raises(ValueError, match=r"vocab_size=8 is smaller .* \(11\)"):
        train_wordpiece_vocab(["ab cd"], vocab_size=8)
    with pytest.raises(FileNotFoundError, match="no-such.txt"):
        train_wordpiece_vocab(tmp_path / "no-such.txt", vocab_size=100)
    with pytest.raises(ValueError, match="duplicate token 'a'"):
        save_vocab(["a", "b", "a"], tmp_path / "v.txt")


# ----- properties -----

@settings(max_examples=150, deadline=None)
@given(text=st.text())
def test_any_text_tokenizes_with_sane_offsets(tok, text):
    # ``tok`` is module-scoped, so hypothesis may reuse it across examples.
    enc = tok(text, return_offsets_mapping=True)
    assert enc["input_ids"] == tok.encode(text)  # the offsets path agrees with the plain one
    offsets = enc["offset_mapping"][1:-1]
    assert len(offsets) == len(enc["input_ids"]) - 2
    starts = [s for s, _ in offsets]
    assert starts == sorted(starts)
    assert all(0 <= s < e <= len(text) for s, e in offsets)
