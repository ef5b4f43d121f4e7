"""The paired bootstrap (models/bootstrap.py): its weighted metrics against the metrics on explicitly
repeated rows, and its intervals on cases whose answer is known."""

import numpy as np
import pytest

from models import bootstrap, metrics


@pytest.fixture(name="rows")
def fixture_rows():
    rng = np.random.default_rng(3)
    labels = np.round(rng.lognormal(2.0, 1.0, 300) * (rng.random(300) < 0.4), 1)  # zeros and tied labels
    prediction = np.round(labels + rng.normal(0.0, 8.0, 300), 0)  # tied predictions too
    return labels, prediction


def test_weighted_metrics_equal_the_metrics_of_the_repeated_rows(rows):
    labels, prediction = rows
    counts = np.random.default_rng(0).multinomial(labels.size, np.full(labels.size, 1 / labels.size), size=5)
    gini = bootstrap.weighted_normalized_gini(labels, prediction, counts)
    spearman = bootstrap.weighted_spearman(labels, prediction, counts)
    for r, count in enumerate(counts):
        rows_drawn = np.repeat(np.arange(labels.size), count)  # copies side by side, in row order
        assert gini[r] == pytest.approx(metrics.normalized_gini(labels[rows_drawn], prediction[rows_drawn]), abs=1e-12)
        assert spearman[r] == pytest.approx(metrics.spearman(labels[rows_drawn], prediction[rows_drawn]), abs=1e-12)


def test_identical_models_differ_by_exactly_zero(rows):
    labels, prediction = rows
    result = bootstrap.paired_bootstrap(labels, prediction, prediction, "normalized_gini", resamples=200)
    assert result["difference"] == result["low"] == result["high"] == 0.0


def test_a_clearly_better_model_has_an_interval_above_zero_and_the_reverse_below(rows):
    labels, prediction = rows
    noisy = prediction + np.random.default_rng(1).normal(0.0, 40.0, labels.size)
    ahead = bootstrap.paired_bootstrap(labels, [prediction, prediction], [noisy, noisy], "spearman", resamples=500)
    assert ahead["low"] > 0 and ahead["difference"] == pytest.approx(
        metrics.spearman(labels, prediction) - metrics.spearman(labels, noisy))
    behind = bootstrap.paired_bootstrap(labels, noisy, prediction, "spearman", resamples=500)
    assert behind["high"] < 0 and behind["share_not_above_zero"] == 1.0


def test_mean_of_losses_and_seed_pooling():
    labels = np.zeros(4)
    ours = np.array([[1.0, 1.0, 1.0, 1.0], [3.0, 3.0, 3.0, 3.0]])  # two seeds: mean loss 2
    theirs = np.array([[2.5, 2.5, 2.5, 2.5]])
    result = bootstrap.paired_bootstrap(labels, ours, theirs, "mean", resamples=50)
    assert result["difference"] == pytest.approx(-0.5) and result["low"] == pytest.approx(-0.5)


def test_clusters_are_drawn_whole(rows):
    labels, prediction = rows
    noisy = prediction + np.random.default_rng(2).normal(0.0, 20.0, labels.size)
    # Each row four times, as four snapshots of one customer: row-level resampling would count the
    # copies as independent and give an interval about half as wide as the customer-level one.
    labels4, ours4, theirs4 = (np.tile(v, 4) for v in (labels, prediction, noisy))
    customers = np.tile(np.arange(labels.size), 4)
    by_row = bootstrap.paired_bootstrap(labels4, ours4, theirs4, "normalized_gini", resamples=400, seed=5)
    by_customer = bootstrap.paired_bootstrap(labels4, ours4, theirs4, "normalized_gini", groups=customers,
                                             resamples=400, seed=5)
    once = bootstrap.paired_bootstrap(labels, prediction, noisy, "normalized_gini", resamples=400, seed=5)
    width = {name: r["high"] - r["low"] for name, r in
             (("row", by_row), ("customer", by_customer), ("once", once))}
    assert by_customer["clusters"] == labels.size
    assert width["customer"] > 1.5 * width["row"]
    assert width["customer"] == pytest.approx(width["once"], rel=0.25)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="metric"):
        bootstrap.paired_bootstrap([1.0], [1.0], [1.0], "mae")
    with pytest.raises(ValueError, match="theirs"):
        bootstrap.paired_bootstrap([1.0, 2.0], [1.0, 2.0], [1.0], "mean")
