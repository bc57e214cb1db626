"""Tests for tinybert_core.text.wordpiece_trainer: merges by pair frequency (``tokenizers``'
WordPieceTrainer), its options, determinism, and the quality of a vocabulary trained on real
text (sotu-train.txt from ../shared, skipped without it)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paths import SHARED_DATA
from tinybert_core.text.basic_tokenizer import BasicTokenizer
from tinybert_core.text.tokenization import BertTokenizer
from tinybert_core.text.wordpiece_trainer import count_words, save_vocab, train_wordpiece_vocab

CORPUS = SHARED_DATA / "corpus"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# The Hugging Face course's BPE example, with its word counts written out as text.
HUGS = ["hug"] * 10 + ["pug"] * 5 + ["pun"] * 12 + ["bun"] * 4 + ["hugs"] * 5
HUGS_BASE = SPECIALS + ["b", "g", "h", "n", "p", "s", "u", "##g", "##n", "##s", "##u"]
# By hand: (##u ##g) 20, (##u ##n) 16, (h ##ug) 15, (p ##un) 12, then (p ##ug) and (hug ##s)
# tie at 5 and p has the smaller id, then (b ##un) 4.
HUGS_MERGES = ["##ug", "##un", "hug", "pun", "pug", "hugs", "bun"]


def _hugs(**kw) -> list[str]:
    lines = [" ".join(HUGS[i:i + 7]) for i in range(0, len(HUGS), 7)]
    return train_wordpiece_vocab(lines, vocab_size=kw.pop("vocab_size", 100), **kw)


# ----- hand-made corpora -----

def test_merges_the_most_frequent_pair_first():
    assert _hugs(min_frequency=1) == HUGS_BASE + HUGS_MERGES


def test_stops_at_vocab_size():
    assert _hugs(vocab_size=len(HUGS_BASE) + 3) == HUGS_BASE + HUGS_MERGES[:3]


def test_min_frequency_is_the_least_pair_count_merged():
    assert _hugs(min_frequency=4) == HUGS_BASE + HUGS_MERGES
    assert _hugs(min_frequency=5) == HUGS_BASE + HUGS_MERGES[:-1]       # bun (4) is not merged
    assert _hugs(min_frequency=6) == HUGS_BASE + HUGS_MERGES[:4]        # nor pug, hugs (5)
    assert _hugs(min_frequency=21) == HUGS_BASE


def test_ties_go_to_the_pair_with_smaller_ids():
    # (a, ##b) and (c, ##d) both occur twice: a has the smaller id, whatever the text order.
    for text in (["cd cd ab ab"], ["ab cd", "cd ab"]):
        assert train_wordpiece_vocab(text, 100, min_frequency=1)[-2:] == ["ab", "cd"]
    # Same left token: the smaller right id wins.
    assert train_wordpiece_vocab(["ac ab"], 100, min_frequency=1)[-2:] == ["ab", "ac"]


def test_overlapping_pairs_merge_left_to_right():
    # "aaa": (a ##a) once and (##a ##a) once; a < ##a so "aa" first, leaving "aa ##a".
    assert train_wordpiece_vocab(["aaa"], 100, min_frequency=1)[len(SPECIALS):] == \
        ["a", "##a", "aa", "aaa"]


def test_special_tokens_come_first_in_order():
    tokens = train_wordpiece_vocab(["ab ab"], 100, special_tokens=["<s>", "[UNK]", "b"])
    assert tokens == ["<s>", "[UNK]", "b", "a", "##b", "ab"]  # "b" is not added twice
    with pytest.raises(ValueError, match="distinct non-empty"):
        train_wordpiece_vocab(["ab"], 100, special_tokens=["[UNK]", "[UNK]"])
    assert train_wordpiece_vocab(["ab ab"], 100, special_tokens=())[:2] == ["a", "b"]


def test_limit_alphabet_keeps_the_most_frequent_characters():
    # Character counts: a 4, b 3, c 3, d 2. With 3 kept, "d" and every word holding it go.
    tokens = train_wordpiece_vocab(["aaaa bbb cc d cd"], 100, min_frequency=1, limit_alphabet=3)
    assert tokens[5:11] == ["a", "b", "c", "##a", "##b", "##c"]
    # (##a ##a) occurs twice; then all counts are 1 and the smallest left id goes first.
    assert tokens[11:] == ["##aa", "aaa", "bb", "cc", "aaaa", "bbb"]
    # A tie keeps the lower code point.
    assert train_wordpiece_vocab(["b a"], 100, limit_alphabet=1)[5:] == ["a"]
    assert "d" in train_wordpiece_vocab(["aaaa bbb cc d"], 100, limit_alphabet=None)


def test_initial_alphabet_is_always_kept_with_its_continuation():
    # Normalized like the text (lower-cased, accent stripped), and counted in the limit.
    tokens = train_wordpiece_vocab(["aaaa bbb"], 100, limit_alphabet=3, initial_alphabet="Zé")
    assert tokens[5:11] == ["a", "e", "z", "##a", "##e", "##z"] and "b" not in tokens
    assert train_wordpiece_vocab(["aaaa"], 100, limit_alphabet=2, initial_alphabet="Zé")[5:] \
        == ["e", "z", "##e", "##z"]
    with pytest.raises(ValueError, match="single characters"):
        train_wordpiece_vocab(["ab"], 100, initial_alphabet=["ab"])


def test_pre_tokenization_is_the_tokenizers():
    text = "Café, naïve\u00a0RÉSUMÉ!  中文 don't\u200b x"
    assert count_words([text]) == Counter(BasicTokenizer().tokenize(text))
    assert count_words([text]) == Counter(["cafe", ",", "naive", "resume", "!", "中", "文",
                                           "don", "'", "t", "x"])
    assert count_words([text], lowercase=False) == \
        Counter(BasicTokenizer(do_lower_case=False).tokenize(text))
    tokens = train_wordpiece_vocab(["Café CAFÉ cafe"], 100, lowercase=True)
    assert tokens[-1] == "cafe" and not any(c in "CÉé" for t in tokens[5:] for c in t)
    assert "CAFÉ" in train_wordpiece_vocab(["Café CAFÉ CAFÉ"], 100, lowercase=False)


def test_words_longer_than_the_tokenizer_limit_are_left_out():
    tokens = train_wordpiece_vocab(["ab ab " + "x" * 101], 100)
    assert "x" not in tokens and tokens[-1] == "ab"


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="corpus is empty"):
        train_wordpiece_vocab([], vocab_size=100)
    with pytest.raises(ValueError, match=r"vocab_size=8 is smaller .* \(11\)"):
        train_wordpiece_vocab(["ab cd"], vocab_size=8)
    for name in ("vocab_size", "min_frequency", "limit_alphabet"):
        with pytest.raises(ValueError, match=f"{name} must be an int >= 1, got 0"):
            train_wordpiece_vocab(["ab"], **{"vocab_size": 100, name: 0})
    with pytest.raises(FileNotFoundError, match="no-such.txt"):
        train_wordpiece_vocab(tmp_path / "no-such.txt", vocab_size=100)


# ----- the incremental bookkeeping against a recount per merge -----

def _slow_trainer(words: Counter, vocab_size: int, min_frequency: int) -> list[str]:
    """Frequency BPE the obvious way: recount every pair after every merge."""
    alphabet = sorted({c for w in words for c in w})
    inside = sorted({c for w in words for c in w[1:]})
    tokens = SPECIALS + alphabet + ["##" + c for c in inside]
    ids = {t: i for i, t in enumerate(tokens)}
    split = {w: [w[0]] + ["##" + c for c in w[1:]] for w in words}
    while len(tokens) < vocab_size:
        counts: Counter = Counter()
        for w, pieces in split.items():
            for p in zip(pieces, pieces[1:]):
                counts[p] += words[w]
        best = min(counts.items(), key=lambda kv: (-kv[1], ids[kv[0][0]], ids[kv[0][1]]),
                   default=None)
        if best is None or best[1] < min_frequency:
            break
        (a, b), _ = best
        merged = a + b[2:]
        if merged not in ids:
            ids[merged] = len(tokens)
            tokens.append(merged)
        for w, pieces in split.items():
            out, j = [], 0
            while j < len(pieces):
                if j + 1 < len(pieces) and (pieces[j], pieces[j + 1]) == (a, b):
                    out.append(merged)
                    j += 2
                else:
                    out.append(pieces[j])
                    j += 1
            split[w] = out
    return tokens


@settings(max_examples=60, deadline=None)
@given(words=st.lists(st.text("abcd", min_size=1, max_size=7), min_size=1, max_size=30),
       extra=st.integers(0, 25), min_frequency=st.integers(1, 3))
def test_equals_a_recount_after_every_merge(words, extra, min_frequency):
    counts = Counter(words)
    base = len(_slow_trainer(counts, 0, min_frequency))
    expected = _slow_trainer(counts, base + extra, min_frequency)
    assert train_wordpiece_vocab([" ".join(words)], base + extra, min_frequency) == expected


# ----- determinism and a real corpus -----

def test_same_corpus_same_vocab_file(tmp_path):
    lines = [f"{w} {v}, {w}{v}." for w in ("alpha", "beta", "gamma") for v in ("ray", "decay")]
    first = save_vocab(train_wordpiece_vocab(lines * 3, 60), tmp_path / "a.txt")
    shuffled = lines * 3
    random.Random(0).shuffle(shuffled)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(shuffled) + "\n", encoding="utf-8")
    second = save_vocab(train_wordpiece_vocab(corpus, 60), tmp_path / "b.txt")
    assert first.read_bytes() == second.read_bytes()


@pytest.fixture(scope="module")
def sotu_vocab(tmp_path_factory) -> tuple[BertTokenizer, Counter]:
    """An 8,000-token vocabulary trained on all of sotu-train.txt (about 2 s), once."""
    train = CORPUS / "sotu-train.txt"
    if not train.is_file():
        pytest.skip(f"needs ../shared/data/corpus (not found: {train})")
    tokens = train_wordpiece_vocab(train, vocab_size=8000)
    assert len(tokens) == len(set(tokens)) == 8000
    path = save_vocab(tokens, tmp_path_factory.mktemp("sotu") / "vocab.txt")
    again = save_vocab(train_wordpiece_vocab([train], vocab_size=8000),
                       path.with_name("again.txt"))
    assert again.read_bytes() == path.read_bytes()
    return BertTokenizer(path), count_words(train)


def test_sotu_vocab_needs_few_tokens_per_word(sotu_vocab):
    tok, _ = sotu_vocab
    text = (CORPUS / "sotu-valid.txt").read_text(encoding="utf-8")
    pieces = tok.tokenize(text)
    per_word = len(pieces) / len(text.split())
    assert per_word <= 1.3, f"{per_word:.3f} tokens per whitespace word on sotu-valid.txt"
    assert pieces.count("[UNK]") / len(pieces) < 0.001


def test_sotu_vocab_keeps_frequent_words_whole(sotu_vocab):
    tok, words = sotu_vocab
    top = [w for w, _ in words.most_common(100)]
    split = [w for w in top if len(tok.wordpiece_tokenizer.pieces(w)[0]) != 1]
    assert not split, f"frequent training words split into pieces: {split}"
    # Nothing degenerate: no single piece takes a large share of held-out text.
    text = (CORPUS / "sotu-valid.txt").read_text(encoding="utf-8")
    piece, n = Counter(tok.tokenize(text)).most_common(1)[0]
    assert piece == "the" and n / len(tok.tokenize(text)) < 0.08
