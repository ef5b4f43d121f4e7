"""Proper scoring rules (models/scoring_rules.py) against independent oracles: numeric integration of
(F(x) − 1[x ≥ y])² with scipy, scipy's lognormal, and brute-force pair sums, on a few hand-written rows."""

import numpy as np
import pytest
from scipy import integrate, stats

from models import scoring_rules


def _crps_by_integration(cdf, label, low, high, points=()):
    """∫ (F(x) − 1[x ≥ y])² dx over [low, high] (the integrand is 0 outside), split at y and `points`."""
    edges = sorted({low, high, label, *points} & set(np.clip([low, high, label, *points], low, high)))
    total = 0.0
    for a, b in zip(edges[:-1], edges[1:]):
        value, _ = integrate.quad(lambda x: (cdf(x) - float(x >= label)) ** 2, a, b, limit=200)
        total += value
    return total


def test_pinball_loss_by_hand():
    labels = np.array([10.0, 0.0, 5.0])
    quantiles = np.array([4.0, 2.0, 5.0])
    np.testing.assert_allclose(scoring_rules.pinball_loss(labels, quantiles, 0.9), [5.4, 0.2, 0.0])
    np.testing.assert_allclose(scoring_rules.pinball_loss(labels, quantiles, 0.1), [0.6, 1.8, 0.0])
    with pytest.raises(ValueError, match="tau"):
        scoring_rules.pinball_loss(labels, quantiles, 1.0)


