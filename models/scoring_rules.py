"""Proper scoring rules for predictive distributions of a non-negative value, as numpy functions.

A model that serves a distribution is judged on the whole of it, not only on its mean: lower is
better for every score here, and each is minimised in expectation by the true distribution.

- `pinball_loss`: the quantile score of a served τ-quantile, (y − q)·(τ − 1[y < q]).
- CRPS, ∫ (F(x) − 1[x ≥ y])² dx, of three kinds of distribution:
  - `crps_discrete`: finitely many values with probabilities (RQ-Reg's code tree: every code
    path's decoded value and probability), exactly, by CRPS = E|X − y| − ½·E|X − X′|;
  - `crps_zero_inflated_lognormal`: ZILN's mixture (1 − p)·δ₀ + p·LogNormal(μ, σ), in closed form;
  - `crps_piecewise`: any CDF that is piecewise linear through knots (x_k, F_k), with a jump where
    x repeats; `quantile_knots` builds the distribution a model's served quantiles describe (see
    there), so every model that serves quantiles gets a CRPS too.
- `coverage_by_group`: coverage of a served interval within groups of equal size by prediction
  (deciles), so an interval that is right on average but wrong where the model predicts high or
  low values shows.
"""

from typing import Sequence, Tuple

import numpy as np
from scipy import special

# Rows per chunk in the functions that build [rows, knots] arrays, to bound their memory.
_CHUNK = 2048


def pinball_loss(labels, quantiles, tau: float) -> np.ndarray:
    """Per-row pinball (quantile) loss of predicted τ-quantiles, [n].

    Args:
      labels: [n] observed values.
      quantiles: [n] predicted τ-quantiles.
      tau: the quantile level, in (0, 1).
    """
    if not 0.0 < tau < 1.0:
        raise ValueError(f"tau: {tau} must lie strictly between 0 and 1")
    labels, quantiles = _columns(labels=labels, quantiles=quantiles)
    diff = labels - quantiles
    return np.where(diff >= 0, tau * diff, (tau - 1.0) * diff)


