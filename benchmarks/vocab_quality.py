"""Vocabulary quality and training time: our WordPiece trainer vs ``tokenizers``' WordPieceTrainer.

For each size, both trainers learn a vocabulary on the same corpus with the same options
(lower-cased, min_frequency, limit_alphabet, BERT's five special tokens); then both vocabularies
tokenize the same held-out text with our ``BertTokenizer`` (greedy longest match, as BERT does),
so only the vocabularies differ. Reported per size: tokens per whitespace word of held-out
text, [UNK] share, how many of the 200 most frequent training words stay whole, the tokens
reached, the training time, and the overlap of the two vocabularies (|ours & ref| / |ref|).
Target (issue 9): our tokens/word within 5% of the reference's at the same size.

The reference runs in a separate interpreter that has ``tokenizers`` (never a dependency of
ours); without one, only our numbers are printed. Prints one JSON document.

    flock /tmp/tinybert-cpu.lock python benchmarks/vocab_quality.py \\
        --ref-python /work/refvenv/bin/python
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tinybert_core.text.tokenization import BertTokenizer  # noqa: E402
from tinybert_core.text.wordpiece_trainer import count_words, save_vocab  # noqa: E402
from tinybert_core.text.wordpiece_trainer import train_wordpiece_vocab  # noqa: E402

CORPUS = ROOT.parent / "shared" / "data" / "corpus"

_REFERENCE = """
import json, sys, time
from tokenizers import BertWordPieceTokenizer
corpus, size, min_frequency, limit_alphabet, out = sys.argv[1:]
start = time.perf_counter()
tok = BertWordPieceTokenizer(lowercase=True, clean_text=True, handle_chinese_chars=True)
tok.train([corpus], vocab_size=int(size), min_frequency=int(min_frequency),
          limit_alphabet=int(limit_alphabet), show_progress=False)
seconds = time.perf_counter() - start
tok.save_model(out)
import tokenizers
print(json.dumps({"seconds": seconds, "version": tokenizers.__version__}))
"""


def machine() -> dict:
    info = {"cpus": os.cpu_count(), "python": platform.python_version(),
            "processor": platform.machine()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        field = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in
                 text.split("\n\n")[0].splitlines() if ":" in line)}
        info["cpu"] = (f"{field['model name']} (family {field['cpu family']}, "
                       f"model {field['model']})")
        flags = next(line for line in text.splitlines() if line.startswith("flags")).split()
        info["isa"] = [f for f in ("avx2", "avx512f", "avx512_vnni") if f in flags]
    except (OSError, StopIteration, KeyError):
        pass
    return info


def quality(vocab: Path, held_out: str, frequent: list[str]) -> dict:
    tok = BertTokenizer(vocab)
    pieces = tok.tokenize(held_out)
    whole = sum(len(tok.wordpiece_tokenizer.pieces(w)[0]) == 1 for w in frequent)
    return {"tokens": len(tok), "tokens_per_word": len(pieces) / len(held_out.split()),
            "unk_share": pieces.count(tok.unk_token) / len(pieces),
            f"top{len(frequent)}_words_whole": whole}


def reference(python: str, corpus: Path, size: int, args: argparse.Namespace,
              out: Path) -> dict | None:
    cmd = [python, "-c", _REFERENCE, str(corpus), str(size), str(args.min_frequency),
           str(args.limit_alphabet), str(out)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"reference trainer unavailable: {getattr(e, 'stderr', '') or e}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS / "sotu-train.txt")
    parser.add_argument("--held-out", type=Path, default=CORPUS / "sotu-valid.txt")
    parser.add_argument("--sizes", type=int, nargs="+", default=[8000, 30522])
    parser.add_argument("--min-frequency", type=int, default=2)
    parser.add_argument("--limit-alphabet", type=int, default=1000)
    parser.add_argument("--ref-python", default=sys.executable,
                        help="An interpreter with `tokenizers` installed.")
    args = parser.parse_args()
    for path in (args.corpus, args.held_out):
        if not path.is_file():
            sys.exit(f"vocab_quality: file not found: {path}")

    held_out = args.held_out.read_text(encoding="utf-8")
    frequent = [w for w, _ in count_words(args.corpus).most_common(200)]
    report: dict = {"benchmark": "vocab_quality", "machine": machine(),
                    "corpus": str(args.corpus), "held_out": str(args.held_out),
                    "held_out_words": len(held_out.split()), "min_frequency": args.min_frequency,
                    "limit_alphabet": args.limit_alphabet, "sizes": []}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            start = time.perf_counter()
            tokens = train_wordpiece_vocab(args.corpus, size, min_frequency=args.min_frequency,
                                           limit_alphabet=args.limit_alphabet)
            seconds = time.perf_counter() - start
            ours_path = save_vocab(tokens, Path(tmp) / f"ours-{size}.txt")
            row = {"vocab_size": size,
                   "ours": {"seconds": round(seconds, 2),
                            **quality(ours_path, held_out, frequent)}}
            ref_dir = Path(tmp) / f"ref-{size}"
            ref_dir.mkdir()
            ref = reference(args.ref_python, args.corpus, size, args, ref_dir)
            if ref is not None:
                ref_path = ref_dir / "vocab.txt"
                ref_tokens = ref_path.read_text(encoding="utf-8").splitlines()
                row["reference"] = {"trainer": f"tokenizers {ref['version']} WordPieceTrainer",
                                    "seconds": round(ref["seconds"], 2),
                                    **quality(ref_path, held_out, frequent)}
                ratio = row["ours"]["tokens_per_word"] / row["reference"]["tokens_per_word"]
                row["tokens_per_word_ratio"] = round(ratio, 4)
                row["within_5_percent"] = ratio <= 1.05
                row["overlap"] = round(len(set(tokens) & set(ref_tokens)) / len(ref_tokens), 4)
                row["same_tokens_same_ids"] = tokens == ref_tokens
            report["sizes"].append(row)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
