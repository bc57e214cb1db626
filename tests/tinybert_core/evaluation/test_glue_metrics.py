"""GLUE metrics: hand-computed cases, independent plain-Python/NumPy computations on drawn
inputs, and scikit-learn / SciPy / HF `glue_compute_metrics` where installed (skipped if not)."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinybert_core.evaluation.glue import (
    CLASSIFICATION,
    GLUE_TASKS,
    REGRESSION,
    custom_task,
    get_task,
    glue_compute_metrics,
    majority_baseline,
    predictions_from_logits,
)
from tinybert_core.evaluation.metrics import (
    accuracy,
    f1_score,
    matthews_corrcoef,
    pearson_corr,
    rankdata,
    spearman_corr,
)

# ----------------------------------------------------------------------------- strategies


def class_pairs(num_classes: int, max_size: int = 60):
    """(preds, labels) int arrays of one length drawn from 0..num_classes-1."""
    return st.integers(1, max_size).flatmap(lambda n: st.tuples(
        st.lists(st.integers(0, num_classes - 1), min_size=n, max_size=n),
        st.lists(st.integers(0, num_classes - 1), min_size=n, max_size=n),
    )).map(lambda pl: (np.array(pl[0]), np.array(pl[1])))


def tied_float_pairs(max_size: int = 40):
    """Float pairs drawn from a few values (so ties are common) or from a wide range."""
    value = st.one_of(st.sampled_from([0.0, 0.5, 1.0, 2.5, 5.0]),
                      st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False))
    return st.integers(3, max_size).flatmap(lambda n: st.tuples(
        st.lists(value, min_size=n, max_size=n), st.lists(value, min_size=n, max_size=n),
    )).map(lambda xy: (np.array(xy[0]), np.array(xy[1])))


# ----------------------------------------------------------------------------- hand-computed

def test_accuracy_by_hand():
    assert accuracy([1, 0, 2, 2], [1, 1, 2, 0]) == 0.5
    assert accuracy(np.array([1.0, 0.0]), np.array([1, 0])) == 1.0  # integral floats are ids


def test_f1_by_hand():
    # TP = 2 (positions 0, 3), FP = 1 (position 2), FN = 1 (position 4): 2*2 / (4 + 1 + 1)
    assert f1_score([1, 0, 1, 1, 0], [1, 0, 0, 1, 1]) == pytest.approx(4 / 6, abs=1e-15)
    assert f1_score([0, 0, 0], [0, 0, 0]) == 0.0  # no positives at all: sklearn's 0.0
    assert f1_score([0, 0], [1, 1]) == 0.0  # no predicted positive
    assert f1_score([True, False], [1, 0]) == 1.0


def test_mcc_binary_by_hand():
    # labels 1 1 1 0 0 0 0 0, preds 1 1 0 1 0 0 0 0: TP 2, FN 1, FP 1, TN 4
    labels = [1, 1, 1, 0, 0, 0, 0, 0]
    preds = [1, 1, 0, 1, 0, 0, 0, 0]
    expected = (2 * 4 - 1 * 1) / math.sqrt((2 + 1) * (2 + 1) * (4 + 1) * (4 + 1))
    assert matthews_corrcoef(preds, labels) == pytest.approx(expected, abs=1e-15)
    assert matthews_corrcoef(labels, labels) == 1.0
    assert matthews_corrcoef([1 - v for v in labels], labels) == -1.0


def test_mcc_multiclass_by_hand():
    # labels 0 1 2 2 1, preds 0 2 2 1 1: c = 3 correct of s = 5; true counts t = (1, 2, 2),
    # predicted counts p = (1, 2, 2); (c s - t.p) / sqrt((s^2 - p.p)(s^2 - t.t)) = 6 / 16
    assert matthews_corrcoef([0, 2, 2, 1, 1], [0, 1, 2, 2, 1]) == pytest.approx(0.375, abs=1e-15)


def test_mcc_degenerate_denominators_are_zero_as_in_sklearn():
    assert matthews_corrcoef([1, 1, 1], [1, 1, 1]) == 0.0  # one class everywhere
    assert matthews_corrcoef([0, 1, 1], [1, 1, 1]) == 0.0  # labels constant
    assert matthews_corrcoef([1, 1, 1], [0, 1, 0]) == 0.0  # predictions constant


def test_rankdata_averages_ties():
    np.testing.assert_array_equal(rankdata([10, 20, 20, 30]), [1, 2.5, 2.5, 4])
    np.testing.assert_array_equal(rankdata([3, 1, 3, 3]), [3, 1, 3, 3])  # (2 + 3 + 4) / 3
    np.testing.assert_array_equal(rankdata([2.0, -1.0]), [2, 1])


def test_pearson_and_spearman_by_hand():
    # x = 1 2 3, y = 1 2 4: centred (-1 0 1) and (-4/3 -1/3 5/3); r = 3 / sqrt(2 * 42/9)
    assert pearson_corr([1, 2, 3], [1, 2, 4]) == pytest.approx(3 / math.sqrt(2 * 42 / 9),
                                                                abs=1e-15)
    assert spearman_corr([1, 2, 3], [1, 2, 4]) == pytest.approx(1.0, abs=1e-15)
    # ranks of (1 2 2 3) and (1 3 2 2): (1, 2.5, 2.5, 4) and (1, 4, 2.5, 2.5), centred
    # (-1.5 0 0 1.5) and (-1.5 1.5 0 0): r = 2.25 / (sqrt(4.5) sqrt(4.5)) = 0.5
    assert spearman_corr([1, 2, 2, 3], [1, 3, 2, 2]) == pytest.approx(0.5, abs=1e-15)


def test_correlations_of_degenerate_inputs_follow_scipy():
    assert math.isnan(pearson_corr([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    assert math.isnan(spearman_corr([1.0, 2.0, 3.0], [4.0, 4.0, 4.0]))
    assert math.isnan(pearson_corr([1.0, np.nan, 3.0], [1.0, 2.0, 3.0]))
    assert math.isnan(spearman_corr([1.0, np.nan, 3.0], [1.0, 2.0, 3.0]))
    assert pearson_corr([1.0, 2.0], [5.0, 1.0]) == -1.0  # exactly, as SciPy promises for n = 2
    assert pearson_corr([1e200, -1e200, 3e199], [1.0, -1.0, 0.3]) == pytest.approx(1.0)


@pytest.mark.parametrize("fn", [accuracy, f1_score, matthews_corrcoef, pearson_corr,
                                spearman_corr])
def test_shape_errors_name_the_metric(fn):
    with pytest.raises(ValueError, match=rf"{fn.__name__}: .*preds \(3,\) and labels \(2,\)"):
        fn([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match=rf"{fn.__name__}: preds and labels are empty"):
        fn([], [])
    with pytest.raises(ValueError, match=rf"{fn.__name__}: .*1-d"):
        fn([[1, 0]], [[1, 0]])


def test_class_id_errors():
    with pytest.raises(ValueError, match=r"f1_score: binary F1 needs preds in \{0, 1\}, got 2"):
        f1_score([0, 2], [0, 1])
    with pytest.raises(ValueError, match=r"accuracy: labels must hold integer class ids"):
        accuracy([0, 1], [0.5, 1.0])
    with pytest.raises(ValueError, match=r"accuracy: preds must hold integer class ids, got "
                                         r"dtype <U1"):
        accuracy(["a", "b"], [0, 1])
    with pytest.raises(ValueError, match=r"pearson_corr: needs at least 2 values, got 1"):
        pearson_corr([1.0], [2.0])


# ----------------------------------------------------------------------------- independent

def _mcc_binary_expected(preds, labels) -> float:
    tp = sum(1 for p, y in zip(preds, labels) if p == 1 and y == 1)
    tn = sum(1 for p, y in zip(preds, labels) if p == 0 and y == 0)
    fp = sum(1 for p, y in zip(preds, labels) if p == 1 and y == 0)
    fn = sum(1 for p, y in zip(preds, labels) if p == 0 and y == 1)
    denominator = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    return 0.0 if denominator == 0 else (tp * tn - fp * fn) / math.sqrt(denominator)


def _f1_expected(preds, labels) -> float:
    tp = sum(1 for p, y in zip(preds, labels) if p == 1 and y == 1)
    predicted, actual = sum(preds), sum(labels)
    if tp == 0:
        return 0.0
    precision, recall = tp / predicted, tp / actual
    return 2 * precision * recall / (precision + recall)


def _average_ranks_expected(x) -> list[float]:
    """O(n^2): the rank of v is (number below v) + (number equal to v + 1) / 2."""
    return [sum(u < v for u in x) + (sum(u == v for u in x) + 1) / 2 for v in x]


@given(class_pairs(2))
def test_binary_metrics_equal_their_textbook_formulas(pair):
    preds, labels = pair
    assert matthews_corrcoef(preds, labels) == pytest.approx(
        _mcc_binary_expected(preds.tolist(), labels.tolist()), abs=1e-12)
    assert f1_score(preds, labels) == pytest.approx(
        _f1_expected(preds.tolist(), labels.tolist()), abs=1e-12)
    assert accuracy(preds, labels) == pytest.approx(float(np.mean(preds == labels)), abs=0)


@given(tied_float_pairs())
def test_correlations_equal_corrcoef_of_values_and_of_average_ranks(pair):
    x, y = pair
    np.testing.assert_array_equal(rankdata(x), _average_ranks_expected(x.tolist()))
    constant = np.all(x == x[0]) or np.all(y == y[0])
    if constant:
        assert math.isnan(pearson_corr(x, y)) and math.isnan(spearman_corr(x, y))
        return
    with np.errstate(all="ignore"):
        expected_pearson = np.corrcoef(x, y)[0, 1]
        rx, ry = _average_ranks_expected(x.tolist()), _average_ranks_expected(y.tolist())
        expected_spearman = np.corrcoef(rx, ry)[0, 1]
    assert pearson_corr(x, y) == pytest.approx(expected_pearson, abs=1e-9)
    assert spearman_corr(x, y) == pytest.approx(expected_spearman, abs=1e-12)


# ----------------------------------------------------------------------------- references

@given(class_pairs(4))
def test_accuracy_and_mcc_equal_sklearn(pair):
    sk = pytest.importorskip("sklearn.metrics")
    preds, labels = pair
    assert accuracy(preds, labels) == sk.accuracy_score(labels, preds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = sk.matthews_corrcoef(labels, preds)
    assert matthews_corrcoef(preds, labels) == pytest.approx(expected, abs=1e-12)


@given(class_pairs(2))
def test_binary_f1_and_mcc_equal_sklearn(pair):
    sk = pytest.importorskip("sklearn.metrics")
    preds, labels = pair
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns on its zero-division cases
        expected_f1 = sk.f1_score(y_true=labels, y_pred=preds, labels=[0, 1])
        expected_mcc = sk.matthews_corrcoef(labels, preds)
    assert f1_score(preds, labels) == pytest.approx(expected_f1, abs=1e-12)
    assert matthews_corrcoef(preds, labels) == pytest.approx(expected_mcc, abs=1e-12)


@given(tied_float_pairs())
def test_correlations_and_ranks_equal_scipy(pair):
    stats = pytest.importorskip("scipy.stats")
    x, y = pair
    np.testing.assert_array_equal(rankdata(x), stats.rankdata(x, method="average"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConstantInputWarning / NearConstantInputWarning
        expected_pearson = float(stats.pearsonr(x, y)[0])
        expected_spearman = float(stats.spearmanr(x, y)[0])
    np.testing.assert_allclose(pearson_corr(x, y), expected_pearson, rtol=0, atol=1e-12)
    np.testing.assert_allclose(spearman_corr(x, y), expected_spearman, rtol=0, atol=1e-12)


def test_glue_compute_metrics_equals_hf_when_importable():
    hf = pytest.importorskip("transformers.data.metrics")  # gone in transformers 5
    pytest.importorskip("sklearn")
    if not hasattr(hf, "glue_compute_metrics"):
        pytest.skip("transformers.data.metrics has no glue_compute_metrics")
    rng = np.random.default_rng(0)
    for name in GLUE_TASKS:
        task = get_task(name)
        for n in (1, 7, 200):
            if task.output_mode == REGRESSION:
                n = max(n, 3)
                labels = rng.integers(0, 6, n).astype(np.float64)  # STS-B: 0..5, many ties
                preds = rng.normal(2.5, 1.5, n).round(1)
            else:
                labels = rng.integers(0, task.num_labels, n)
                preds = rng.integers(0, task.num_labels, n)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                expected = hf.glue_compute_metrics(name, preds, labels)
            ours = glue_compute_metrics(name, preds, labels)
            assert list(ours) == list(expected), name
            for key in ours:
                np.testing.assert_allclose(ours[key], float(expected[key]), rtol=0, atol=1e-12,
                                           err_msg=f"{name} {key} n={n}")


# ----------------------------------------------------------------------------- the task table

def test_task_table_matches_hf_processors_and_metric_keys():
    keys = {
        "cola": ["mcc"], "sst-2": ["acc"], "mrpc": ["acc", "f1", "acc_and_f1"],
        "sts-b": ["pearson", "spearmanr", "corr"], "qqp": ["acc", "f1", "acc_and_f1"],
        "mnli": ["mnli/acc"], "mnli-mm": ["mnli-mm/acc"], "qnli": ["acc"], "rte": ["acc"],
        "wnli": ["acc"],
    }
    assert list(GLUE_TASKS) == list(keys)
    for name, expected_keys in keys.items():
        task = GLUE_TASKS[name]
        labels = np.array([0, 1, 1, 0]) if task.labels else np.array([0.0, 1.5, 3.0, 5.0])
        preds = np.array([0, 1, 0, 0]) if task.labels else np.array([0.5, 1.0, 3.5, 4.0])
        assert list(task.compute_metrics(preds, labels)) == expected_keys
        assert task.main_metric in expected_keys
    assert GLUE_TASKS["mnli"].labels == ("contradiction", "entailment", "neutral")
    assert GLUE_TASKS["qnli"].labels == GLUE_TASKS["rte"].labels == ("entailment",
                                                                     "not_entailment")
    for name in ("cola", "sst-2", "mrpc", "qqp", "wnli"):
        assert GLUE_TASKS[name].labels == ("0", "1")
    stsb = GLUE_TASKS["sts-b"]
    assert (stsb.output_mode, stsb.num_labels, stsb.id2label) == (REGRESSION, 1, {0: "LABEL_0"})
    mnli = GLUE_TASKS["mnli"]
    assert mnli.label2id == {"contradiction": 0, "entailment": 1, "neutral": 2}
    assert mnli.id2label == {0: "contradiction", 1: "entailment", 2: "neutral"}


def test_task_names_and_aliases():
    assert get_task("SST-2") is get_task("sst2") is GLUE_TASKS["sst-2"]
    assert get_task("STS-B") is get_task("stsb") is GLUE_TASKS["sts-b"]
    assert get_task("mnli_matched") is get_task("MNLI-m") is GLUE_TASKS["mnli"]
    assert get_task("mnli_mismatched") is GLUE_TASKS["mnli-mm"]
    with pytest.raises(ValueError, match=r"unknown GLUE task 'squad'; known tasks: cola, sst-2"):
        get_task("squad")


def test_class_ids_outside_the_label_list_are_an_error():
    with pytest.raises(ValueError, match=r"mnli: labels holds class id 3 outside 0..2 "
                                         r"\(contradiction, entailment, neutral\)"):
        glue_compute_metrics("mnli", [0, 1], [0, 3])
    with pytest.raises(ValueError, match=r"cola: preds holds class id -1"):
        glue_compute_metrics("cola", [-1, 1], [0, 1])


def test_predictions_from_logits():
    mnli = get_task("mnli")
    np.testing.assert_array_equal(
        predictions_from_logits(mnli, [[0.1, 2.0, -1.0], [3.0, 0.0, 0.0]]), [1, 0])
    np.testing.assert_array_equal(predictions_from_logits(get_task("stsb"), [[1.5], [2.5]]),
                                  [1.5, 2.5])
    with pytest.raises(ValueError, match=r"mnli: logits must be \(N, 3\), got \(2, 2\)"):
        predictions_from_logits(mnli, np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"sts-b: regression logits must be"):
        predictions_from_logits(get_task("stsb"), np.zeros((2, 2)))


def test_majority_baseline():
    rte = get_task("rte")
    # train: class 1 three times, class 0 twice -> predict 1 everywhere; eval: 1 1 0 0 1
    assert majority_baseline(rte, [1, 0, 1, 0, 1], [1, 1, 0, 0, 1]) == {"acc": 0.6}
    # a tie goes to the lowest id
    assert majority_baseline(rte, [1, 0], [0, 0, 1]) == {"acc": pytest.approx(2 / 3)}
    mrpc = majority_baseline(get_task("mrpc"), [1, 1, 0], [1, 0, 1, 1])
    assert mrpc == {"acc": 0.75, "f1": pytest.approx(6 / 7), "acc_and_f1": pytest.approx(
        (0.75 + 6 / 7) / 2)}
    assert majority_baseline(get_task("cola"), [0, 0, 1], [0, 1, 1]) == {"mcc": 0.0}
    stsb = majority_baseline(get_task("sts-b"), [1.0, 2.0], [0.0, 4.0, 5.0])
    assert all(math.isnan(v) for v in stsb.values())
    with pytest.raises(ValueError, match=r"rte: no training labels"):
        majority_baseline(rte, [], [0, 1])


def test_custom_task():
    vitaminc = custom_task("vitaminc", ["contradiction", "entailment", "neutral"])
    assert (vitaminc.output_mode, vitaminc.num_labels, vitaminc.main_metric) == (
        CLASSIFICATION, 3, "acc")
    assert vitaminc.compute_metrics([0, 1, 2, 2], [0, 1, 1, 2]) == {"acc": 0.75}
    scores = custom_task("similarity", None)
    assert list(scores.compute_metrics([1.0, 2.0, 3.0], [1.0, 3.0, 2.0])) == [
        "pearson", "spearmanr", "corr"]
    with pytest.raises(ValueError, match=r"task 'x': duplicate labels in \['a', 'a'\]"):
        custom_task("x", ["a", "a"])
    with pytest.raises(ValueError, match=r"task 'x': a classification task needs at least 2"):
        custom_task("x", ["a"])
