"""Fine-tuning, evaluation and prediction end to end on a 2-layer MobileBERT (the HF fixture
checkpoint, vocabulary of 1,000 tokens): learning above the baseline, bit-exact resume,
regression, SQuAD v2.0, label orders, and every bad input stopping before anything is written."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from autograd.serialization import load_safetensors, save_safetensors
from paths import MODEL_FIXTURES
from tinybert_core import finetuning as FT
from tinybert_core.training.step import TrainingDiverged

MODEL = MODEL_FIXTURES / "mobilebert-kq-shared"
WORDS = "the man went to and bought milk at store shop market in was he is as for".split()


def sentiment_file(path: Path, n: int, seed: int) -> Path:
    """A separable sentence-pair task: the label is whether sentence2 holds "up" or "down"."""
    rng = np.random.default_rng(seed)
    rows = ["index\tsentence1\tsentence2\tlabel"]
    for i in range(n):
        words = list(rng.choice(WORDS, 5))
        label = ["neg", "pos"][i % 2]
        words[int(rng.integers(5))] = "up" if label == "pos" else "down"
        rows.append(f"{i}\t{' '.join(rng.choice(WORDS, 4))}\t{' '.join(words)}\t{label}")
    path.write_text("\n".join(rows) + "\n")
    return path


def fast(**kw) -> FT.FinetuneOptions:
    return FT.FinetuneOptions(**{"epochs": 3, "batch_size": 8, "lr": 3e-3, "seed": 0, **kw})


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("task")
    return sentiment_file(d / "train.tsv", 48, 0), sentiment_file(d / "dev.tsv", 24, 1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, files):
    out = tmp_path_factory.mktemp("run") / "run"
    summary = FT.finetune(MODEL, out, *files, FT.TaskOptions("custom", max_seq_length=32),
                          fast(epochs=6))
    return out, summary


def test_finetuning_learns_above_the_majority_baseline(trained):
    out, summary = trained
    results = json.loads((out / FT.RESULTS_NAME).read_text())
    assert results == summary["results"]
    assert results["baseline"]["acc"] == 0.5 and results["best"]["acc"] >= 0.75
    assert results["steps"] == 36 and results["steps_per_epoch"] == 6
    config = json.loads((out / "best" / "config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "pos"} and config["num_labels"] == 2
    assert config["architectures"] == ["MobileBertForSequenceClassification"]
    assert config["finetuning_task"] == "custom"
    assert (out / "model" / "vocab.txt").is_file()
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 37))
    assert [r["step"] for r in log if "eval_acc" in r] == [6, 12, 18, 24, 30, 36]
    # Google's schedule: 3 warm-up steps, then 3e-3 * (1 - step / 36) down to 0
    assert log[0]["lr"] == 0.0 and max(r["lr"] for r in log) == pytest.approx(3e-3 * 33 / 36)


def test_evaluate_and_predict_a_finetuned_model(trained, files, tmp_path):
    out, _ = trained
    results = FT.evaluate(out / "best", files[1], FT.TaskOptions("custom"), tmp_path / "ev",
                          train_file=files[0])
    assert results["metrics"]["acc"] == json.loads((out / FT.RESULTS_NAME).read_text())[
        "best"]["acc"]
    assert results["baseline_kind"] == "majority class of --train-file"
    assert (tmp_path / "ev" / FT.RESULTS_NAME).is_file()
    with pytest.raises(ValueError, match="is not empty .* --overwrite-output-dir"):
        FT.evaluate(out / "best", files[1], FT.TaskOptions("custom"), tmp_path / "ev")
    FT.evaluate(out / "best", files[1], FT.TaskOptions("custom"), tmp_path / "ev",
                overwrite=True)
    paths = FT.predict(out / "best", files[1], tmp_path / "pred.tsv", FT.TaskOptions("custom"))
    lines = paths[0].read_text().splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == 25
    assert {line.split("\t")[1] for line in lines[1:]} <= {"neg", "pos"}


def test_resume_continues_bit_for_bit(files, tmp_path):
    opts = FT.TaskOptions("custom", max_seq_length=32)
    FT.finetune(MODEL, tmp_path / "full", *files, opts, fast(save_every=4, eval_every=5))

    class Killed(Exception):
        pass

    def kill_at_7(record):
        if record["step"] == 7:
            raise Killed
    with pytest.raises(Killed):
        FT.finetune(MODEL, tmp_path / "cut", *files, opts, fast(save_every=4, eval_every=5),
                    on_step=kill_at_7)
    FT.finetune(MODEL, tmp_path / "cut", *files, opts, fast(save_every=4, eval_every=5),
                resume=True)
    for d in ("model", "best"):
        a = load_safetensors(tmp_path / "full" / d / "model.safetensors")
        b = load_safetensors(tmp_path / "cut" / d / "model.safetensors")
        assert all(np.array_equal(a[k], b[k]) for k in a)
    strip = lambda p: [{k: v for k, v in json.loads(x).items()  # noqa: E731
                        if k not in ("seconds", "tokens_per_s")}
                       for x in p.read_text().splitlines()]
    assert strip(tmp_path / "full" / "metrics.jsonl") == strip(tmp_path / "cut" / "metrics.jsonl")
    with pytest.raises(ValueError, match="is not empty .* --resume"):
        FT.finetune(MODEL, tmp_path / "cut", *files, opts, fast())
    FT.finetune(MODEL, tmp_path / "cut", *files, opts, fast(max_steps=2,
                                                             overwrite_output_dir=True))
    assert json.loads((tmp_path / "cut" / FT.RESULTS_NAME).read_text())["steps"] == 2


def test_regression_has_one_output_and_mse(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["sentence\tlabel"]
    for _ in range(40):
        k = int(rng.integers(0, 5))
        rows.append(f"{' '.join(['up'] * k + list(rng.choice(WORDS, 5 - k)))}\t{k / 2}")
    path = tmp_path / "r.tsv"
    path.write_text("\n".join(rows) + "\n")
    s = FT.finetune(MODEL, tmp_path / "out", path, path, FT.TaskOptions("custom-regression"),
                    fast(epochs=4))
    res = s["results"]
    config = json.loads((tmp_path / "out" / "model" / "config.json").read_text())
    assert config["num_labels"] == 1
    assert set(res["best"]) == {"step", "pearson", "spearmanr", "corr"}
    assert res["best"]["corr"] > 0.5 and np.isnan(res["baseline"]["corr"])
    log = [json.loads(x) for x in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert np.mean([r["loss"] for r in log[-5:]]) < np.mean([r["loss"] for r in log[:5]])


def squad_json(path: Path, n: int, seed: int) -> Path:
    """Contexts naming a colour; the question asks for it; every third is unanswerable."""
    rng = np.random.default_rng(seed)
    paragraphs = []
    for i in range(n):
        colour = str(rng.choice(["red", "blue", "green"]))
        filler = " ".join(rng.choice(WORDS, 12))
        context = f"{filler} the colour is {colour} . {filler}"
        start = context.index(f"is {colour}") + 3
        impossible = i % 3 == 2
        answers = [] if impossible else [{"text": colour, "answer_start": start}]
        q = "what is the size ?" if impossible else "what is the colour ?"
        paragraphs.append({"context": context, "qas": [
            {"id": f"q{i}", "question": q, "answers": answers, "is_impossible": impossible}]})
    path.write_text(json.dumps({"version": "v2.0", "data": [{"title": "t",
                                                              "paragraphs": paragraphs}]}))
    return path


def test_squad_v2_finetune_evaluate_predict(tmp_path):
    train, dev = squad_json(tmp_path / "train.json", 30, 0), squad_json(tmp_path / "dev.json", 9, 1)
    opts = FT.TaskOptions("squad-v2", max_seq_length=24, doc_stride=8, max_query_length=8)
    s = FT.finetune(MODEL, tmp_path / "run", train, dev, opts, fast(epochs=2))
    res = s["results"]
    assert res["train_features"] > res["train_examples"] == 30     # several windows each
    assert res["baseline"]["exact"] == pytest.approx(100 * 3 / 9)  # all-null: 3 unanswerable
    assert {"exact", "f1", "HasAns_f1", "NoAns_f1", "best_f1", "best_f1_thresh"} <= set(
        res["best"])
    ev = FT.evaluate(tmp_path / "run" / "best", dev, FT.TaskOptions("squad-v2"), tmp_path / "ev")
    assert ev["metrics"]["f1"] == res["best"]["f1"]         # max_seq_length read from config
    names = sorted(p.name for p in (tmp_path / "ev").iterdir() if not p.name.startswith("."))
    assert names == ["eval_results.json", "nbest_predictions.json", "null_odds.json",
                     "predictions.json"]
    paths = FT.predict(tmp_path / "run" / "best", dev, tmp_path / "p" / "answers.json",
                       FT.TaskOptions("squad-v2"))
    assert [p.name for p in paths] == ["answers.json", "nbest_predictions.json",
                                       "null_odds.json"]
    assert set(json.loads(paths[0].read_text())) == {f"q{i}" for i in range(9)}


def test_finetuned_directories_load_in_transformers_with_the_same_logits(trained, tmp_path):
    """What `finetune` writes (best/: config with id2label, finetuning_task and our window
    sizes) is a transformers checkpoint: MobileBertFor{SequenceClassification,QuestionAnswering}
    load it without missing or unexpected weights and give our logits. Needs torch +
    transformers (the parity test covers the reverse direction without them)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tinybert_core import load_model
    train = squad_json(tmp_path / "train.json", 12, 0)
    FT.finetune(MODEL, tmp_path / "qa", train, train, FT.TaskOptions(
        "squad-v2", max_seq_length=24, doc_stride=8, max_query_length=8), fast(epochs=1))
    rng = np.random.default_rng(0)
    inputs = {"input_ids": rng.integers(5, 1000, (3, 20)),
              "token_type_ids": np.repeat([[0] * 8 + [1] * 12], 3, axis=0),
              "attention_mask": np.ones((3, 20), np.int64)}
    inputs["attention_mask"][1, 14:] = 0
    cases = [(trained[0] / "best", "sequence_classification", ("logits",),
              transformers.MobileBertForSequenceClassification),
             (tmp_path / "qa" / "best", "question_answering", ("start_logits", "end_logits"),
              transformers.MobileBertForQuestionAnswering)]
    for directory, task, names, cls in cases:
        hf, info = cls.from_pretrained(str(directory), output_loading_info=True)
        assert not info["missing_keys"] and not info["unexpected_keys"], info
        hf.eval()
        with torch.no_grad():
            theirs = hf(**{k: torch.from_numpy(v) for k, v in inputs.items()})
        ours = load_model(directory, task).eval()(**inputs)
        for name in names:
            a, r = getattr(ours, name).numpy(), getattr(theirs, name).numpy()
            assert np.abs(a - r).max() <= 1e-5 * np.abs(r).max(), (task, name)
    assert hf.config.finetuning_task == "squad-v2"
    config = transformers.AutoConfig.from_pretrained(str(trained[0] / "best"))
    assert config.id2label == {0: "neg", 1: "pos"} and config.label2id == {"neg": 0, "pos": 1}


