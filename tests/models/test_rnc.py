"""Rank-N-Contrast: agrees with the O(N³) definition, and prefers label-ordered embeddings."""

import numpy as np
import pytest

from models import rnc


def _brute_force(v, y, tau):
    n = len(y)
    total, pairs = 0.0, 0
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            s = lambda a, b: -np.linalg.norm(v[a] - v[b]) / tau  # noqa: E731
            others = [k for k in range(n) if k != i and abs(y[i] - y[k]) >= abs(y[i] - y[j])]
            total += -(s(i, j) - np.log(sum(np.exp(s(i, k)) for k in others)))
            pairs += 1
    return total / pairs


def test_matches_the_definition_with_ties():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(7, 3)).astype(np.float32)
    y = np.array([0.0, 0.0, 1.0, 2.0, 2.0, 5.0, 1.0], dtype=np.float32)
    assert float(rnc.rnc_loss(v, y, 2.0)) == pytest.approx(_brute_force(v, y, 2.0), rel=1e-4)


def test_ordered_embeddings_score_lower_than_shuffled():
    y = np.linspace(0.0, 5.0, 32).astype(np.float32)
    ordered = np.stack([y, np.zeros_like(y)], axis=1)
    shuffled = ordered[np.random.default_rng(1).permutation(32)]
    assert float(rnc.rnc_loss(ordered, y)) < float(rnc.rnc_loss(shuffled, y))


def test_single_sample_gives_zero():
    assert float(rnc.rnc_loss(np.ones((1, 2), np.float32), np.ones(1, np.float32))) == 0.0
