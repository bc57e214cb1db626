"""Every file tinybert writes goes through the one atomic writer (autograd.serialization.
atomic_open): the umask decides its mode (mkstemp's 0600 used to leak into vocab.txt and
tokenizer_config.json), no temp file is left behind, and a failed write keeps the old file."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from autograd import optim
from autograd.serialization import atomic_write_text
from tinybert_core import BertTokenizer, MobileBertConfig, MobileBertForPreTraining
from tinybert_core.data.corpus import tokenize_corpus
from tinybert_core.text.wordpiece_trainer import save_vocab
from tinybert_core.training.checkpoint import save_training_checkpoint

UMASK = 0o027                       # group may read, others nothing: neither 0600 nor 0644
WORDS = ["the", "whale", "sea", "ship", "captain", "white", "a", "is", "on", ".", "##s"]


@pytest.fixture
def umask():
    old = os.umask(UMASK)
    try:
        yield 0o666 & ~UMASK
    finally:
        os.umask(old)


def _written(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _check(root: Path, mode: int) -> None:
    files = _written(root)
    assert files
    for path in files:
        assert path.stat().st_mode & 0o777 == mode, f"{path} has mode {oct(path.stat().st_mode)}"
        assert not path.name.endswith(".tmp"), f"temp file left behind: {path}"


def _tokenizer(directory: Path) -> BertTokenizer:
    directory.mkdir()
    vocab = save_vocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS],
                       directory / "vocab.txt")
    return BertTokenizer(vocab)


def test_tokenizer_and_vocabulary_files(tmp_path, umask):
    tok = _tokenizer(tmp_path / "src")                   # save_vocab
    tok.save_pretrained(tmp_path / "saved")              # vocab.txt + tokenizer_config.json
    _check(tmp_path, umask)
    assert BertTokenizer.from_pretrained(tmp_path / "saved").ids_to_tokens == tok.ids_to_tokens


def test_model_directory_and_training_checkpoint(tmp_path, umask):
    config = MobileBertConfig.from_pretrained(
        "mobilebert", vocab_size=16, hidden_size=16, embedding_size=8, num_hidden_layers=1,
        num_attention_heads=2, intra_bottleneck_size=8, intermediate_size=8,
        max_position_embeddings=8)
    model = MobileBertForPreTraining(config, seed=0)
    model.save_pretrained(tmp_path / "model", tokenizer=_tokenizer(tmp_path / "tok"))
    save_training_checkpoint(tmp_path / "checkpoint.npz", model, optim.LAMB(model, lr=1e-3), 3,
                             config.to_dict())
    _check(tmp_path, umask)


def test_token_shard_cache(tmp_path, umask):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the whale is on the sea .\nthe ship .\n\na white whale .\ncaptain .\n",
                      encoding="utf-8")
    os.chmod(corpus, umask)
    cached = tokenize_corpus([corpus], _tokenizer(tmp_path / "tok"), cache_dir=tmp_path / "c")
    assert cached.num_documents == 2 and cached.num_shards == 1
    _check(tmp_path, umask)
    again = tokenize_corpus([corpus], BertTokenizer(tmp_path / "tok" / "vocab.txt"),
                            cache_dir=tmp_path / "c")
    assert again.from_cache
    np.testing.assert_array_equal(again.shard(0).tokens, cached.shard(0).tokens)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "vocab.txt"
    atomic_write_text(path, "old\n")

    with pytest.raises(TypeError):
        atomic_write_text(path, 42)                      # write() refuses an int mid-write
    assert path.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["vocab.txt"]
