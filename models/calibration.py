"""Split-conformal calibration of the served interval [lower, upper] on held-out (valid) rows.

Conformalized quantile regression (CQR; Romano, Patterson & Candès 2019, arXiv 1905.03222) with
one offset per tail, in the label-transform space t (log1p for LTV, `models.label_transform`).
Given the model's uncalibrated interval [l, u] and median m, offsets q = (q_lo, q_hi) serve

    lower = 0                        if l <= 0 (the model puts at least 10% at zero: kept),
            min(t⁻¹(t(l) − q_lo), m) otherwise, then clipped at 0;
    upper = max(t⁻¹(t(u) + q_hi), m),

so the interval always contains the median, a negative offset shrinks an interval that is too
wide, and a point predictor (l = u = m) gets a non-degenerate interval around its value. Row i's
conformity score per tail is the smallest offset that covers its label y_i (−∞: covered whatever
the offset; a label on the bound counts as covered):

    s_lo = t(l) − t(y)  if y < m and l > 0, else −∞;      s_hi = t(y) − t(u)  if y > m, else −∞.

A row misses on one side at most, so the tails share one budget of misses on the n held-out rows,
n − ⌈(n+1)(1 − α)⌉ (the split-conformal rank). Each tail first gets half of it (its own CQR
quantile at level ⌈(n+1)(1 − α/2)⌉/n), and a tail that cannot use its half passes the rest to
the other (lower first, then upper, then lower again if the upper left some): on zero-inflated
labels the lower tail rarely can (a zero label is covered by a lower bound of 0), and without the
pass the interval would cover about 1 − α/2. A tail whose offset comes out −∞ (fewer of its rows
can miss than it may miss) keeps the model's bound (offset 0) rather than shrinking to the median
on no evidence. The held-out coverage is then at least ⌈(n+1)(1 − α)⌉/n; new rows are covered at
about 1 − α (at least 1 − α when no share is passed, by the split-conformal argument per tail).
Measured on the bench's three data sets and seven kinds, eval coverage 0.77–0.82 for every model.

Marginal coverage can hide a poor interval where it matters most: on zero-inflated LTV the 80%
interval covered about 80% of all eval rows but only 7–21% of the top value bucket. So the
held-out rows are split into `groups` by the model's own `prediction` (quantile thresholds on
those rows; the Mondrian split-conformal scheme, Vovk et al. 2005), and each group gets its own
offsets by the rule above: coverage then holds within every predicted-value group, e.g. among the
rows the model calls its most valuable. A group needs MIN_GROUP_ROWS held-out rows, so smaller
held-out sets get fewer groups (one group is the plain scheme above).

Everything here is numpy, except `calibrate_model`, which predicts with a built model and sets
the offsets that `models.base.ValueModel.predict_outputs` applies (the same formula, in TF ops).
"""

import dataclasses
import math
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from models import mean_calibration
from models.choices import LABEL_TRANSFORMS as TRANSFORMS

# Miscoverage of the served interval: base.INTERVAL_QUANTILES = (0.1, 0.9) is an 80% interval.
DEFAULT_ALPHA = 0.2
# Added to each offset fitted from a score (transformed units): the label that sets an offset lies on
# the calibrated bound, and float32 round-off at serving must not push it outside.
ROUNDING_MARGIN = 1e-5
# Fewest held-out rows per predicted-value group (each group's offsets are its own conformal quantiles).
MIN_GROUP_ROWS = 100


@dataclasses.dataclass(frozen=True)
class Offsets:
    """Offsets in transformed label units: the lower bound moves down by `lower`, the upper up by `upper`."""

    lower: float = 0.0
    upper: float = 0.0


def forward(value, transform: str) -> np.ndarray:
    """Label units -> transformed units (numpy twin of `models.label_transform.forward`)."""
    value = np.asarray(value, dtype=np.float64)
    if transform == "log1p":
        return np.log1p(np.maximum(value, 0.0))
    if transform == "identity":
        return value
    raise ValueError(f"label_transform: {transform!r} is not one of {TRANSFORMS}")


def inverse(value, transform: str) -> np.ndarray:
    """Transformed units -> label units (numpy twin of `models.label_transform.inverse`)."""
    value = np.asarray(value, dtype=np.float64)
    if transform == "log1p":
        return np.expm1(value)
    if transform == "identity":
        return value
    raise ValueError(f"label_transform: {transform!r} is not one of {TRANSFORMS}")


def conformity_scores(labels, lower, upper, median, transform: str) -> Tuple[np.ndarray, np.ndarray]:
    """Per-tail scores (s_lo, s_hi), each [n]: the offset each row needs on that side (−∞: none).

    Args:
      labels, lower, upper, median: [n] label units; the model's uncalibrated outputs.
      transform: the label transform ("log1p" or "identity").
    """
    labels, lower, upper, median = _columns(labels=labels, lower=lower, upper=upper, median=median)
    t_label = forward(labels, transform)
    s_lo = np.where((labels < median) & (lower > 0), forward(lower, transform) - t_label, -np.inf)
    s_hi = np.where(labels > median, t_label - forward(upper, transform), -np.inf)
    return s_lo, s_hi


