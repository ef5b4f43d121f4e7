"""Paired bootstrap of the difference between two models' metrics on the same rows, in numpy.

Two models scored on the same eval rows (each with one or more training seeds) differ by
d = mean over seeds of metric(A) − mean over seeds of metric(B). `paired_bootstrap` resamples the
rows with replacement — the same resample for both models and every seed, so the comparison stays
paired — and returns the percentile interval of d over the resamples. A lead counts only where that
interval excludes zero.

Rows that are not independent are resampled together: `groups` names a cluster per row (e.g. the
customer of each of a customer's snapshots), and whole clusters are drawn.

A resample is a vector of counts, one per row, so no resampled array is built: normalized Gini and
Spearman are computed on the original rows with the counts as multiplicities (a row drawn c times
is c tied copies next to each other, as `np.repeat` would place them), in O(n) per resample after
one sort per model.
"""

from typing import Dict, Iterator, Optional, Sequence

import numpy as np

METRICS = ("normalized_gini", "spearman", "mean")
# Resamples evaluated at once ([chunk, n] count matrices).
_CHUNK = 100


def paired_bootstrap(labels, ours, theirs, metric: str, groups: Optional[Sequence] = None, resamples: int = 1000,
                     seed: int = 0, level: float = 0.95) -> Dict[str, float]:
    """The bootstrap interval of mean_s metric(ours[s]) − mean_s metric(theirs[s]).

    Args:
      labels: [n] observed values.
      ours, theirs: [S, n] (or [n]) per seed: predictions for "normalized_gini" and "spearman";
        per-row losses (or any per-row quantity) for "mean", whose metric is their mean.
      metric: one of METRICS.
      groups: [n] cluster of each row (any hashable values); None: every row is its own cluster.
      resamples: number of bootstrap resamples.
      seed: seed of the resampling.
      level: coverage of the interval (0.95: the 2.5% and 97.5% percentiles).

    Returns:
      difference (on the rows as they are), low, high (the interval), resamples, clusters, and
      share_not_above_zero (the share of resamples with a difference <= 0).
    """
    if metric not in METRICS:
        raise ValueError(f"metric: {metric!r} is not one of {METRICS}")
    if resamples < 1 or not 0.0 < level < 1.0:
        raise ValueError(f"resamples ({resamples}) must be positive and level ({level}) in (0, 1)")
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    ours, theirs = (np.atleast_2d(np.asarray(v, dtype=np.float64)) for v in (ours, theirs))
    for name, value in (("ours", ours), ("theirs", theirs)):
        if value.ndim != 2 or value.shape[1] != labels.size:
            raise ValueError(f"{name}: shape {value.shape} is not [seeds, {labels.size}]")
    cluster = np.arange(labels.size) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
    if cluster.size != labels.size:
        raise ValueError(f"groups: {cluster.size} entries for {labels.size} rows")
    ones = np.ones((1, labels.size))
    difference = float(_seed_mean(labels, ours, ones, metric)[0] - _seed_mean(labels, theirs, ones, metric)[0])
    draws = np.concatenate([_seed_mean(labels, ours, w, metric) - _seed_mean(labels, theirs, w, metric)
                            for w in _count_chunks(cluster, resamples, seed)])
    low, high = np.quantile(draws, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return {"difference": difference, "low": float(low), "high": float(high), "resamples": int(resamples),
            "clusters": int(cluster.max()) + 1, "share_not_above_zero": float(np.mean(draws <= 0.0))}


def weighted_normalized_gini(labels, predictions, weights) -> np.ndarray:
    """`models.metrics.normalized_gini` of the rows repeated by `weights`, [R].

    Args:
      labels, predictions: [n].
      weights: [R, n] non-negative integer counts (one resample per row of the matrix).

    Rows are taken by prediction, descending (stable); the c-th copy of row i adds its label to the
    cumulative sum, so the copies of row i contribute w_i·C_i + y_i·w_i(w_i + 1)/2, C_i the sum before
    them. Divided by the same for the order by label.
    """
    labels, predictions = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (labels, predictions))
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    total = weights @ labels
    model = _raw_gini(labels, weights, np.argsort(-predictions, kind="stable"), total)
    perfect = _raw_gini(labels, weights, np.argsort(-labels, kind="stable"), total)
    ok = (total > 0) & (perfect != 0)
    return np.where(ok, model / np.where(ok, perfect, 1.0), 0.0)


def weighted_spearman(labels, predictions, weights) -> np.ndarray:
    """`models.metrics.spearman` (ties at their average rank) of the rows repeated by `weights`, [R]."""
    labels, predictions = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (labels, predictions))
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    count = weights.sum(axis=1, keepdims=True)
    centre = (count + 1.0) / 2.0
    a = _weighted_ranks(labels, weights) - centre
    b = _weighted_ranks(predictions, weights) - centre
    cov = np.sum(weights * a * b, axis=1)
    var = np.sum(weights * a * a, axis=1) * np.sum(weights * b * b, axis=1)
    return np.where(var > 0, cov / np.sqrt(np.where(var > 0, var, 1.0)), 0.0)


def _seed_mean(labels: np.ndarray, values: np.ndarray, weights: np.ndarray, metric: str) -> np.ndarray:
    """Mean over seeds (rows of `values`) of the metric under each resample, [R]."""
    if metric == "mean":
        return (weights @ values.T).mean(axis=1) / weights.sum(axis=1)
    function = weighted_normalized_gini if metric == "normalized_gini" else weighted_spearman
    return np.mean([function(labels, v, weights) for v in values], axis=0)


def _count_chunks(cluster: np.ndarray, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """[chunk, n] row counts of the resamples: clusters drawn with replacement, each row counted as its cluster."""
    rng = np.random.default_rng(seed)
    clusters = int(cluster.max()) + 1
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        counts = rng.multinomial(clusters, np.full(clusters, 1.0 / clusters), size=size)
        yield counts[:, cluster].astype(np.float64)


def _raw_gini(labels: np.ndarray, weights: np.ndarray, order: np.ndarray, total: np.ndarray) -> np.ndarray:
    y, w = labels[order], weights[:, order]
    before = np.cumsum(w * y, axis=1) - w * y
    share = np.sum(w * before + y * w * (w + 1.0) / 2.0, axis=1) / np.where(total > 0, total, 1.0)
    return 2.0 * share / w.sum(axis=1) - 1.0


def _weighted_ranks(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[R, n] average rank (1-based) of each row among the copies of every row, ties averaged."""
    order = np.argsort(values, kind="stable")
    _, group, size = np.unique(values[order], return_inverse=True, return_counts=True)
    end = np.cumsum(size) - 1  # last sorted position of each tie group
    cumulative = np.cumsum(weights[:, order], axis=1)
    through = cumulative[:, end]  # weight up to and including each group
    within = np.diff(through, axis=1, prepend=0.0)
    ranks = np.empty_like(weights)
    ranks[:, order] = (through - within + (within + 1.0) / 2.0)[:, group]
    return ranks
