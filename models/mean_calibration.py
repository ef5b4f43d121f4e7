"""Calibration of the served mean: a monotone map of `prediction` fitted on the valid split after training.

A network's mean level moves with its seed (early stopping picks weights whose overall level is a
few percent high or low), although its ranking barely does. A map g fitted on held-out rows puts
the level back: the Trainer (and the bench) fit it on the valid split after training, and
`models.base.ValueModel.predict_outputs` serves g(prediction). Methods (`model.mean_calibration`):

  - "none": g(x) = x.
  - "scale": g(x) = s·x with s = Σ labels / Σ predictions on the held-out rows, so the mean
    prediction equals the mean label there.
  - "deciles": the held-out rows are split into up to 10 equal groups by prediction (at least
    MIN_GROUP_ROWS rows each); g goes through (0, 0) and through (mean prediction, mean label) of
    every group, the mean labels made non-decreasing by pooling adjacent violators (isotonic
    regression on the groups) and then strictly increasing by at least MIN_RELATIVE_SLOPE of the
    overall slope; linear between the points, proportional (through the origin) above the last.

Every g is strictly increasing, so the order of the predictions — normalized Gini, Spearman, XAUC —
is unchanged; only the level (MAE, RMSE, decile calibration) moves. `prediction` alone is mapped:
the median and the interval bounds are the distribution's, and the interval is calibrated after
the map, on the mapped prediction's groups.

g is stored as KNOTS points (x_k, y_k) with x_0 = y_0 = 0 and x increasing; unused points
continue the last segment's proportional line, so any method fits the same fixed-size weights.
"""

from typing import Tuple

import numpy as np

from models.choices import MEAN_CALIBRATIONS

KNOTS = 11  # (0, 0) and up to 10 groups
MIN_GROUP_ROWS = 100
MIN_RELATIVE_SLOPE = 1e-3


def identity_knots() -> np.ndarray:
    """[2, KNOTS] knots of g(x) = x."""
    x = np.arange(KNOTS, dtype=np.float64)
    return np.stack([x, x])


def fit(labels, prediction, method: str) -> np.ndarray:
    """The knots [2, KNOTS] (row 0: x, row 1: y) of `method`'s map fitted on held-out rows.

    Args:
      labels: [n] held-out labels, label units.
      prediction: [n] the model's `prediction` on those rows (label units, >= 0).
      method: one of MEAN_CALIBRATIONS.
    """
    if method not in MEAN_CALIBRATIONS:
        raise ValueError(f"model.mean_calibration: {method!r} is not one of {MEAN_CALIBRATIONS}")
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    prediction = np.asarray(prediction, dtype=np.float64).reshape(-1)
    if labels.size != prediction.size or labels.size == 0:
        raise ValueError(f"mean calibration: {labels.size} labels and {prediction.size} predictions; need one "
                         "non-empty length")
    total = float(prediction.sum())
    if method == "none" or total <= 0 or labels.sum() <= 0:
        return identity_knots()
    if method == "scale":
        return _pad([0.0, 1.0], [0.0, float(labels.sum()) / total])
    groups = max(1, min(KNOTS - 1, prediction.size // MIN_GROUP_ROWS))
    parts = np.array_split(np.argsort(prediction, kind="stable"), groups)
    x = np.array([prediction[p].mean() for p in parts])
    y = np.array([labels[p].mean() for p in parts])
    count = np.array([p.size for p in parts], dtype=np.float64)
    x, y, count = _merge_equal(x, y, count)
    y = _isotonic(y, count)
    x, y = np.concatenate([[0.0], x]), np.concatenate([[0.0], y])
    if x[1] <= 0:  # every prediction of the lowest group is 0: keep 0 at 0, start from the next group
        x, y = np.delete(x, 1), np.delete(y, 1)
    if x.size == 1:
        return identity_knots()
    minimum = MIN_RELATIVE_SLOPE * float(labels.sum()) / total
    for k in range(1, x.size):
        y[k] = max(y[k], y[k - 1] + minimum * (x[k] - x[k - 1]))
    return _pad(x, y)


def apply(knots, prediction) -> np.ndarray:
    """g(prediction), [n] (numpy twin of `models.base.ValueModel.predict_outputs`' map)."""
    x, y = np.asarray(knots, dtype=np.float64)
    prediction = np.asarray(prediction, dtype=np.float64)
    inside = np.interp(prediction, x, y)
    return np.where(prediction > x[-1], prediction * (y[-1] / x[-1]), inside)


def _pad(x, y) -> np.ndarray:
    """Knots [2, KNOTS]: the given points, then points further along the line from the origin through the last."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    extra = np.arange(1, KNOTS - x.size + 1, dtype=np.float64)
    more_x = x[-1] * (1.0 + extra)
    return np.stack([np.concatenate([x, more_x]), np.concatenate([y, more_x * y[-1] / x[-1]])])


def _merge_equal(x: np.ndarray, y: np.ndarray, count: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Groups with the same mean prediction (ties) merged into one point, count-weighted."""
    keys, index = np.unique(x, return_inverse=True)
    weight = np.bincount(index, weights=count)
    return keys, np.bincount(index, weights=y * count) / weight, weight


def _isotonic(y: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Pool adjacent violators: the non-decreasing sequence closest to y in weighted least squares."""
    blocks = []  # [value, weight, length]
    for value, w in zip(y, weight):
        blocks.append([value, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, n2 = blocks.pop()
            v1, w1, n1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    return np.concatenate([[v] * n for v, _, n in blocks])