def miss_budget(n: int, alpha: float) -> int:
    """How many of n held-out rows the calibrated interval may miss: n − ⌈(n+1)(1 − alpha)⌉.

    Raises:
      ValueError: if alpha is not in (0, 1), or n is too small for that level (n < 1/alpha − 1).
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha: {alpha} must be in (0, 1)")
    rank = math.ceil((n + 1) * (1.0 - alpha))
    if rank > n:
        raise ValueError(f"conformal calibration: {n} held-out rows are too few for alpha {alpha}; need {rank}")
    return n - rank


def tail_offset(scores: np.ndarray, misses: int) -> float:
    """The smallest offset that leaves at most `misses` scores above it (−∞ when any offset does)."""
    scores = np.sort(np.asarray(scores, dtype=np.float64).reshape(-1))
    if misses >= scores.size:
        return -math.inf
    return float(scores[scores.size - misses - 1])


def interval_offsets(labels, lower, upper, median, transform: str, alpha: float = DEFAULT_ALPHA) -> Offsets:
    """Per-tail split-conformal offsets from held-out rows (see the module docstring).

    Args:
      labels, lower, upper, median: [n] label units; the model's uncalibrated outputs.
      transform: the label transform ("log1p" or "identity").
      alpha: miscoverage of the interval (0.2 for the served 10%–90% interval).

    Returns:
      The offsets. Where a tail's conformal offset is −∞ (fewer of its rows can miss than it may
      miss, so any offset would do), it keeps the model's bound: offset 0.
    """
    s_lo, s_hi = conformity_scores(labels, lower, upper, median, transform)
    n = s_lo.size
    budget, half = miss_budget(n, alpha), miss_budget(n, alpha / 2.0)
    q_lo = _finite(tail_offset(s_lo, half))
    q_hi = _finite(tail_offset(s_hi, budget - int(np.sum(s_lo > q_lo))))
    unused = budget - int(np.sum(s_hi > q_hi))
    if unused > half:  # the upper tail left more than half the budget: the lower tail may use it
        q_lo = min(q_lo, _finite(tail_offset(s_lo, unused)))
    return Offsets(q_lo, q_hi)


@dataclasses.dataclass(frozen=True)
class GroupedOffsets:
    """Offsets per predicted-value group: group g holds the rows with thresholds[g-1] <= prediction <
    thresholds[g] (the first group is open below, the last above); len(offsets) = len(thresholds) + 1."""

    thresholds: Tuple[float, ...] = ()
    offsets: Tuple[Offsets, ...] = (Offsets(),)

    def __post_init__(self):
        if len(self.offsets) != len(self.thresholds) + 1:
            raise ValueError(f"grouped offsets: {len(self.offsets)} offsets for {len(self.thresholds)} thresholds; "
                             "need one more offset than thresholds")
        if list(self.thresholds) != sorted(set(self.thresholds)):
            raise ValueError(f"grouped offsets: thresholds {self.thresholds} must be strictly increasing")

    def group_of(self, prediction) -> np.ndarray:
        """Group index [n] of each prediction."""
        return _group_index(self.thresholds, prediction)


def _group_index(thresholds, prediction) -> np.ndarray:
    """How many thresholds are at or below each prediction: its group, [n] (as `predict_outputs` serves it)."""
    return np.searchsorted(np.asarray(thresholds, dtype=np.float64),
                           np.asarray(prediction, dtype=np.float64).reshape(-1), side="right")


def group_thresholds(prediction, groups: int, min_rows: int = MIN_GROUP_ROWS) -> Tuple[float, ...]:
    """Thresholds that split held-out predictions into up to `groups` groups of about equal size.

    At most G = n // min_rows groups; threshold g is the prediction of rank ⌊g·n / G⌋ (sorted), and a
    threshold that would leave a group (or the rows above it) with fewer than min_rows rows — ties in
    the predictions — is dropped, so the actual number of groups can be smaller.
    """
    if groups < 1:
        raise ValueError(f"interval_groups: {groups} must be at least 1")
    prediction = np.sort(np.asarray(prediction, dtype=np.float64).reshape(-1))
    count = min(groups, prediction.size // max(min_rows, 1))
    thresholds, previous = [], 0
    for g in range(1, count):
        value = float(prediction[(g * prediction.size) // count])
        at = int(np.searchsorted(prediction, value, side="left"))
        if at - previous >= min_rows and prediction.size - at >= min_rows and (not thresholds or value > thresholds[-1]):
            thresholds.append(value)
            previous = at
    return tuple(thresholds)


def grouped_offsets(labels, lower, upper, median, prediction, transform: str, alpha: float = DEFAULT_ALPHA,
                    groups: int = 1, min_rows: int = MIN_GROUP_ROWS) -> GroupedOffsets:
    """Split-conformal offsets per predicted-value group (`interval_offsets` on each group's rows).

    Args:
      labels, lower, upper, median: [n] label units; the model's uncalibrated outputs.
      prediction: [n] the model's served `prediction`, which picks each row's group.
      transform: the label transform ("log1p" or "identity").
      alpha: miscoverage of the interval, in every group.
      groups: the most groups (`group_thresholds`); 1 gives the marginal scheme.
      min_rows: fewest held-out rows per group.
    """
    labels, lower, upper, median, prediction = _columns(labels=labels, lower=lower, upper=upper, median=median,
                                                        prediction=prediction)
    thresholds = group_thresholds(prediction, groups, min_rows)
    group = _group_index(thresholds, prediction)
    offsets = tuple(interval_offsets(labels[group == g], lower[group == g], upper[group == g], median[group == g],
                                     transform, alpha)
                    for g in range(len(thresholds) + 1))
    return GroupedOffsets(thresholds, offsets)


def quantile_offsets(labels, lower, upper, median, prediction, transform: str, level: float = 0.1,
                     groups: int = 1, min_rows: int = MIN_GROUP_ROWS) -> GroupedOffsets:
    """Offsets that make each bound a conformal quantile on its own: lower the `level` quantile and upper
    the 1 − `level` quantile, in every predicted-value group (the groups of `grouped_offsets`).

    The served interval's tails share one budget of misses (`interval_offsets`): on zero-inflated
    labels its lower bound is often 0, which misses nothing, so its upper bound takes nearly all of
    the 20% and sits near the 80% quantile, as an 80% interval should. Scored as a 90% quantile
    (pinball loss at 90%) that bound is the wrong quantile, for every model alike. Here each tail
    gets its own budget, miss_budget(n, level), and none is passed: the bounds to score a model's
    10% and 90% quantiles with. (Lower: a row with a bound at or below 0 keeps 0, as served.)
    """
    labels, lower, upper, median, prediction = _columns(labels=labels, lower=lower, upper=upper, median=median,
                                                        prediction=prediction)
    thresholds = group_thresholds(prediction, groups, min_rows)
    group = _group_index(thresholds, prediction)
    offsets = []
    for g in range(len(thresholds) + 1):
        rows = group == g
        s_lo, s_hi = conformity_scores(labels[rows], lower[rows], upper[rows], median[rows], transform)
        misses = miss_budget(int(rows.sum()), level)
        offsets.append(Offsets(_finite(tail_offset(s_lo, misses)), _finite(tail_offset(s_hi, misses))))
    return GroupedOffsets(thresholds, tuple(offsets))


def apply_grouped(lower, upper, median, prediction, grouped: GroupedOffsets, transform: str
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """`apply_offsets` with each row's group's offsets."""
    lower, upper, median = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (lower, upper, median))
    group = grouped.group_of(prediction)
    new_lower, new_upper = np.empty_like(lower), np.empty_like(upper)
    for g, offsets in enumerate(grouped.offsets):
        rows = group == g
        new_lower[rows], new_upper[rows] = apply_offsets(lower[rows], upper[rows], median[rows], offsets, transform)
    return new_lower, new_upper


def group_coverage(labels, lower, upper, prediction, grouped: GroupedOffsets) -> Tuple[float, ...]:
    """Coverage of [lower, upper] within each predicted-value group (NaN for an empty group)."""
    labels, lower, upper = _columns(labels=labels, lower=lower, upper=upper)
    group = grouped.group_of(prediction)
    return tuple(coverage(labels[group == g], lower[group == g], upper[group == g]) if np.any(group == g)
                 else math.nan for g in range(len(grouped.offsets)))


def apply_offsets(lower, upper, median, offsets: Offsets, transform: str) -> Tuple[np.ndarray, np.ndarray]:
    """The calibrated (lower, upper) in label units, as `ValueModel.predict_outputs` serves them (before its cap)."""
    lower, upper, median = (np.asarray(v, dtype=np.float64) for v in (lower, upper, median))
    shifted = np.minimum(inverse(forward(lower, transform) - offsets.lower, transform), median)
    new_lower = np.where(lower > 0, np.maximum(shifted, 0.0), 0.0)
    new_upper = np.maximum(inverse(forward(upper, transform) + offsets.upper, transform), median)
    return new_lower, new_upper


def coverage(labels, lower, upper) -> float:
    """Share of labels in the closed interval [lower, upper]."""
    labels, lower, upper = _columns(labels=labels, lower=lower, upper=upper)
    return float(np.mean((lower <= labels) & (labels <= upper)))


def calibrate_model(model, dataset, alpha: float = DEFAULT_ALPHA,
                    log: Optional[Callable[[str], None]] = print, predict: Optional[Callable] = None,
                    mean: str = "none") -> Dict[str, Any]:
    """Fits the mean map and the interval offsets of a trained `ValueModel` on held-out rows and sets them.

    The mean map (`models.mean_calibration`, method `mean`) is fitted on the model's `prediction`
    first; the interval is then calibrated within groups of the mapped prediction, as
    `predict_outputs` serves them.

    Args:
      model: a `models.base.ValueModel`; its offsets are reset to 0 before predicting, and its
        `interval_groups` is the most predicted-value groups (`grouped_offsets`).
      dataset: one pass of (transformed features, transformed label) batches: the valid split.
      alpha: miscoverage of the interval (0.2 for the served 10%–90% interval).
      log: called with one line (coverage on these rows before and after); None for silence.
      predict: `model.predict_outputs` already wrapped in a tf.function for these features (one
        trace shared with other predictions); None wraps it here.
      mean: the mean map's method (`models.choices.MEAN_CALIBRATIONS`; "none": the identity).

    Returns:
      rows, coverage_before, coverage_after (both on these rows), grouped (the `GroupedOffsets` set),
      thresholds (between groups), offset_lower and offset_upper (one per group), group_coverage_after
      (per group), mean_knots (the map's knots), mean_label, mean_prediction_before and
      mean_prediction_after (on these rows).
    """
    import tensorflow as tf

    model.set_interval_offsets(GroupedOffsets())
    model.set_mean_knots(mean_calibration.identity_knots())
    predict = predict or tf.function(model.predict_outputs, reduce_retracing=True)
    parts: Dict[str, list] = {"label": [], "lower": [], "upper": [], "median": [], "prediction": []}
    for features, target in dataset:
        outputs = predict(features)
        parts["label"].append(model.label_units(target).numpy())
        for key in ("lower", "upper", "median", "prediction"):
            parts[key].append(outputs[key].numpy())
    labels, lower, upper, median, prediction = (np.concatenate(parts[key]).astype(np.float64)
                                                for key in ("label", "lower", "upper", "median", "prediction"))
    knots = mean_calibration.fit(labels, prediction, mean)
    model.set_mean_knots(knots)
    raw_mean = float(prediction.mean())
    prediction = np.clip(mean_calibration.apply(knots, prediction), 0.0, model.prediction_cap)
    transform = model.label_transform_name
    grouped = grouped_offsets(labels, lower, upper, median, prediction, transform, alpha, model.interval_groups)
    model.set_interval_offsets(grouped)
    calibrated = apply_grouped(lower, upper, median, prediction, grouped, transform)
    summary = {"rows": labels.size, "coverage_before": coverage(labels, lower, upper),
               "mean_knots": knots, "mean_label": float(labels.mean()), "mean_prediction_before": raw_mean,
               "mean_prediction_after": float(prediction.mean()),
               "coverage_after": coverage(labels, *calibrated),
               "grouped": grouped,
               "thresholds": list(grouped.thresholds),
               "offset_lower": [o.lower for o in grouped.offsets],
               "offset_upper": [o.upper for o in grouped.offsets],
               "group_coverage_after": list(group_coverage(labels, *calibrated, prediction, grouped))}
    if log is not None:
        if mean != "none":
            log(f"    mean calibration ({mean}) on {labels.size:,} valid rows: mean prediction "
                f"{raw_mean:.4g} -> {summary['mean_prediction_after']:.4g} (mean label {summary['mean_label']:.4g})")
        offsets = ", ".join(f"{o.lower:+.3f}/{o.upper:+.3f}" for o in grouped.offsets)
        log(f"    interval calibration on {labels.size:,} valid rows, {len(grouped.offsets)} predicted-value "
            f"group(s): {1 - alpha:.0%} interval coverage {summary['coverage_before']:.3f} -> "
            f"{summary['coverage_after']:.3f} (lower/upper offsets in {transform} units: {offsets})")
    return summary


def _finite(offset: float) -> float:
    """−∞ -> 0; a finite offset gets ROUNDING_MARGIN added, so the row whose score it is stays covered."""
    return offset + ROUNDING_MARGIN if math.isfinite(offset) else 0.0


def _columns(**named):
    arrays = {name: np.asarray(value, dtype=np.float64).reshape(-1) for name, value in named.items()}
    sizes = {name: a.size for name, a in arrays.items()}
    if len(set(sizes.values())) != 1 or 0 in sizes.values():
        raise ValueError(f"conformal calibration: columns must be non-empty and of one length, got {sizes}")
    return tuple(arrays.values())
