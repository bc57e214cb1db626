"""GLUE task files in their official layouts, the generic user format, labels, task names,
and the resumable task batches."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from paths import SHARED_DATA
from tinybert_core.data.glue import TaskExample, check_labels, labels_in, read_task_file
from tinybert_core.data.tasks import (
    TaskBatches,
    eval_batches,
    pad_rows,
    resolve_task,
)
from tinybert_core.evaluation.glue import get_task

# One training row per task, in the task's official layout (header as in the GLUE download).
OFFICIAL = {
    "cola": ("", "gj04\t1\t\tOur friends won't buy this analysis.\n"
                 "gj04\t0\t*\tThey drank the pub.\n", ("Our friends won't buy this analysis.",
                                                       None, "1")),
    "sst-2": ("sentence\tlabel\n", "hide new secretions \t0\n",
              ("hide new secretions ", None, "0")),
    "mrpc": ("\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n",
             "1\t702876\t702977\tAmrozi accused his brother .\tReferring to him .\n",
             ("Amrozi accused his brother .", "Referring to him .", "1")),
    "sts-b": ("index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\t"
              "sentence2\tscore\n",
              "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane is taking off.\t"
              "An air plane is taking off.\t5.000\n",
              ("A plane is taking off.", "An air plane is taking off.", "5.000")),
    "qqp": ("id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n",
            "133273\t213221\t213222\tHow is the life?\tHow is life?\t0\n",
            ("How is the life?", "How is life?", "0")),
    "mnli": ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
             "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n",
             "0\t31193\t31193n\tgovernment\t( a )\t( b )\t(ROOT a)\t(ROOT b)\t"
             "Conceptually cream skimming.\tProduct and geography.\tneutral\tneutral\n",
             ("Conceptually cream skimming.", "Product and geography.", "neutral")),
    "qnli": ("index\tquestion\tsentence\tlabel\n",
             "0\tWhat came into force?\tThe law came into force.\tentailment\n",
             ("What came into force?", "The law came into force.", "entailment")),
    "rte": ("index\tsentence1\tsentence2\tlabel\n",
            "0\tNo weapons were found.\tWeapons were found.\tnot_entailment\n",
            ("No weapons were found.", "Weapons were found.", "not_entailment")),
    "wnli": ("index\tsentence1\tsentence2\tlabel\n",
             "0\tI stuck a pin through a carrot.\tThe carrot had a hole.\t1\n",
             ("I stuck a pin through a carrot.", "The carrot had a hole.", "1")),
}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("task", sorted(OFFICIAL))
def test_every_glue_task_reads_its_official_layout(tmp_path, task):
    header, rows, (a, b, label) = OFFICIAL[task]
    examples = read_task_file(write(tmp_path, "train.tsv", header + rows), task)
    first = examples[0]
    assert (first.text_a, first.text_b, first.label) == (a, b, label)
    assert first.line == (1 if not header else 2)
    ids = check_labels("train.tsv", examples, get_task(task))
    if task == "sts-b":
        assert ids.dtype == np.float32 and ids[0] == 5.0
    else:
        assert ids.dtype == np.int64 and get_task(task).labels[ids[0]] == label


def test_test_files_without_labels(tmp_path):
    cola = read_task_file(write(tmp_path, "test.tsv", "index\tsentence\n0\tBill left.\n"), "cola")
    assert (cola[0].text_a, cola[0].label) == ("Bill left.", None)
    mnli = read_task_file(write(tmp_path, "t.tsv", "index\tsentence1\tsentence2\n0\tA\tB\n"),
                          "mnli")
    assert (mnli[0].text_a, mnli[0].text_b, mnli[0].label) == ("A", "B", None)
    with pytest.raises(ValueError, match=r"t.tsv, line 2: no label"):
        check_labels(tmp_path / "t.tsv", mnli, get_task("mnli"))


def test_generic_tsv_csv_and_jsonl(tmp_path):
    tsv = write(tmp_path, "a.tsv", "label\tsentence\ngood\tnice film\nbad\tawful\n")
    csv_ = write(tmp_path, "a.csv", 'sentence1,sentence2,label\n"a, b",c,x\nd,e,y\n')
    jsonl = write(tmp_path, "a.jsonl", '{"sentence": "hi", "label": 1}\n\n'
                                       '{"sentence1": "p", "sentence2": "q", "label": 0}\n')
    assert [(e.text_a, e.label) for e in read_task_file(tsv, "custom")] == [
        ("nice film", "good"), ("awful", "bad")]
    assert [(e.text_a, e.text_b) for e in read_task_file(csv_, "custom")] == [
        ("a, b", "c"), ("d", "e")]
    ex = read_task_file(jsonl, "custom")
    assert [(e.text_a, e.text_b, e.label, e.line) for e in ex] == [
        ("hi", None, 1, 1), ("p", "q", 0, 3)]
    assert labels_in(ex) == ["0", "1"]
    # a GLUE task in the generic layout (the shared vitaminc/epistemic files' header)
    rte = read_task_file(write(tmp_path, "r.tsv", "index\tsentence1\tsentence2\tlabel\n"
                                                  "0\tx\ty\tentailment\n"), "mnli")
    assert rte[0].label == "entailment"


@pytest.mark.parametrize("name, text, task, message", [
    ("bad.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tentailment\n",
     "rte", r"bad.tsv, line 3: expected 4 columns \(the header's\), got 3"),
    ("cola.tsv", "gj04\t1\t\tOk.\ngj04\t1\tOk.\n", "cola", r"cola.tsv, line 2: expected 4"),
    ("empty.tsv", "index\tsentence1\tsentence2\tlabel\n", "rte", r"empty.tsv: no examples"),
    ("blank.tsv", "", "rte", r"blank.tsv: no examples"),
    ("notext.tsv", "a\tb\n1\t2\n", "custom", r"notext.tsv: the header \['a', 'b'\] names no"),
    ("bad.jsonl", '{"sentence": "a"}\n[1]\n', "custom", r"bad.jsonl, line 2: expected a JSON"),
    ("bad2.jsonl", '{"sentence": "a"}\n{oops\n', "custom", r"bad2.jsonl, line 2: not valid"),
])
def test_malformed_files_name_the_file_and_line(tmp_path, name, text, task, message):
    with pytest.raises(ValueError, match=message):
        read_task_file(write(tmp_path, name, text), task)


def test_labels_outside_the_task_are_errors(tmp_path):
    path = write(tmp_path, "d.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n"
                                    "1\ta\tb\tcontradiction\n")
    with pytest.raises(ValueError, match=r"d.tsv, line 3: label 'contradiction' is not one of "
                                         r"task rte's labels \(entailment, not_entailment\)"):
        check_labels(path, read_task_file(path, "rte"), get_task("rte"))
    sts = write(tmp_path, "s.tsv", "sentence1\tsentence2\tscore\na\tb\tfive\n")
    with pytest.raises(ValueError, match=r"s.tsv, line 2: the label 'five' is not a number"):
        check_labels(sts, read_task_file(sts, "sts-b"), get_task("sts-b"))
    nan = write(tmp_path, "n.tsv", "sentence1\tsentence2\tscore\na\tb\tnan\n")
    with pytest.raises(ValueError, match="not finite"):
        check_labels(nan, read_task_file(nan, "sts-b"), get_task("sts-b"))


def test_a_model_label_order_maps_labels():
    ex = TaskExample("a", "b", "neutral", 2)
    ids = check_labels("f", [ex], get_task("mnli"),
                       label2id={"entailment": 0, "neutral": 1, "contradiction": 2})
    assert ids.tolist() == [1]


def test_task_names():
    assert resolve_task("SST2").name == "sst-2"
    assert resolve_task("squad").squad_version == "1.1"
    assert resolve_task("squad_v2").squad_version == "2.0"
    assert resolve_task("squad-v2").model_task == "question_answering"
    assert resolve_task("custom").glue_task(["b", "a"]).labels == ("b", "a")
    assert resolve_task("custom-regression").glue_task().num_labels == 1
    with pytest.raises(ValueError, match=r"unknown task 'mnly'; known tasks: cola, .*squad-v2"):
        resolve_task("mnly")


@pytest.mark.skipif(not (SHARED_DATA / "glue").is_dir(), reason="needs ../shared/data")
@pytest.mark.parametrize("name, task, counts", [
    ("vitaminc", "mnli", {"contradiction": 722, "entailment": 996, "neutral": 282}),
    ("epistemic", "rte", {"entailment": 148, "not_entailment": 252}),
])
def test_shared_glue_tasks(name, task, counts):
    path = SHARED_DATA / "glue" / name / "dev.tsv"
    examples = read_task_file(path, task)
    ids = check_labels(path, examples, get_task(task))
    labels = get_task(task).labels
    assert Counter(labels[i] for i in ids) == counts
    assert all(e.text_a and e.text_b for e in examples)


def test_task_batches_cover_each_epoch_and_resume_exactly():
    make = lambda idx: np.asarray(idx)  # noqa: E731
    a = TaskBatches(make, 10, 4, seed=3)
    assert a.steps_per_epoch == 3
    epoch0 = [next(a) for _ in range(3)]
    assert sorted(np.concatenate(epoch0).tolist()) == list(range(10))
    assert [len(b) for b in epoch0] == [4, 4, 2]
    epoch1 = [next(a) for _ in range(3)]
    assert not all(np.array_equal(x, y) for x, y in zip(epoch0, epoch1))
    b = TaskBatches(make, 10, 4, seed=3)
    for _ in range(4):
        next(b)
    state = b.state()
    c = TaskBatches(make, 10, 4, seed=3)
    c.load_state(state)
    assert all(np.array_equal(next(b), next(c)) for _ in range(7))
    for other, field in ((TaskBatches(make, 11, 4, seed=3), "n"),
                         (TaskBatches(make, 10, 5, seed=3), "batch_size"),
                         (TaskBatches(make, 10, 4, seed=4), "seed")):
        with pytest.raises(ValueError, match="differs: the checkpoint's run had") as e:
            other.load_state(state)
        assert e.value.field == field


def test_padding_and_eval_order():
    ids, mask = pad_rows([np.array([5, 6, 7]), np.array([8])], pad=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    seen = [idx.tolist() for idx, _ in eval_batches(lambda i: i, [5, 1, 3, 1], 3)]
    assert seen == [[1, 3, 2], [0]]
