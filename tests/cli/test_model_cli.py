"""`tinybert summary`, `fill-mask` and `encode` through click's CliRunner."""
from __future__ import annotations

import json
import shutil

import numpy as np
from click.testing import CliRunner

from cli.inference_cmd import encode_command, fill_mask_command
from cli.summary_cmd import summary_command
from paths import MODEL_FIXTURES
from tinybert_core import BertTokenizer, MobileBertModel

MOBILE = MODEL_FIXTURES / "mobilebert-kq-shared"
SENTENCE = "the man went to the [MASK] and bought a gallon of milk ."


def test_commands_are_registered_in_the_group():
    from cli.main import tinybert
    assert {"summary", "fill-mask", "encode"} <= set(tinybert.commands)


def test_summary_text_and_json():
    runner = CliRunner()
    result = runner.invoke(summary_command, ["--config", "mobilebert"])
    assert result.exit_code == 0, result.output
    assert "24,581,888" in result.output and "20,213,760" in result.output
    assert "5.385 G" in result.output
    result = runner.invoke(summary_command, ["--config", "bert-base", "--max-seq-length", "128",
                                             "--json"])
    info = json.loads(result.output)
    assert info["total_parameters"] == 109_482_240
    assert info["parameters"] == {"embeddings": 23_837_184, "encoder": 85_054_464,
                                  "pooler": 590_592}
    assert abs(info["flops"]["total"] - 22.35e9) / 22.35e9 < 0.01
    result = runner.invoke(summary_command, ["--config", str(MOBILE), "--architecture",
                                             "ForPreTraining", "--json"])
    assert json.loads(result.output)["architecture"] == "MobileBertForPreTraining"


def test_summary_user_errors():
    runner = CliRunner()
    result = runner.invoke(summary_command, ["--config", "mobilebert-huge"])
    assert result.exit_code == 2 and "'mobilebert-huge' is neither a preset (mobilebert, " \
        "mobilebert-tiny" in result.output
    result = runner.invoke(summary_command, ["--config", "mobilebert", "--architecture", "GPT"])
    assert result.exit_code == 1 and "unknown architecture 'GPT'" in result.output
    result = runner.invoke(summary_command, ["--config", "mobilebert", "--max-seq-length", "0"])
    assert result.exit_code == 2


def test_fill_mask_matches_the_hf_reference_ranking():
    ref = np.load(MOBILE / "reference.npz")
    ids = ref["sentence.input_ids"][0]
    logits = ref["sentence.logits"][list(ids).index(4)]
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    expected = np.argsort(-probs)[:3]
    result = CliRunner().invoke(fill_mask_command, [str(MOBILE), SENTENCE, "--top-k", "3",
                                                    "--json"])
    assert result.exit_code == 0, result.output
    (entries,) = json.loads(result.output)["predictions"]
    assert [e["token_id"] for e in entries] == expected.tolist()
    np.testing.assert_allclose([e["score"] for e in entries], probs[expected], rtol=1e-4)
    tokenizer = BertTokenizer.from_pretrained(MOBILE)
    assert entries[0]["token"] == tokenizer.convert_ids_to_tokens(int(expected[0]))
    assert entries[0]["sequence"].startswith("the man went to the " + entries[0]["token"])
    text = CliRunner().invoke(fill_mask_command, [str(MOBILE), SENTENCE])
    assert text.exit_code == 0 and len(text.output.strip().splitlines()) == 5


def test_fill_mask_user_errors(tmp_path):
    runner = CliRunner()
    result = runner.invoke(fill_mask_command, [str(MOBILE), "no mask here"])
    assert result.exit_code == 1 and "has no [MASK] token" in result.output
    shutil.copytree(MOBILE, tmp_path / "m")
    (tmp_path / "m" / "vocab.txt").unlink()
    result = runner.invoke(fill_mask_command, [str(tmp_path / "m"), SENTENCE])
    assert result.exit_code == 1 and "has no vocab.txt" in result.output
    result = runner.invoke(fill_mask_command, [str(tmp_path / "missing"), SENTENCE])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_encode_writes_one_row_per_line(tmp_path):
    lines = ["the man went to the store", "milk", "", "a gallon of milk", "the man"]
    source = tmp_path / "in.txt"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.npy"
    runner = CliRunner()
    for pooling in ("cls", "mean"):
        result = runner.invoke(encode_command, [str(MOBILE), "--input", str(source), "--output",
                                                str(out), "--pooling", pooling,
                                                "--batch-size", "2"])
        assert result.exit_code == 0, result.output
        assert "encode: 5/5 texts (100%)" in result.stderr
        vectors = np.load(out)
        assert vectors.shape == (5, 64) and vectors.dtype == np.float32
        model = MobileBertModel.from_pretrained(MOBILE)
        tokenizer = BertTokenizer.from_pretrained(MOBILE)
        for i in (0, 2, 4):                          # each row equals the line encoded alone
            ids = np.array([tokenizer(lines[i])["input_ids"]])
            hidden = model(ids).last_hidden_state.numpy()[0]
            expected = hidden[0] if pooling == "cls" else hidden.mean(axis=0)
            np.testing.assert_allclose(vectors[i], expected, rtol=1e-5, atol=1e-5)


def test_encode_user_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    runner = CliRunner()
    result = runner.invoke(encode_command, [str(MOBILE), "--input", str(empty), "--output",
                                            str(tmp_path / "o.npy")])
    assert result.exit_code == 1 and "is empty" in result.output
    result = runner.invoke(encode_command, [str(MOBILE), "--input", str(tmp_path / "nope.txt"),
                                            "--output", str(tmp_path / "o.npy")])
    assert result.exit_code == 2
    source = tmp_path / "in.txt"
    source.write_text("hello\n")
    result = runner.invoke(encode_command, [str(MOBILE), "--input", str(source), "--output",
                                            str(tmp_path / "no" / "dir" / "o.npy")])
    assert result.exit_code == 1 and "does not exist" in result.output
