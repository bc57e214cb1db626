"""Classification and regression metrics in plain NumPy: accuracy, binary F1, Matthews
correlation, Pearson and Spearman correlation.

These are the five numbers GLUE reports (Wang et al., 2019; `glue.py` combines them per task).
Hugging Face computes them with scikit-learn (`f1_score`, `matthews_corrcoef`) and SciPy
(`pearsonr`, `spearmanr`); we reimplement each so tinybert depends on neither, and the tests
compare every function with those libraries on random inputs (ties included) when installed.

Conventions, chosen to equal the reference libraries:
- Arguments are `(preds, labels)`, the order of HF's `glue_compute_metrics`. Only F1 cares: it
  is the F1 of the positive class 1, as `sklearn.metrics.f1_score(y_true=labels, y_pred=preds)`.
- Degenerate cases return what the references return: F1 with no true or predicted positive is
  0.0 (sklearn's `zero_division` default); MCC when the labels or the predictions hold a single
  class is 0.0 (sklearn); Pearson/Spearman of a constant input is NaN (SciPy, which also warns).
- Correlations are computed in float64 whatever the input dtype; a NaN anywhere gives NaN
  (SciPy's default `nan_policy="propagate"`), so a diverged regression run scores NaN rather than
  crashing the evaluation loop.
- Class labels must be integers (or floats with integral values); a length mismatch, an empty
  input or a 2-d array raises `ValueError` naming the metric and both shapes.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "accuracy",
    "f1_score",
    "matthews_corrcoef",
    "pearson_corr",
    "rankdata",
    "spearman_corr",
]


def _check_pair(fname: str, preds, labels) -> tuple[np.ndarray, np.ndarray]:
    """Return preds and labels as 1-d arrays of one length (>= 1), or raise ValueError."""
    p, y = np.asarray(preds), np.asarray(labels)
    if p.ndim != 1 or y.ndim != 1 or p.shape != y.shape:
        raise ValueError(f"{fname}: preds and labels must be 1-d and of one length, "
                         f"got preds {p.shape} and labels {y.shape}")
    if p.size == 0:
        raise ValueError(f"{fname}: preds and labels are empty")
    return p, y


def _as_class_ids(fname: str, name: str, a: np.ndarray) -> np.ndarray:
    """Integer class ids as int64; floats are accepted only when every value is integral."""
    if a.dtype == np.bool_ or np.issubdtype(a.dtype, np.integer):
        return a.astype(np.int64)
    if np.issubdtype(a.dtype, np.floating):
        integral = np.isfinite(a) & (a == np.round(a))
        if not np.all(integral):
            raise ValueError(f"{fname}: {name} must hold integer class ids, got non-integral "
                             f"values such as {a[~integral][0].item()!r}")
        return a.astype(np.int64)
    raise ValueError(f"{fname}: {name} must hold integer class ids, got dtype {a.dtype}")


def _class_pair(fname: str, preds, labels) -> tuple[np.ndarray, np.ndarray]:
    p, y = _check_pair(fname, preds, labels)
    return _as_class_ids(fname, "preds", p), _as_class_ids(fname, "labels", y)


def accuracy(preds, labels) -> float:
    """Fraction of predictions equal to their label: mean(preds == labels).

    HF's `simple_accuracy`; the GLUE metric of SST-2, MNLI, QNLI, RTE and WNLI.
    """
    p, y = _class_pair("accuracy", preds, labels)
    return float(np.mean(p == y))


def f1_score(preds, labels) -> float:
    """Binary F1 of the positive class 1: 2 TP / (2 TP + FP + FN).

    Equals `sklearn.metrics.f1_score(labels, preds)` (average="binary", pos_label=1), the GLUE
    metric of MRPC and QQP; 0.0 when there is no true and no predicted positive (TP + FP + FN
    = 0), as sklearn's default `zero_division`. Values other than 0 and 1 are an error, as in
    sklearn's binary mode.
    """
    p, y = _class_pair("f1_score", preds, labels)
    for name, a in (("preds", p), ("labels", y)):
        bad = a[(a != 0) & (a != 1)]
        if bad.size:
            raise ValueError(f"f1_score: binary F1 needs {name} in {{0, 1}}, got {bad[0].item()}")
    tp = int(np.sum((p == 1) & (y == 1)))
    fp = int(np.sum((p == 1) & (y == 0)))
    fn = int(np.sum((p == 0) & (y == 1)))
    denominator = 2 * tp + fp + fn
    return 0.0 if denominator == 0 else 2.0 * tp / denominator


def matthews_corrcoef(preds, labels) -> float:
    """Matthews correlation coefficient, for two or more classes (Gorodkin's R_K).

    From the confusion matrix C (rows: labels, columns: predictions), with t_k and p_k the
    true and predicted counts of class k, c = trace(C) and s = the number of samples:

        MCC = (c s - t.p) / sqrt((s^2 - p.p) (s^2 - t.t))

    which for two classes is (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)). When either
    factor of the denominator is 0 (all labels, or all predictions, one class) the result is
    0.0, as `sklearn.metrics.matthews_corrcoef` returns. The GLUE metric of CoLA.
    """
    p, y = _class_pair("matthews_corrcoef", preds, labels)
    classes, codes = np.unique(np.concatenate([y, p]), return_inverse=True)
    k, n = classes.size, y.size
    confusion = np.bincount(codes[:n] * k + codes[n:], minlength=k * k).reshape(k, k)
    t = confusion.sum(axis=1).astype(np.float64)  # true count per class
    q = confusion.sum(axis=0).astype(np.float64)  # predicted count per class
    correct, s = float(np.trace(confusion)), float(n)
    cov_yp = correct * s - t @ q
    cov_pp = s * s - q @ q
    cov_yy = s * s - t @ t
    if cov_pp * cov_yy == 0.0:
        return 0.0
    return float(cov_yp / np.sqrt(cov_yy * cov_pp))


def _float_pair(fname: str, x, y) -> tuple[np.ndarray, np.ndarray]:
    a, b = _check_pair(fname, x, y)
    if a.size < 2:
        raise ValueError(f"{fname}: needs at least 2 values, got {a.size}")
    try:
        return a.astype(np.float64), b.astype(np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{fname}: inputs must be numeric, got dtypes {a.dtype} and "
                         f"{b.dtype}") from e


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r of two float64 vectors of length >= 2 (no checks)."""
    if np.isnan(x).any() or np.isnan(y).any():
        return float("nan")
    if np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")  # undefined: a constant input has no variance
    if x.size == 2:  # exactly +-1, as SciPy promises, rather than 0.9999999999999998
        return float(np.sign((x[1] - x[0]) * (y[1] - y[0])))
    xm, ym = x - x.mean(), y - y.mean()
    # Scale by the largest deviation before the norm so huge inputs cannot overflow the squares.
    xm /= np.abs(xm).max()
    ym /= np.abs(ym).max()
    r = float(np.dot(xm / np.linalg.norm(xm), ym / np.linalg.norm(ym)))
    return min(max(r, -1.0), 1.0)  # rounding can step just outside [-1, 1]