def test_a_saved_label_order_wins(trained, files, tmp_path):
    """The same classifier with its outputs and id2label swapped scores the same."""
    out, _ = trained
    swapped = tmp_path / "swapped"
    shutil.copytree(out / "best", swapped)
    w = load_safetensors(swapped / "model.safetensors")
    for k in ("classifier.weight", "classifier.bias"):
        w[k] = w[k][::-1].copy()
    save_safetensors(swapped / "model.safetensors", w)
    config = json.loads((swapped / "config.json").read_text())
    config["id2label"], config["label2id"] = {"0": "pos", "1": "neg"}, {"pos": 0, "neg": 1}
    (swapped / "config.json").write_text(json.dumps(config))
    a = FT.evaluate(out / "best", files[1], FT.TaskOptions("custom"), tmp_path / "a")
    b = FT.evaluate(swapped, files[1], FT.TaskOptions("custom"), tmp_path / "b")
    assert a["metrics"] == b["metrics"]


# ----------------------------------------------------------------------------- bad input

def test_bad_inputs_stop_before_anything_is_written(trained, files, tmp_path):
    train, dev = files
    out = tmp_path / "out"
    bad_label = tmp_path / "bad.tsv"
    bad_label.write_text(train.read_text().replace("\tpos\n", "\tmaybe\n", 1))
    empty = tmp_path / "empty.tsv"
    empty.write_text("index\tsentence1\tsentence2\tlabel\n")
    ragged = tmp_path / "ragged.tsv"
    ragged.write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tpos\n")
    squad_bad = tmp_path / "s.json"
    squad_bad.write_text(json.dumps({"data": [{"paragraphs": [{"context": "abc", "qas": [
        {"id": "x", "question": "q", "answers": [{"text": "bc", "answer_start": 0}]}]}]}]}))
    cases = [
        (lambda: FT.finetune(MODEL, out, train, dev, FT.TaskOptions("mnly"), fast()),
         "unknown task 'mnly'"),
        (lambda: FT.finetune(MODEL, out, ragged, dev, FT.TaskOptions("rte"), fast()),
         r"ragged.tsv, line 2: expected 4 columns"),
        (lambda: FT.finetune(MODEL, out, bad_label, dev, FT.TaskOptions("rte"), fast()),
         r"bad.tsv, line \d+: label 'neg' is not one of task rte's labels"),
        (lambda: FT.finetune(MODEL, out, train, empty, FT.TaskOptions("custom"), fast()),
         r"empty.tsv: no examples"),
        (lambda: FT.finetune(MODEL, out, squad_bad, None, FT.TaskOptions("squad"), fast()),
         r"s.json: question 'x': answer 'bc' does not match the context at answer_start 0"),
        (lambda: FT.finetune(MODEL, out, train, dev, FT.TaskOptions("custom",
                                                                    max_seq_length=128), fast()),
         r"max_seq_length 128 exceeds the model's max_position_embeddings 64"),
        (lambda: FT.evaluate(trained[0] / "best", dev, FT.TaskOptions("mnli"), out),
         r"the model has num_labels 2 but task mnli has 3"),
        (lambda: FT.evaluate(trained[0] / "best", dev, FT.TaskOptions("rte"), out),
         r"the model's labels \(neg, pos\) are not task rte's"),
        (lambda: FT.evaluate(trained[0] / "best", dev, FT.TaskOptions("squad"), out),
         r"no trained question answering head"),
        (lambda: FT.evaluate(MODEL, dev, FT.TaskOptions("custom", labels=["neg", "pos"]), out),
         r"no trained sequence classification head"),
        (lambda: FT.finetune(trained[0] / "best", out, train, dev, FT.TaskOptions("mnli"),
                             fast()), r"the model has num_labels 2 but task mnli has 3"),
    ]
    for work, message in cases:
        with pytest.raises(ValueError, match=message):
            work()
        assert not out.exists(), message