def crps_discrete(values, probabilities, labels) -> np.ndarray:
    """Exact CRPS of discrete distributions, [n].

    Args:
      values: [P] support values shared by every row, or [n, P] per row (any order).
      probabilities: [n, P] probabilities of those values (each row sums to 1; renormalised).
      labels: [n] observed values.

    CRPS = Σ_i p_i·|v_i − y| − ½·Σ_i Σ_j p_i·p_j·|v_i − v_j|; with values sorted ascending the
    double sum is 2·Σ_i p_i·(v_i·F_{<i} − S_{<i}), F_{<i} and S_{<i} the probability and the
    probability-weighted value of the values below v_i, so a row costs O(P).
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    if probabilities.ndim != 2 or probabilities.shape[0] != labels.size:
        raise ValueError(f"probabilities: shape {probabilities.shape} is not [n, P] for {labels.size} labels")
    values = np.asarray(values, dtype=np.float64)
    if values.shape not in ((probabilities.shape[1],), probabilities.shape):
        raise ValueError(f"values: shape {values.shape} is neither [P] nor [n, P] for probabilities "
                         f"{probabilities.shape}")
    if values.ndim == 1:  # shared support: sort it once
        order = np.argsort(values, kind="stable")
        values, probabilities = values[order], probabilities[:, order]
    out = np.empty(labels.size)
    for start in range(0, labels.size, _CHUNK):
        rows = slice(start, start + _CHUNK)
        p = probabilities[rows]
        if values.ndim == 1:
            v = np.broadcast_to(values, p.shape)
        else:
            order = np.argsort(values[rows], axis=1, kind="stable")
            v, p = np.take_along_axis(values[rows], order, axis=1), np.take_along_axis(p, order, axis=1)
        p = p / p.sum(axis=1, keepdims=True)
        y = labels[rows, None]
        spread = np.sum(p * np.abs(v - y), axis=1)
        below_p = np.cumsum(p, axis=1) - p
        below_pv = np.cumsum(p * v, axis=1) - p * v
        half_pair = np.sum(p * (v * below_p - below_pv), axis=1)  # ½·E|X − X′|
        out[rows] = spread - half_pair
    return out


def crps_zero_inflated_lognormal(probability, loc, scale, labels) -> np.ndarray:
    """Closed-form CRPS of X = 0 with probability 1 − p, else LogNormal(μ, σ), [n].

    With m = exp(μ + σ²/2), z = (ln y − μ)/σ and Φ the standard normal CDF:
    E|L − y| = y·(2Φ(z) − 1) + m·(1 − 2Φ(z − σ)) for y > 0 (m for y = 0), E|L − L′| =
    2m·(2Φ(σ/√2) − 1), and for the mixture
    CRPS = (1 − p)·y + p·E|L − y| − p(1 − p)·m − ½·p²·E|L − L′|.

    Args:
      probability: [n] P(X > 0).
      loc, scale: [n] μ and σ (> 0) of the lognormal part.
      labels: [n] observed values (>= 0).
    """
    p, mu, sigma, y = _columns(probability=probability, loc=loc, scale=scale, labels=labels)
    if np.any(sigma <= 0):
        raise ValueError("scale: every σ must be positive")
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        m = np.exp(mu + 0.5 * sigma ** 2)
        z = (np.log(np.where(y > 0, y, 1.0)) - mu) / sigma
        abs_to_label = np.where(y > 0, y * (2.0 * special.ndtr(z) - 1.0) + m * (1.0 - 2.0 * special.ndtr(z - sigma)),
                                m)
        pair = 2.0 * m * (2.0 * special.ndtr(sigma / np.sqrt(2.0)) - 1.0)
        return (1.0 - p) * y + p * abs_to_label - p * (1.0 - p) * m - 0.5 * p ** 2 * pair


def quantile_knots(quantiles, levels: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
    """The distribution that served quantiles describe, as CDF knots for `crps_piecewise`.

    Given quantiles q_1 <= ... <= q_K at levels τ_1 < ... < τ_K (crossed quantiles are sorted per
    row), the CDF is linear between consecutive (q_k, τ_k), and the mass below τ_1 and above τ_K
    sits at q_1 and q_K (no tail is invented beyond what the model serves): knots
    (q_1, 0), (q_1, τ_1), ..., (q_K, τ_K), (q_K, 1).

    Args:
      quantiles: [n, K] the served quantiles.
      levels: the K levels, increasing in (0, 1).

    Returns:
      (x [n, K + 2], F [n, K + 2]).
    """
    quantiles = np.sort(np.asarray(quantiles, dtype=np.float64), axis=1)
    levels = np.asarray(levels, dtype=np.float64)
    if quantiles.ndim != 2 or quantiles.shape[1] != levels.size:
        raise ValueError(f"quantiles: shape {quantiles.shape} is not [n, {levels.size}] for levels {levels}")
    if np.any(np.diff(levels) <= 0) or levels[0] <= 0 or levels[-1] >= 1:
        raise ValueError(f"levels: {levels} must increase strictly inside (0, 1)")
    x = np.concatenate([quantiles[:, :1], quantiles, quantiles[:, -1:]], axis=1)
    cdf = np.broadcast_to(np.concatenate([[0.0], levels, [1.0]]), x.shape).copy()
    return x, cdf


def crps_piecewise(x, cdf, labels) -> np.ndarray:
    """Exact CRPS of distributions whose CDF is piecewise linear through knots, [n].

    Row i's CDF is 0 below x[i, 0], 1 from x[i, -1] on, and linear from (x[i, k], F[i, k]) to
    (x[i, k + 1], F[i, k + 1]) in between; a repeated x is a jump (a point mass).

    On a segment where G = F − 1[x ≥ y] is linear from G_u to G_v over a length L, ∫ G² dx =
    L·(G_u² + G_u·G_v + G_v²)/3; each segment is split at y.

    Args:
      x: [n, K] knot positions, non-decreasing along each row.
      cdf: [n, K] CDF values at the knots, non-decreasing from 0 to 1 along each row.
      labels: [n] observed values.
    """
    x, cdf = np.asarray(x, dtype=np.float64), np.asarray(cdf, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    if x.shape != cdf.shape or x.ndim != 2 or x.shape[0] != labels.size:
        raise ValueError(f"x {x.shape} and cdf {cdf.shape} must both be [n, K] for {labels.size} labels")
    if np.any(np.diff(x, axis=1) < 0) or np.any(np.diff(cdf, axis=1) < -1e-12):
        raise ValueError("x and cdf must be non-decreasing along each row")
    if np.any(np.abs(cdf[:, 0]) > 1e-9) or np.any(np.abs(cdf[:, -1] - 1.0) > 1e-9):
        raise ValueError("cdf must start at 0 and end at 1 on every row")
    out = np.empty(labels.size)
    for start in range(0, labels.size, _CHUNK):
        rows = slice(start, start + _CHUNK)
        a, b = x[rows, :-1], x[rows, 1:]
        fa, fb = cdf[rows, :-1], cdf[rows, 1:]
        y = labels[rows, None]
        width = b - a
        slope = np.divide(fb - fa, width, out=np.zeros_like(width), where=width > 0)
        split = np.clip(y, a, b)  # below: indicator 0; above: 1
        f_split = fa + slope * (split - a)
        below = _segment_integral(fa, f_split, split - a)
        above = _segment_integral(f_split - 1.0, fb - 1.0, b - split)
        outside = np.maximum(x[rows, 0] - labels[rows], 0.0) + np.maximum(labels[rows] - x[rows, -1], 0.0)
        out[rows] = np.sum(below + above, axis=1) + outside
    return out


def coverage_by_group(labels, lower, upper, prediction, groups: int = 10) -> np.ndarray:
    """Share of labels inside [lower, upper] within each of `groups` equal-count groups by prediction, [groups].

    Rows are sorted by prediction (stable), lowest first, and split as `models.metrics.decile_calibration` does.
    """
    labels, lower, upper, prediction = _columns(labels=labels, lower=lower, upper=upper, prediction=prediction)
    if not 1 <= groups <= labels.size:
        raise ValueError(f"groups: {groups} must be between 1 and the number of rows ({labels.size})")
    covered = (lower <= labels) & (labels <= upper)
    return np.array([covered[rows].mean() for rows in np.array_split(np.argsort(prediction, kind="stable"), groups)])


def _segment_integral(start, end, length) -> np.ndarray:
    """∫ of the square of a linear function going from `start` to `end` over `length`."""
    return length * (start ** 2 + start * end + end ** 2) / 3.0


def _columns(**named) -> Tuple[np.ndarray, ...]:
    arrays = {name: np.asarray(value, dtype=np.float64).reshape(-1) for name, value in named.items()}
    sizes = {name: a.size for name, a in arrays.items()}
    if len(set(sizes.values())) != 1 or 0 in sizes.values():
        raise ValueError(f"scoring rules: columns must be non-empty and of one length, got {sizes}")
    return tuple(arrays.values())