def pearson_corr(preds, labels) -> float:
    """Pearson correlation: cov(x, y) / (std(x) std(y)), computed as the dot product of the
    two centred, unit-norm vectors, as `scipy.stats.pearsonr(...)[0]` does.

    NaN when either input is constant or holds a NaN (SciPy's values); at least 2 values.
    """
    x, y = _float_pair("pearson_corr", preds, labels)
    return _pearson(x, y)


def rankdata(a) -> np.ndarray:
    """Ranks 1..n of a 1-d array in float64, ties getting the average of the ranks they span.

    `scipy.stats.rankdata(a, method="average")`: [10, 20, 20, 30] -> [1, 2.5, 2.5, 4].
    """
    a = np.asarray(a)
    if a.ndim != 1:
        raise ValueError(f"rankdata: expected a 1-d array, got shape {a.shape}")
    n = a.size
    order = np.argsort(a, kind="stable")
    sorted_a = a[order]
    starts_group = np.ones(n, dtype=bool)
    starts_group[1:] = sorted_a[1:] != sorted_a[:-1]
    group = np.cumsum(starts_group) - 1  # tie group of each sorted position
    first = np.flatnonzero(starts_group)  # 0-based first sorted position of each group
    end = np.append(first[1:], n)  # one past its last position
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = ((first + 1) + end)[group] / 2.0  # mean of the 1-based ranks first+1..end
    return ranks


def spearman_corr(preds, labels) -> float:
    """Spearman rank correlation: the Pearson correlation of the average ranks (`rankdata`),
    as `scipy.stats.spearmanr(...)[0]`; ties share their mean rank.

    NaN when either input is constant or holds a NaN (SciPy's values); at least 2 values.
    """
    x, y = _float_pair("spearman_corr", preds, labels)
    if np.isnan(x).any() or np.isnan(y).any():
        return float("nan")
    return _pearson(rankdata(x), rankdata(y))