def test_custom_task_labels(files, tmp_path):
    with pytest.raises(ValueError, match=r"label 'neg' is not one of task custom's labels "
                                         r"\(pos, other\)"):
        FT.finetune(MODEL, tmp_path / "o", *files, FT.TaskOptions("custom",
                                                                  labels=["pos", "other"]),
                    fast())



def test_a_diverging_finetune_names_the_first_non_finite_module(files, tmp_path):
    """At lr 1e30 the first update leaves finite but huge weights and the next forward
    overflows: the divergence message locates the module on a fine-tuning batch too (it could
    replay only pre-training batches before), and no checkpoint is written."""
    with pytest.raises(TrainingDiverged,
                       match=r"training diverged at step 2 \(stage finetune\): non-finite "
                             r"loss terms: loss; first non-finite output of the student: "
                             r"(mobilebert\.|classifier)"):
        FT.finetune(MODEL, tmp_path / "run", *files, FT.TaskOptions("custom", max_seq_length=32),
                    fast(lr=1e30, warmup_ratio=0.0))
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


class _Captured(Exception):
    pass


@pytest.mark.parametrize("eps", [None, 1e-6])
def test_adamw_epsilon_reaches_the_optimizer(monkeypatch, files, tmp_path, eps):
    """HF Trainer's 1e-8 by default (Google's 1e-6 stalled a 4-layer BERT on epistemic at the
    majority class: docs/finetuning.md), or what --adam-epsilon says."""
    seen = {}

    def capture(model, args, *a, **kw):
        seen["eps"], seen["optimizer"] = args.adam_epsilon, args.optimizer
        raise _Captured

    monkeypatch.setattr(FT, "train", capture)
    kw = {} if eps is None else {"adam_epsilon": eps}
    with pytest.raises(_Captured):
        FT.finetune(MODEL, tmp_path / "run", *files, FT.TaskOptions("custom", max_seq_length=32),
                    fast(**kw))
    assert seen == {"eps": 1e-8 if eps is None else eps, "optimizer": "adamw"}
