"""Fine-tuning end to end on the shared real data, through the CLI (slow: about a minute).

- epistemic (RTE layout, 1,600 / 400 rows): one epoch of a small random MobileBERT; the
  baseline written next to the result is the majority class of the training file (63% of dev
  is not_entailment).
- SQuAD v2.0 (a 60-question dev subset): fine-tune, evaluate, predict; the scores `evaluate`
  reports equal the official v2.0 computation run on the files it wrote (predictions.json with
  null_odds.json as the no-answer file), and the all-null baseline equals the unanswerable
  share.
"""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cli.main import tinybert
from paths import BERT_VOCAB, SHARED_DATA
from tinybert_core import BertTokenizer, MobileBertConfig, model_class
from tinybert_core.evaluation.squad import squad_evaluate_files

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (SHARED_DATA / "squad").is_dir(),
                                 reason="needs ../shared/data")]
EPISTEMIC = SHARED_DATA / "glue" / "epistemic"
SQUAD = SHARED_DATA / "squad"


def run(*args):
    r = CliRunner().invoke(tinybert, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("small") / "model"
    tok = BertTokenizer(BERT_VOCAB)
    config = MobileBertConfig.from_pretrained("mobilebert-small", num_hidden_layers=2,
                                              vocab_size=len(tok), max_position_embeddings=128)
    model_class(config, "pretraining")(config, seed=0).save_pretrained(d, tokenizer=tok)
    return d


def test_epistemic_end_to_end(model_dir, tmp_path):
    run("--backend", "numba", "finetune", model_dir, "--task", "rte", "--train-file",
        EPISTEMIC / "train.tsv", "--dev-file", EPISTEMIC / "dev.tsv", "--output-dir",
        tmp_path / "run", "--epochs", 1, "--max-seq-length", 64, "--lr", 1e-4)
    res = json.loads((tmp_path / "run" / "eval_results.json").read_text())
    assert res["train_examples"] == 1600 and res["dev_examples"] == 400
    assert res["baseline"] == {"acc": 0.63} and res["steps"] == 50
    assert 0.0 <= res["best"]["acc"] <= 1.0 and res["seconds_per_epoch"] > 0


def test_squad_v2_scores_equal_the_official_computation_on_the_written_files(model_dir,
                                                                               tmp_path):
    data = json.loads((SQUAD / "dev-v2.0.json").read_text())
    data["data"] = data["data"][:12]
    dev = tmp_path / "dev.json"
    dev.write_text(json.dumps(data))
    run("--backend", "numba", "finetune", model_dir, "--task", "squad-v2", "--train-file",
        SQUAD / "train-v2.0.json", "--dev-file", dev, "--output-dir", tmp_path / "run",
        "--max-train-examples", 96, "--max-seq-length", 128, "--doc-stride", 64,
        "--batch-size", 16, "--lr", 1e-4, "--epochs", 1)
    run("evaluate", tmp_path / "run" / "best", "--task", "squad-v2", "--dev-file", dev,
        "--output-dir", tmp_path / "ev")
    ev = json.loads((tmp_path / "ev" / "eval_results.json").read_text())
    official = squad_evaluate_files(dev, tmp_path / "ev" / "predictions.json",
                                    tmp_path / "ev" / "null_odds.json")
    assert ev["metrics"] == official
    unanswerable = sum(qa.get("is_impossible", False) for a in data["data"]
                       for p in a["paragraphs"] for qa in p["qas"])
    assert ev["baseline"]["exact"] == pytest.approx(100 * unanswerable / ev["examples"])
    run("predict", tmp_path / "run" / "best", "--task", "squad-v2", "--input", dev,
        "--output", tmp_path / "pred" / "predictions.json")
    assert json.loads((tmp_path / "pred" / "predictions.json").read_text()) == json.loads(
        (tmp_path / "ev" / "predictions.json").read_text())
