"""Evaluation metrics. Multi-label tagging: average precision, ROC-AUC and d-prime, as AudioSet
papers report them; single-label classification: accuracy, macro F1 and the confusion matrix.

Tagging metrics are computed per class and macro-averaged over the classes where they are
defined (AP: at least one positive; ROC-AUC: at least one positive and one negative). Per class,
the values equal scikit-learn's ``average_precision_score`` and ``roc_auc_score``, ties
included: tied scores form one threshold. Accuracy and macro F1 equal scikit-learn's
``accuracy_score`` and ``f1_score(average="macro")`` of the highest-scoring class.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from passt.utils.errors import UsageError
from passt.utils.optional import require


def _check(scores: Any, targets: Any, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """Float64 copies of ``scores`` and ``targets`` after shape, finiteness and 0/1 checks."""
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(targets, dtype=np.float64)
    if s.shape != t.shape or s.ndim != ndim:
        kind = "[samples]" if ndim == 1 else "[samples, classes]"
        raise UsageError(
            f"scores and targets must both be {kind}, got shapes {s.shape} and {t.shape}"
        )
    if s.shape[0] == 0:
        raise UsageError("scores and targets hold no samples")
    if not np.isfinite(s).all():
        raise UsageError("scores contain NaN or infinite values")
    if not np.isin(t, (0.0, 1.0)).all():
        raise UsageError("targets must be 0 or 1 (mixed-up soft targets cannot be scored)")
    return s, t


def binary_average_precision(scores: Any, targets: Any) -> float:
    """AP of one class: the mean, over positives, of the precision at their score threshold.

    NaN when there is no positive.
    """
    s, t = _check(scores, targets, ndim=1)
    positives = t.sum()
    if positives == 0:
        return math.nan
    order = np.argsort(-s, kind="stable")
    s, t = s[order], t[order]
    # the last position of each run of tied scores is one threshold
    ends = np.append(np.flatnonzero(np.diff(s)), len(s) - 1)
    true_pos = np.cumsum(t)[ends]
    precision = true_pos / (ends + 1)
    recall_gain = np.diff(true_pos, prepend=0.0) / positives
    return float(np.sum(recall_gain * precision))


def binary_roc_auc(scores: Any, targets: Any) -> float:
    """ROC-AUC of one class: the chance that a positive outscores a negative (ties count half).

    NaN unless there is at least one positive and one negative.
    """
    s, t = _check(scores, targets, ndim=1)
    positives = t.sum()
    negatives = len(t) - positives
    if positives == 0 or negatives == 0:
        return math.nan
    order = np.argsort(s, kind="stable")
    s, t = s[order], t[order]
    starts = np.append(0, np.flatnonzero(np.diff(s)) + 1)
    ends = np.append(starts[1:], len(s))
    mean_rank = (starts + ends + 1) / 2.0  # 1-based rank shared by a run of tied scores
    ranks = np.repeat(mean_rank, ends - starts)
    u = np.sum(ranks * t) - positives * (positives + 1) / 2.0
    return float(u / (positives * negatives))


def average_precision(scores: Any, targets: Any) -> np.ndarray:
    """Per-class AP of ``[samples, classes]`` scores; NaN for classes without positives."""
    s, t = _check(scores, targets, ndim=2)
    return np.array([binary_average_precision(s[:, c], t[:, c]) for c in range(s.shape[1])])


def roc_auc(scores: Any, targets: Any) -> np.ndarray:
    """Per-class ROC-AUC of ``[samples, classes]`` scores; NaN where it is undefined."""
    s, t = _check(scores, targets, ndim=2)
    return np.array([binary_roc_auc(s[:, c], t[:, c]) for c in range(s.shape[1])])


def _macro(values: np.ndarray, what: str) -> float:
    defined = values[~np.isnan(values)]
    if defined.size == 0:
        raise UsageError(f"no class has {what}: the macro average is undefined")
    return float(defined.mean())


def mean_average_precision(scores: Any, targets: Any) -> float:
    """mAP: AP averaged over the classes with at least one positive."""
    return _macro(average_precision(scores, targets), "a positive")


def mean_roc_auc(scores: Any, targets: Any) -> float:
    """ROC-AUC averaged over the classes with both positives and negatives."""
    return _macro(roc_auc(scores, targets), "both positives and negatives")


def d_prime(auc: float) -> float:
    """Sensitivity index of an ROC-AUC: ``sqrt(2) * Phi^-1(auc)`` (infinite at 0 or 1)."""
    if not 0.0 <= auc <= 1.0:
        raise UsageError(f"auc must be in [0, 1], got {auc}")
    special = require("scipy.special", "d-prime")
    return float(math.sqrt(2.0) * special.ndtri(auc))


@dataclass(frozen=True)
class TaggingMetrics:
    """Macro scores of one evaluation, with the chance level of mAP beside them."""

    map: float
    roc_auc: float
    d_prime: float
    chance_map: float  # mAP of an uninformed scorer: mean prevalence of the scored classes
    scored_classes: int  # classes with at least one positive
    samples: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def tagging_metrics(scores: Any, targets: Any) -> TaggingMetrics:
    """mAP, ROC-AUC, d-prime (of the macro ROC-AUC) and mAP's chance level of ``[N, C]`` scores."""
    s, t = _check(scores, targets, ndim=2)
    ap = average_precision(s, t)
    auc = mean_roc_auc(s, t)
    scored = ~np.isnan(ap)
    return TaggingMetrics(
        map=_macro(ap, "a positive"),
        roc_auc=auc,
        d_prime=d_prime(auc),
        chance_map=float(t[:, scored].mean(axis=0).mean()),
        scored_classes=int(scored.sum()),
        samples=int(s.shape[0]),
    )


