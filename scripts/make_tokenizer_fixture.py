"""Generate tests/fixtures/tokenizer_reference.json from Hugging Face's BERT tokenizers.

The reference is transformers' slow (pure-Python) ``BertTokenizer``, called
``BertTokenizerLegacy`` since transformers 5; its ids and token_type_ids are recorded. The Rust
``BertTokenizerFast`` is run on the same input: its ``offset_mapping`` is recorded when its ids
agree with the slow tokenizer's (``fast_agrees``), which is where offsets are well defined.

Inputs: about 40 lines sampled at even spacing (deterministic) from ``corpus/*.txt`` and
``glue/*/dev.tsv``, a few SQuAD contexts and question/context pairs, and hand-written hard cases
(accents, CJK, control characters, emoji, long words, URLs, truncated pairs).

Usage (needs transformers; tinybert itself does not):
    python scripts/make_tokenizer_fixture.py [--vocab VOCAB] [--out OUT] [--data DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
DEFAULT_VOCAB = DEFAULT_DATA / "vocab" / "bert-base-uncased-vocab.txt"
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "tokenizer_reference.json"

HARD_CASES = [
    "Café naïve résumé Ångström",
    "Decomposed accents: cafe\u0301 and re\u0301sume\u0301, Zu\u0308rich",
    "Hello!!! What?!... (yes) [no] {maybe} <tag> \"quoted\" 'single' --- ;;; @#$%^&*_~`|\\",
    "!!!!!!!!!!??????......,,,,;;;;::::----",
    "我爱北京天安门 and 東京",
    "CJK compatibility 豈 and Hangul 한국어 and kana ひらがな カタカナ",
    "pneumonoultramicroscopicsilicovolcanoconiosis" * 3 + "ish and more",
    "a" * 100 + " boundary " + "b" * 101,
    "tab\there\nnewline\r\ncarriage\u200bzero\u200dwidth\x00null\x07bell\ufeffbom\ufffdrepl",
    "emoji 😀 👍🏽 family 👨\u200d👩\u200d👧 flags 🇺🇸 ok",
    "1,234,567.89 and $3,000,000 or 12:30pm on 2021-03-04, 50% off",
    "https://www.example.com/path/to/page?query=1&b=two#frag and mailto:someone@example.org",
    ("The \u216b chapter \u2014 \u201ccurly quotes\u201d and \u2018single\u2019 \u2026 ellipsis "
     "\u2013 en dash"),
    "no\u00a0break\u2003em\u3000ideographic\u2028line\u2029para spaces",
    "\u0399\u03b4\u03bf\u03cd \u039f\u0394\u039f\u03a3 \u03a3\u03af\u03c3\u03c5\u03c6\u03bf\u03c2",
    "\u0130stanbul \u01c5emal stra\u00dfe \ufb01nance \u212bngstr\u00f6m",
    ("Arabic \u0645\u0631\u062d\u0628\u0627 Hebrew \u05e9\u05dc\u05d5\u05dd Devanagari "
     "\u0928\u092e\u0938\u094d\u0924\u0947"),
    "Special tokens inline: hello[MASK]world [SEP] [cls] [UNK]x",
    "cleaning reveals x [MA\u200bSK] y",
    "",
    "   \t\n ",
    "\x00\x01\x7f",
    "a",
    "##s ## # ##",
    "don't won't it's y'all rock'n'roll",
    "UPPER lower MiXeD CamelCase iPhone McDonald's",
    "E = mc\u00b2 and x\u2081 + \u00bd \u2248 \u221e \u00b1 \u221a2",
    "U.S.A. e.g. i.e. Ph.D. St. Louis, Mo.",
]

PAIR_CASES = [  # (text, text_pair, truncation, max_length)
    ("The quick brown fox jumps over the lazy dog near the riverbank today.",
     "A fast auburn fox leapt over a sleepy hound by the river this morning, or so they say.",
     "longest_first", 32),
    ("short one", ("This second sentence is a lot longer than the first one and will need to "
                   "be truncated heavily to fit in thirty-two tokens."), "longest_first", 32),
    (("This first sentence is a lot longer than the second one and will need to be truncated "
      "heavily to fit in thirty-two tokens."), "short two", "longest_first", 32),
    ("one two three four five six seven eight nine ten eleven twelve thirteen fourteen",
     "uno dos tres cuatro cinco seis siete ocho nueve diez once doce trece catorce",
     "longest_first", 31),
    ("Who wrote it?", ("It was written by Herman Melville in 1851 and it tells the story of the "
                       "whaler Ishmael and Captain Ahab."), "only_second", 24),
    ("A long question that goes on and on about many things in great detail indeed",
     "Short context.", "only_first", 16),
    ("Café résumé", "naïve 東京 😀", None, None),
]

LOWER_FALSE_CASES = ["Hello World THE Café", "MiXeD CaSe iPhone", "cafe\u0301 NFC vs NFD"]


def sample_lines(data: Path, per_file: int) -> tuple[list[str], list[tuple[str, str]]]:
    """Evenly spaced non-empty lines of each corpus file, and sentence pairs of each dev.tsv."""
    singles, pairs = [], []
    for path in sorted((data / "corpus").glob("*.txt")):
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if 20 < len(ln) < 400]
        singles += [lines[(2 * k + 1) * len(lines) // (2 * per_file)] for k in range(per_file)]
    for path in sorted(data.glob("glue/*/dev.tsv")):
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
        rows = [r for r in rows if len(r[1]) + len(r[2]) < 600]
        picked = [rows[(2 * k + 1) * len(rows) // (2 * per_file)] for k in range(per_file)]
        singles += [r[1] for r in picked[: per_file // 2]]
        pairs += [(r[1], r[2]) for r in picked[per_file // 2:]]
    return singles, pairs


def squad_cases(data: Path, n: int) -> tuple[list[str], list[tuple[str, str]]]:
    squad = json.loads((data / "squad" / "dev-v2.0.json").read_text(encoding="utf-8"))
    paras = [p for art in squad["data"] for p in art["paragraphs"]]
    picked = [paras[(2 * k + 1) * len(paras) // (2 * n)] for k in range(n)]
    return [p["context"] for p in picked], [(p["qas"][0]["question"], p["context"]) for p in picked]


def load_tokenizers(vocab: Path, lower: bool):
    from transformers import BertTokenizerFast

    try:  # transformers >= 5 keeps the pure-Python tokenizer under this name
        from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy as Slow
    except ImportError:
        from transformers import BertTokenizer as Slow
    slow = Slow(str(vocab), do_lower_case=lower)
    if getattr(slow, "is_fast", False):
        sys.exit("make_tokenizer_fixture: could not find transformers' slow BertTokenizer")
    fast = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=lower)
    if fast.vocab_size != slow.vocab_size:  # transformers 5 takes the vocabulary as a dict
        fast = BertTokenizerFast(vocab=dict(slow.vocab), do_lower_case=lower)
    return slow, fast


def make_case(slow, fast, text, pair=None, truncation=None, max_length=None, options=None):
    kwargs = {"truncation": truncation, "max_length": max_length} if truncation else {}
    ref = slow(text, pair, return_token_type_ids=True, **kwargs)
    got = fast(text, pair, return_offsets_mapping=True, return_token_type_ids=True, **kwargs)
    case = {"text": text}
    if pair is not None:
        case["text_pair"] = pair
    if truncation:
        case.update(truncation=truncation, max_length=max_length)
    if options:
        case["options"] = options
    case["input_ids"] = list(ref["input_ids"])
    case["token_type_ids"] = list(ref["token_type_ids"])
    case["fast_agrees"] = list(got["input_ids"]) == case["input_ids"]
    if case["fast_agrees"]:
        case["offsets"] = [list(o) for o in got["offset_mapping"]]
    return case


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=Path, default=DEFAULT_VOCAB)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    try:
        import transformers
    except ImportError:
        sys.exit("make_tokenizer_fixture: transformers is not installed; run this script with a "
                 "Python that has it (pip install transformers tokenizers)")
    if not args.vocab.is_file():
        sys.exit(f"make_tokenizer_fixture: vocabulary not found: {args.vocab}")

    slow, fast = load_tokenizers(args.vocab, lower=True)
    singles, pairs = sample_lines(args.data, per_file=8)
    contexts, questions = squad_cases(args.data, n=3)
    cases = [make_case(slow, fast, t) for t in HARD_CASES + singles + contexts]
    cases += [make_case(slow, fast, a, b) for a, b in pairs[:4]]
    cases += [make_case(slow, fast, a, b, "longest_first", 32) for a, b in pairs[4:]]
    cases += [make_case(slow, fast, q, c, "only_second", 64) for q, c in questions[:2]]
    cases += [make_case(slow, fast, *pc) for pc in PAIR_CASES]
    slow_cased, fast_cased = load_tokenizers(args.vocab, lower=False)
    cases += [make_case(slow_cased, fast_cased, t, options={"do_lower_case": False})
              for t in LOWER_FALSE_CASES]

    payload = {"transformers_version": transformers.__version__, "vocab": args.vocab.name,
               "cases": cases}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    disagree = [c["text"][:40] for c in cases if not c["fast_agrees"]]
    print(f"wrote {len(cases)} cases to {args.out} ({args.out.stat().st_size} bytes); "
          f"fast tokenizer disagrees on {len(disagree)}: {disagree}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
