"""The tagging metrics against scikit-learn on random inputs, ties and degenerate classes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import ndtri
from sklearn.metrics import average_precision_score, roc_auc_score

from passt.eval import metrics


def random_case(seed: int, samples: int = 200, classes: int = 12, levels: int | None = None):
    """Random scores (rounded to ``levels`` values for ties) and sparse multi-hot targets with
    one class lacking positives and one lacking negatives."""
    rng = np.random.default_rng(seed)
    scores = rng.random((samples, classes))
    if levels is not None:
        scores = np.round(scores * (levels - 1)) / (levels - 1)
    targets = (rng.random((samples, classes)) < rng.uniform(0.02, 0.4, classes)).astype(float)
    targets[:, 0] = 0.0
    targets[:, 1] = 1.0
    return scores, targets


@pytest.mark.parametrize("levels", [None, 2, 5, 30])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_average_precision_equals_sklearn(seed, levels):
    scores, targets = random_case(seed, levels=levels)
    ap = metrics.average_precision(scores, targets)
    assert math.isnan(ap[0])
    for c in range(1, scores.shape[1]):
        expected = average_precision_score(targets[:, c], scores[:, c])
        assert ap[c] == pytest.approx(expected, abs=1e-12)
    has_pos = targets.sum(0) > 0
    expected_map = average_precision_score(targets[:, has_pos], scores[:, has_pos],
                                           average="macro")
    assert metrics.mean_average_precision(scores, targets) == pytest.approx(expected_map,
                                                                            abs=1e-12)


@pytest.mark.parametrize("levels", [None, 2, 5, 30])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_auc_equals_sklearn(seed, levels):
    scores, targets = random_case(seed, levels=levels)
    auc = metrics.roc_auc(scores, targets)
    assert math.isnan(auc[0]) and math.isnan(auc[1])
    defined = slice(2, None)
    expected = roc_auc_score(targets[:, defined], scores[:, defined], average=None)
    np.testing.assert_allclose(auc[defined], expected, rtol=0, atol=1e-12)
    assert metrics.mean_roc_auc(scores, targets) == pytest.approx(expected.mean(), abs=1e-12)


def test_all_tied_scores():
    targets = np.array([0, 1, 0, 1, 1], dtype=float)
    scores = np.full(5, 0.3)
    assert metrics.binary_average_precision(scores, targets) == pytest.approx(0.6)
    assert metrics.binary_roc_auc(scores, targets) == 0.5
    assert average_precision_score(targets, scores) == pytest.approx(0.6)


def test_perfect_and_reversed_ranking():
    targets = np.array([1, 1, 0, 0], dtype=float)
    scores = np.array([0.9, 0.8, 0.2, 0.1])
    assert metrics.binary_average_precision(scores, targets) == 1.0
    assert metrics.binary_roc_auc(scores, targets) == 1.0
    assert metrics.binary_roc_auc(-scores, targets) == 0.0
    assert metrics.d_prime(1.0) == math.inf


def test_d_prime():
    assert metrics.d_prime(0.5) == 0.0
    assert metrics.d_prime(0.9) == pytest.approx(math.sqrt(2) * 1.2815515655446004)
    with pytest.raises(ValueError, match="auc must be in"):
        metrics.d_prime(1.5)


def test_tagging_metrics_summary():
    scores, targets = random_case(3)
    m = metrics.tagging_metrics(scores, targets)
    assert m.map == pytest.approx(metrics.mean_average_precision(scores, targets))
    assert m.d_prime == pytest.approx(math.sqrt(2) * ndtri(m.roc_auc))
    assert m.scored_classes == scores.shape[1] - 1
    assert m.chance_map == pytest.approx(targets[:, 1:].mean(0).mean())
    assert m.samples == 200
    assert set(m.as_dict()) == {"map", "roc_auc", "d_prime", "chance_map", "scored_classes",
                                "samples"}


@pytest.mark.parametrize(("scores", "targets", "message"), [
    (np.zeros((3, 2)), np.zeros((3, 3)), "shapes"),
    (np.zeros(3), np.zeros(3), r"\[samples, classes\]"),
    (np.full((2, 2), np.nan), np.ones((2, 2)), "NaN"),
    (np.zeros((2, 2)), np.full((2, 2), 0.5), "0 or 1"),
    (np.zeros((0, 2)), np.zeros((0, 2)), "no samples"),
])
def test_bad_inputs(scores, targets, message):
    with pytest.raises(ValueError, match=message):
        metrics.average_precision(scores, targets)


def test_no_class_with_positives():
    with pytest.raises(ValueError, match="no class has a positive"):
        metrics.mean_average_precision(np.zeros((4, 2)), np.zeros((4, 2)))


def single_label_case(seed: int, samples: int = 150, classes: int = 7, levels: int | None = None):
    """Random scores (rounded for ties) and one-hot targets; class 6 is never true, so it can
    only be predicted."""
    rng = np.random.default_rng(seed)
    scores = rng.random((samples, classes))
    if levels is not None:
        scores = np.round(scores * (levels - 1)) / (levels - 1)
    true = rng.integers(0, classes - 1, samples)
    scores[np.arange(samples), true] += rng.random(samples) * 0.6  # better than chance
    return scores, np.eye(classes)[true], true


@pytest.mark.parametrize("levels", [None, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accuracy_macro_f1_and_confusion_equal_sklearn(seed, levels):
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    scores, targets, true = single_label_case(seed, levels=levels)
    pred = scores.argmax(axis=1)  # numpy's argmax takes the first of tied scores, as ours
    m = metrics.classification_metrics(scores, targets)
    assert m.accuracy == pytest.approx(accuracy_score(true, pred), abs=1e-12)
    assert m.macro_f1 == pytest.approx(f1_score(true, pred, average="macro"), abs=1e-12)
    assert metrics.macro_f1(scores, targets) == m.macro_f1
    np.testing.assert_array_equal(m.confusion, confusion_matrix(true, pred, labels=range(7)))
    assert m.samples == 150
    assert m.chance_accuracy == pytest.approx(np.bincount(true).max() / 150)


def test_macro_f1_counts_classes_predicted_but_never_true():
    from sklearn.metrics import f1_score

    true, pred = np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1])  # class 2 is a false alarm
    scores = np.eye(3)[pred]
    assert metrics.macro_f1(scores, np.eye(3)[true]) == pytest.approx(
        f1_score(true, pred, average="macro"))
    assert metrics.accuracy(scores, np.eye(3)[true]) == 0.75


def test_single_label_metrics_refuse_multi_hot_targets():
    targets = np.array([[1.0, 0.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match="exactly one positive per sample; sample 1 has 2"):
        metrics.classification_metrics(np.zeros((2, 2)), targets)


def test_format_metrics_of_either_kind():
    scores, targets, _ = single_label_case(0)
    line = metrics.format_metrics(metrics.classification_metrics(scores, targets).as_dict())
    assert line.startswith("accuracy ") and "macro F1" in line
    tagging = metrics.tagging_metrics(*random_case(0))
    assert metrics.format_metrics(tagging.as_dict()).startswith("mAP ")