def _labels(scores: Any, targets: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """Predicted and true class indices of ``[N, C]`` scores and one-hot targets, and ``C``."""
    s, t = _check(scores, targets, ndim=2)
    counts = t.sum(axis=1)
    if not (counts == 1).all():
        row = int(np.flatnonzero(counts != 1)[0])
        raise UsageError(f"single-label targets need exactly one positive per sample; sample "
                         f"{row} has {int(counts[row])}")
    return s.argmax(axis=1), t.argmax(axis=1), s.shape[1]


def confusion_matrix(scores: Any, targets: Any) -> np.ndarray:
    """``[C, C]`` counts of samples of true class ``i`` (row) predicted as ``j`` (column); the
    prediction is the highest score (the first of tied ones)."""
    pred, true, classes = _labels(scores, targets)
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (true, pred), 1)
    return matrix


def accuracy(scores: Any, targets: Any) -> float:
    """The share of samples whose highest score is their class."""
    pred, true, _ = _labels(scores, targets)
    return float((pred == true).mean())


def macro_f1(scores: Any, targets: Any) -> float:
    """F1 averaged over the classes that are true or predicted for some sample (as
    scikit-learn's ``f1_score(average="macro")`` without ``labels``): ``2 TP / (2 TP + FP +
    FN)`` per class."""
    return _macro_f1(confusion_matrix(scores, targets))


def _macro_f1(matrix: np.ndarray) -> float:
    tp = np.diag(matrix).astype(np.float64)
    fp = matrix.sum(axis=0) - tp
    fn = matrix.sum(axis=1) - tp
    present = (matrix.sum(axis=0) + matrix.sum(axis=1)) > 0
    return float((2 * tp[present] / (2 * tp[present] + fp[present] + fn[present])).mean())


@dataclass(frozen=True)
class ClassificationMetrics:
    """Scores of one single-label evaluation, with the chance level of accuracy beside them."""

    accuracy: float
    macro_f1: float
    chance_accuracy: float  # always predicting the most frequent class
    confusion: list[list[int]]  # [true class][predicted class] counts
    samples: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def classification_metrics(scores: Any, targets: Any) -> ClassificationMetrics:
    """Accuracy, macro F1, the confusion matrix and accuracy's chance level of ``[N, C]``
    scores and one-hot targets."""
    matrix = confusion_matrix(scores, targets)
    samples = int(matrix.sum())
    return ClassificationMetrics(
        accuracy=float(np.trace(matrix) / samples),
        macro_f1=_macro_f1(matrix),
        chance_accuracy=float(matrix.sum(axis=1).max() / samples),
        confusion=matrix.tolist(),
        samples=samples,
    )


def format_metrics(row: dict[str, Any]) -> str:
    """One line of an evaluation's metrics (the ``as_dict`` of either kind)."""
    if "accuracy" in row:
        return (f"accuracy {row['accuracy']:.4f} (chance {row['chance_accuracy']:.4f}), "
                f"macro F1 {row['macro_f1']:.4f} ({row['samples']} clips)")
    return (f"mAP {row['map']:.4f} (chance {row['chance_map']:.4f}), "
            f"ROC-AUC {row['roc_auc']:.4f}, d-prime {row['d_prime']:.3f} "
            f"({row['samples']} clips, {row['scored_classes']} classes scored)")