def test_discrete_crps_matches_integration_and_pair_sums():
    values = np.array([0.0, 3.0, 1.0, 12.0])  # unsorted on purpose
    probabilities = np.array([[0.5, 0.2, 0.2, 0.1], [0.0, 0.0, 1.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
    labels = np.array([2.0, 4.0, 0.0])
    crps = scoring_rules.crps_discrete(values, probabilities, labels)
    for row, label in enumerate(labels):
        p = probabilities[row]

        def cdf(x, p=p):
            return float(np.sum(p[values <= x]))

        expected = _crps_by_integration(cdf, label, -1.0, 20.0, values)
        pairs = np.sum(p * np.abs(values - label)) - 0.5 * np.sum(np.outer(p, p) * np.abs(values[:, None] - values))
        assert crps[row] == pytest.approx(expected, abs=1e-6)
        assert crps[row] == pytest.approx(pairs, abs=1e-12)
    assert crps[1] == pytest.approx(3.0)  # a point mass at 1 scores |1 − 4|


def test_discrete_crps_accepts_per_row_supports():
    values = np.array([[0.0, 5.0], [2.0, 1.0]])
    probabilities = np.array([[0.5, 0.5], [0.3, 0.7]])
    labels = np.array([1.0, 1.5])
    per_row = scoring_rules.crps_discrete(values, probabilities, labels)
    for row in range(2):
        alone = scoring_rules.crps_discrete(values[row], probabilities[row:row + 1], labels[row:row + 1])
        assert per_row[row] == pytest.approx(alone[0])


def test_zero_inflated_lognormal_crps_matches_integration():
    probability = np.array([0.3, 0.8, 0.5, 0.95])
    loc = np.array([1.0, 3.0, 0.0, 2.0])
    scale = np.array([0.5, 1.2, 1.0, 0.3])
    labels = np.array([0.0, 25.0, 0.7, 400.0])
    crps = scoring_rules.crps_zero_inflated_lognormal(probability, loc, scale, labels)
    for row, label in enumerate(labels):
        lognormal = stats.lognorm(s=scale[row], scale=np.exp(loc[row]))

        def cdf(x, row=row, lognormal=lognormal):
            return 0.0 if x < 0 else (1.0 - probability[row]) + probability[row] * lognormal.cdf(x)

        high = max(label, lognormal.ppf(1 - 1e-12)) + 1.0
        expected = _crps_by_integration(cdf, label, 0.0, high, [lognormal.median(), lognormal.mean()])
        assert crps[row] == pytest.approx(expected, rel=1e-6, abs=1e-8), row


def test_zero_inflated_lognormal_crps_matches_a_monte_carlo_estimate():
    # CRPS = E|X − y| − ½·E|X − X′| with X, X′ drawn independently from (1 − p)·δ₀ + p·LogNormal(μ, σ).
    rng = np.random.default_rng(0)
    probability = np.array([0.35, 0.9, 0.6])
    loc, scale = np.array([3.0, 1.0, 4.0]), np.array([0.8, 0.4, 1.1])
    labels = np.array([0.0, 2.5, 150.0])
    crps = scoring_rules.crps_zero_inflated_lognormal(probability, loc, scale, labels)
    draws = 400_000
    for row, label in enumerate(labels):
        def sample(row=row):
            positive = rng.random(draws) < probability[row]
            return np.where(positive, rng.lognormal(loc[row], scale[row], draws), 0.0)

        x, x_prime = sample(), sample()
        terms = np.abs(x - label) - 0.5 * np.abs(x - x_prime)
        standard_error = terms.std() / np.sqrt(draws)
        assert abs(crps[row] - terms.mean()) < 4 * standard_error, (row, crps[row], terms.mean(), standard_error)


def test_lognormal_crps_without_zeros_matches_the_published_closed_form():
    mu, sigma, y = 1.5, 0.8, 3.0
    z = (np.log(y) - mu) / sigma
    norm = stats.norm.cdf
    # Baran & Lerch (2015): the CRPS of LogNormal(μ, σ).
    published = y * (2 * norm(z) - 1) - 2 * np.exp(mu + sigma ** 2 / 2) * (norm(z - sigma) + norm(sigma / np.sqrt(2)) - 1)
    ours = scoring_rules.crps_zero_inflated_lognormal([1.0], [mu], [sigma], [y])[0]
    assert ours == pytest.approx(published, rel=1e-10)


def test_crps_of_served_quantiles_matches_integration_and_sorts_crossed_quantiles():
    levels = (0.1, 0.5, 0.9)
    quantiles = np.array([[0.0, 2.0, 10.0], [1.0, 1.0, 1.0], [8.0, 3.0, 5.0]])
    labels = np.array([4.0, 0.0, 20.0])
    x, cdf = scoring_rules.quantile_knots(quantiles, levels)
    np.testing.assert_allclose(x[2], [3.0, 3.0, 5.0, 8.0, 8.0])
    np.testing.assert_allclose(cdf[0], [0.0, 0.1, 0.5, 0.9, 1.0])
    crps = scoring_rules.crps_piecewise(x, cdf, labels)
    for row, label in enumerate(labels):
        q = np.sort(quantiles[row])

        def piecewise(value, q=q):
            if value < q[0]:
                return 0.0
            if value >= q[-1]:
                return 1.0
            return float(np.interp(value, q, levels))

        expected = _crps_by_integration(piecewise, label, -1.0, 25.0, q)
        assert crps[row] == pytest.approx(expected, abs=1e-7), row
    assert crps[1] == pytest.approx(1.0)  # all quantiles at 1: a point mass, |1 − 0|


def test_piecewise_crps_of_jumps_equals_the_discrete_crps():
    values = np.array([0.0, 2.0, 7.0])
    probabilities = np.array([[0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    labels = np.array([1.0, 9.0])
    x = np.repeat(values, 2)[None, :].repeat(2, axis=0)
    cumulative = np.cumsum(probabilities, axis=1)
    cdf = np.stack([np.concatenate([[0.0], np.repeat(c[:-1], 2), [1.0]]) for c in cumulative])
    np.testing.assert_allclose(scoring_rules.crps_piecewise(x, cdf, labels),
                               scoring_rules.crps_discrete(values, probabilities, labels), atol=1e-12)


def test_piecewise_crps_rejects_a_cdf_that_does_not_end_at_one():
    with pytest.raises(ValueError, match="end at 1"):
        scoring_rules.crps_piecewise([[0.0, 1.0]], [[0.0, 0.9]], [0.5])


def test_coverage_by_group_splits_by_prediction():
    prediction = np.arange(10.0)
    labels = np.where(prediction < 5, 1.0, 100.0)
    lower, upper = np.zeros(10), np.full(10, 10.0)
    np.testing.assert_allclose(scoring_rules.coverage_by_group(labels, lower, upper, prediction, groups=2), [1.0, 0.0])
    assert scoring_rules.coverage_by_group(labels, lower, upper, prediction, groups=10).shape == (10,)
