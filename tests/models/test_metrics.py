"""Tests for the numpy evaluation metrics in models/metrics.py."""

import itertools

import numpy as np
import pytest
from scipy import stats

from models import metrics


def _brute_force_xauc(labels, predictions):
    """O(n^2) xauc: pairs with different labels, tied predictions count 0.5."""
    scores = []
    for i, j in itertools.combinations(range(len(labels)), 2):
        if labels[i] != labels[j]:
            agreement = np.sign(labels[i] - labels[j]) * np.sign(predictions[i] - predictions[j])
            scores.append((agreement + 1) / 2)
    return np.mean(scores)


@pytest.fixture(name="rng")
def fixture_rng():
    return np.random.default_rng(7)


def test_mae_and_rmse_hand_computed():
    labels = [0.0, 2.0, 4.0]
    predictions = [1.0, 2.0, 1.0]
    assert metrics.mae(labels, predictions) == pytest.approx(4 / 3)
    assert metrics.rmse(labels, predictions) == pytest.approx(np.sqrt(10 / 3))


def test_normalized_gini_perfect_ranking_is_one(rng):
    labels = rng.lognormal(size=1000) * (rng.random(1000) < 0.3)
    assert metrics.normalized_gini(labels, np.log1p(labels)) == pytest.approx(1.0)


def test_normalized_gini_reversed_ranking_is_negative(rng):
    labels = rng.lognormal(size=1000)
    assert metrics.normalized_gini(labels, -labels) < -0.5


def test_normalized_gini_random_ranking_is_about_zero():
    rng = np.random.default_rng(0)
    labels = rng.lognormal(size=10_000)
    assert abs(metrics.normalized_gini(labels, rng.random(10_000))) < 0.05


def test_normalized_gini_hand_computed():
    # By prediction: labels 1, 3, 0, 0 -> cumulative shares 1/4, 1, 1, 1 -> gini 0.625.
    # By label:      labels 3, 1, 0, 0 -> cumulative shares 3/4, 1, 1, 1 -> gini 0.875.
    labels = [1.0, 0.0, 3.0, 0.0]
    predictions = [0.9, 0.1, 0.4, 0.2]
    assert metrics.normalized_gini(labels, predictions) == pytest.approx(0.625 / 0.875)


def test_normalized_gini_tied_predictions_keep_input_order():
    # Stable sort: shares 0, 0, 0, 1 -> gini -0.5; perfect gini 1.
    assert metrics.normalized_gini([0, 0, 0, 4], [1, 1, 1, 1]) == pytest.approx(-0.5)


@pytest.mark.parametrize("labels", [[2.0, 2.0, 2.0], [0.0, 0.0, 0.0]])
def test_normalized_gini_of_constant_labels_is_zero(labels):
    assert metrics.normalized_gini(labels, [0.3, 0.1, 0.2]) == 0.0


def test_spearman_matches_scipy_with_ties(rng):
    labels = rng.integers(0, 5, 300).astype(float)
    predictions = labels + rng.integers(0, 4, 300)
    expected = stats.spearmanr(labels, predictions).statistic
    assert metrics.spearman(labels, predictions) == pytest.approx(expected)


def test_spearman_of_constant_side_is_zero():
    assert metrics.spearman([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]) == 0.0
    assert metrics.spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) == 0.0


def test_xauc_matches_brute_force_with_ties(rng):
    for _ in range(200):
        size = int(rng.integers(2, 30))
        labels = rng.integers(0, 4, size).astype(float)
        predictions = rng.integers(0, 5, size).astype(float)
        if len(set(labels)) > 1:
            assert metrics.xauc(labels, predictions) == pytest.approx(
                _brute_force_xauc(labels, predictions)
            )


def test_xauc_hand_computed():
    # Pairs with different labels: (0,1) concordant, (0,2) concordant,
    # (1,2) tied prediction -> (1 + 1 + 0.5) / 3.
    assert metrics.xauc([0.0, 1.0, 2.0], [0.1, 0.5, 0.5]) == pytest.approx(2.5 / 3)


def test_xauc_extremes_and_constant_labels():
    labels = [0.0, 1.0, 2.0, 3.0]
    assert metrics.xauc(labels, labels) == 1.0
    assert metrics.xauc(labels, [-x for x in labels]) == 0.0
    assert metrics.xauc([1.0, 1.0], [0.0, 1.0]) == 0.5


def test_decile_calibration_of_perfect_predictor_has_zero_error(rng):
    labels = rng.lognormal(size=1003)
    calibration = metrics.decile_calibration(labels, labels)
    assert calibration["mean_abs_rel_error"] == 0.0
    np.testing.assert_array_equal(calibration["pred_mean"], calibration["label_mean"])
    assert calibration["count"].sum() == 1003
    assert calibration["count"].max() - calibration["count"].min() <= 1
    assert np.all(np.diff(calibration["pred_mean"]) >= 0)


def test_decile_calibration_hand_computed():
    calibration = metrics.decile_calibration([1.0, 3.0, 2.0, 6.0], [4.0, 1.0, 2.0, 3.0], n=2)
    np.testing.assert_allclose(calibration["pred_mean"], [1.5, 3.5])
    np.testing.assert_allclose(calibration["label_mean"], [2.5, 3.5])
    np.testing.assert_array_equal(calibration["count"], [2, 2])
    assert calibration["mean_abs_rel_error"] == pytest.approx((1.0 / 2.5 + 0.0) / 2)


def test_decile_calibration_rejects_more_groups_than_rows():
    with pytest.raises(ValueError, match="n must be"):
        metrics.decile_calibration([1.0, 2.0], [1.0, 2.0], n=3)


def test_interval_coverage_is_closed_interval():
    labels = [1.0, 2.0, 3.0, 4.0]
    assert metrics.interval_coverage(labels, [1.0, 0.0, 3.5, 0.0], [2.0, 1.0, 4.0, 4.0]) == 0.5


def test_summary_keys_and_values():
    labels = [0.0, 1.0, 3.0]
    predictions = [0.5, 1.0, 2.0]
    result = metrics.summary(labels, predictions)
    assert set(result) == {
        "mae", "rmse", "normalized_gini", "spearman", "xauc",
        "mean_label", "mean_prediction", "count",
    }
    assert result["count"] == 3
    assert result["mean_label"] == pytest.approx(4 / 3)
    assert result["mean_prediction"] == pytest.approx(3.5 / 3)
    assert result["xauc"] == 1.0
    assert result["mae"] == pytest.approx(metrics.mae(labels, predictions))


@pytest.mark.parametrize(
    "call, argument",
    [
        (lambda: metrics.mae([1.0, 2.0], [1.0]), "predictions"),
        (lambda: metrics.xauc([], []), "labels"),
        (lambda: metrics.spearman([1.0], [[1.0]]), "predictions"),
        (lambda: metrics.normalized_gini([[1.0, 2.0]], [1.0, 2.0]), "labels"),
        (lambda: metrics.interval_coverage([1.0], [0.0], [2.0, 3.0]), "upper"),
        (lambda: metrics.interval_coverage([1.0], [], [2.0]), "lower"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(call, argument):
    with pytest.raises(ValueError, match=argument):
        call()
