"""Residual-quantization (RQ) codebooks of a scalar target: fitting, encoding and decoding.

The (transformed) target t is written as a sum of one centroid per level, coarse to fine:
t ≈ C_1[c_1] + C_2[c_2] + ... + C_L[c_L], where level l's centroids are fitted on the residuals
left by levels 1..l-1 (RQ-K-means, as in RQ-Reg, arXiv 2602.23012). Centroids are sorted at each
level, so code order is value order.

Zero is handled explicitly: code 0 of level 1 is the exact value 0 ("zero code"), every target
t <= 0 takes it, and a zero-coded target decodes to exactly 0 whatever the finer codes say. The
other level-1 centroids are fitted on the positive targets only, and finer levels on the
residuals of positive targets only, so a mass of zeros does not pull centroids towards 0.

Everything here is plain numpy; the TensorFlow twin of `encode`, which Transform runs, is
`models.codebook_analyzer.rq_codes`, and the two must agree (tested).
"""

from typing import List, Sequence, Tuple

import numpy as np

ZERO_CODE = 0


def _kmeans_pp_init(values: np.ndarray, weights: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Seeded k-means++ on distinct values (weights = multiplicities)."""
    centroids = [values[rng.choice(len(values), p=weights / weights.sum())]]
    dist = (values - centroids[0]) ** 2
    for _ in range(1, k):
        score = dist * weights
        if score.sum() <= 0:
            break
        centroids.append(values[rng.choice(len(values), p=score / score.sum())])
        dist = np.minimum(dist, (values - centroids[-1]) ** 2)
    return np.unique(np.asarray(centroids, dtype=np.float64))


def _assign(values: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid for sorted centroids (ties to the lower index)."""
    mids = (centroids[1:] + centroids[:-1]) / 2.0
    return np.searchsorted(mids, values, side="left")


def _update(values, weights, cum_w, cum_wv, centroids, median):
    """One Lloyd step on sorted values: clusters are contiguous ranges, so sums come from prefix sums."""
    size = centroids.size
    assign = _assign(values, centroids)
    starts = np.searchsorted(assign, np.arange(size), side="left")
    ends = np.searchsorted(assign, np.arange(size), side="right")
    occupied = ends > starts
    w_before = np.where(starts > 0, cum_w[np.maximum(starts - 1, 0)], 0.0)
    w_total = cum_w[np.maximum(ends - 1, 0)] - w_before
    new = centroids.copy()
    if median:
        half = w_before + 0.5 * w_total
        idx = np.minimum(np.searchsorted(cum_w, half, side="left"), values.size - 1)
        new[occupied] = values[idx[occupied]]
    else:
        wv_before = np.where(starts > 0, cum_wv[np.maximum(starts - 1, 0)], 0.0)
        wv_total = cum_wv[np.maximum(ends - 1, 0)] - wv_before
        new[occupied] = wv_total[occupied] / w_total[occupied]
    if not occupied.all():  # move dead centroids to the worst-fitted values not yet used
        err = weights * (values - centroids[assign]) ** 2
        worst = values[np.argsort(-err, kind="stable")]
        candidates = worst[~np.isin(worst, new)][: int((~occupied).sum())]
        new[np.flatnonzero(~occupied)[: candidates.size]] = candidates
    return np.sort(new)


def fit_level(
    values: np.ndarray,
    weights: np.ndarray,
    size: int,
    median: bool = False,
    iterations: int = 100,
    seed: int = 0,
) -> np.ndarray:
    """Fits `size` sorted 1-D centroids by weighted Lloyd iterations (k-means, or k-medians).

    Args:
      values: [N] distinct (or repeated) sample values.
      weights: [N] non-negative weights (counts).
      size: number of centroids K.
      median: update each centroid to its cluster's weighted median instead of mean.
      iterations: maximum Lloyd iterations.
      seed: seed of the k-means++ initialisation, so fits are reproducible.

    Returns:
      [K] float64 centroids in ascending order. With fewer distinct values than K, the distinct
      values padded by repeating the largest (the padding codes are never chosen by `encode`).
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    weights = np.asarray(weights, dtype=np.float64).ravel()
    keep = weights > 0
    values, weights = values[keep], weights[keep]
    if values.size == 0:
        return np.zeros(size)
    order = np.argsort(values, kind="stable")
    values, weights = values[order], weights[order]
    distinct, inverse = np.unique(values, return_inverse=True)
    counts = np.bincount(inverse, weights=weights)
    values, weights = distinct, counts
    if values.size <= size:
        return np.concatenate([values, np.full(size - values.size, values[-1])])

    rng = np.random.default_rng(seed)
    centroids = _kmeans_pp_init(values, weights, size, rng)
    while centroids.size < size:  # k-means++ stopped early: split the widest gaps
        gaps = np.diff(centroids)
        i = int(np.argmax(gaps))
        centroids = np.sort(np.append(centroids, centroids[i] + gaps[i] / 2))

    cum_w = np.cumsum(weights)
    cum_wv = np.cumsum(weights * values)
    for _ in range(iterations):
        new = _update(values, weights, cum_w, cum_wv, centroids, median)
        if np.allclose(new, centroids, rtol=0, atol=1e-12):
            break
        centroids = new
    return centroids


def encode_level(residual: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Nearest centroid index of each residual, [N] int64."""
    return _assign(np.asarray(residual, dtype=np.float64), np.asarray(centroids, dtype=np.float64)).astype(np.int64)


def first_level_codes(target: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Level-1 codes with the zero rule: t <= 0 -> ZERO_CODE, else the nearest non-zero centroid."""
    target = np.asarray(target, dtype=np.float64)
    nonzero = encode_level(target, centroids[1:]) + 1
    return np.where(target <= 0, ZERO_CODE, nonzero)


def fit(
    target: np.ndarray,
    sizes: Sequence[int],
    first_level_median: bool = True,
    seed: int = 0,
) -> List[np.ndarray]:
    """Fits all levels on a target sample (the in-memory reference of the Beam analyzer).

    Args:
      target: [N] transformed targets, >= 0.
      sizes: codes per level, e.g. (32, 16, 16); level 1 includes the zero code.
      first_level_median: fit level 1 with k-medians.
      seed: seed for the k-means++ initialisation.

    Returns:
      One sorted centroid array per level; level 1 starts with the exact 0.
    """
    target = np.asarray(target, dtype=np.float64).ravel()
    positive = target > 0
    levels = [np.concatenate([[0.0], fit_level(target[positive], np.ones(positive.sum()), sizes[0] - 1,
                                               median=first_level_median, seed=seed)])]
    residual = target - levels[0][first_level_codes(target, levels[0])]
    for size in sizes[1:]:
        centroids = fit_level(residual[positive], np.ones(positive.sum()), size, seed=seed)
        levels.append(centroids)
        residual = residual - centroids[encode_level(residual, centroids)]
    return levels


def encode(target: np.ndarray, levels: Sequence[np.ndarray]) -> np.ndarray:
    """Codes of each target, [N, L] int64, coarse to fine."""
    target = np.asarray(target, dtype=np.float64).ravel()
    codes = [first_level_codes(target, levels[0])]
    residual = target - levels[0][codes[0]]
    for centroids in levels[1:]:
        code = encode_level(residual, centroids)
        residual = residual - centroids[code]
        codes.append(code)
    return np.stack(codes, axis=1)


def decode(codes: np.ndarray, levels: Sequence[np.ndarray]) -> np.ndarray:
    """Sum of the chosen centroids, [N]; a zero-coded row decodes to exactly 0."""
    codes = np.asarray(codes, dtype=np.int64)
    total = sum(np.asarray(c, dtype=np.float64)[codes[:, i]] for i, c in enumerate(levels))
    return np.where(codes[:, 0] == ZERO_CODE, 0.0, total)


def leaf_values(levels: Sequence[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """Every code path and its decoded value: ([P, L] codes, [P] values), P = prod(sizes)."""
    grids = np.meshgrid(*[np.arange(len(c)) for c in levels], indexing="ij")
    codes = np.stack([g.ravel() for g in grids], axis=1)
    return codes, decode(codes, levels)
