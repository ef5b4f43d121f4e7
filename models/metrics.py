"""Numpy evaluation metrics for heavy-tailed, zero-inflated value predictions."""

from typing import Dict, Tuple

import numpy as np
from scipy import stats


def mae(labels, predictions) -> float:
    """Mean absolute error.

    Args:
        labels: 1-D array-like of true values.
        predictions: 1-D array-like of predicted values, same length as labels.

    Returns:
        The mean of |label - prediction|.

    Raises:
        ValueError: If an argument is not 1-D, is empty or differs in length.
    """
    labels, predictions = _as_columns(labels=labels, predictions=predictions)
    return float(np.mean(np.abs(labels - predictions)))


def rmse(labels, predictions) -> float:
    """Root mean squared error.

    Args:
        labels: 1-D array-like of true values.
        predictions: 1-D array-like of predicted values, same length as labels.

    Returns:
        The square root of the mean of (label - prediction)**2.

    Raises:
        ValueError: If an argument is not 1-D, is empty or differs in length.
    """
    labels, predictions = _as_columns(labels=labels, predictions=predictions)
    return float(np.sqrt(np.mean((labels - predictions) ** 2)))


def normalized_gini(labels, predictions) -> float:
    """Gini of the model's gain curve divided by the Gini of a perfect ranking.

    Follows google/lifetime_value: rows are sorted by prediction, descending
    (stable sort, so tied predictions keep their input order), the cumulative
    share of the total label is taken along that order, and the raw Gini is
    2 * mean(cumulative share) - 1. The same is done sorting by the label
    itself, and the ratio is returned: 1.0 for a perfect ranking, about 0 for
    a random one, negative for a reversed one.

    Args:
        labels: 1-D array-like of non-negative true values.
        predictions: 1-D array-like of predicted values, same length as labels.

    Returns:
        The normalized Gini, or 0.0 when all labels are equal or sum to zero
        (there is nothing to rank).

    Raises:
        ValueError: If an argument is not 1-D, is empty or differs in length.
    """
    labels, predictions = _as_columns(labels=labels, predictions=predictions)
    if _is_constant(labels) or labels.sum() == 0:
        return 0.0
    model_gini = _raw_gini(labels, np.argsort(-predictions, kind="stable"))
    perfect_gini = _raw_gini(labels, np.argsort(-labels, kind="stable"))
    return float(model_gini / perfect_gini)


def spearman(labels, predictions) -> float:
    """Spearman rank correlation, ties given their average rank.

    Args:
        labels: 1-D array-like of true values.
        predictions: 1-D array-like of predicted values, same length as labels.

    Returns:
        Spearman's rho, or 0.0 when labels or predictions are constant.

    Raises:
        ValueError: If an argument is not 1-D, is empty or differs in length.
    """
    labels, predictions = _as_columns(labels=labels, predictions=predictions)
    if _is_constant(labels) or _is_constant(predictions):
        return 0.0
    label_ranks = stats.rankdata(labels)
    prediction_ranks = stats.rankdata(predictions)
    return float(np.corrcoef(label_ranks, prediction_ranks)[0, 1])


def xauc(labels, predictions) -> float:
    """Fraction of pairs of rows that the predictions order like the labels.

    Only pairs with different labels are counted (the denominator). A pair is
    concordant (1) when the row with the larger label has the larger
    prediction, discordant (0) when it has the smaller one, and counts 0.5
    when the two predictions are tied. Runs in O(n log n): discordant pairs
    are the inversions of the predictions taken in label order.

    Args:
        labels: 1-D array-like of true values.
        predictions: 1-D array-like of predicted values, same length as labels.

    Returns:
        The concordant fraction in [0, 1]; 0.5 when all labels are equal
        (there is no pair to order).

    Raises:
        ValueError: If an argument is not 1-D, is empty or differs in length.
    """
    labels, predictions = _as_columns(labels=labels, predictions=predictions)
    all_pairs = labels.size * (labels.size - 1) // 2
    ordered_pairs = all_pairs - _tied_pair_count(labels)
    if ordered_pairs == 0:
        return 0.5
    tied_prediction_pairs = _tied_pair_count(predictions) - _tied_pair_count(
        labels, predictions
    )
    # Within a label, predictions ascend, so every inversion is a discordant
    # pair of rows with different labels.
    by_label_then_prediction = np.lexsort((predictions, labels))
    discordant_pairs = _count_inversions(predictions[by_label_then_prediction])
    concordant_pairs = ordered_pairs - discordant_pairs - tied_prediction_pairs
    return (concordant_pairs + 0.5 * tied_prediction_pairs) / ordered_pairs


def decile_calibration(labels, predictions, n: int = 10) -> Dict[str, object]:
    """Compares mean prediction and mean label within prediction quantiles.

    Rows are sorted by prediction, ascending (stable sort), and split into n
    groups of equal count (sizes differ by at most one), so group 0 holds the
    lowest predictions.

    Args:
        labels: 1-D array-like of true values.
        predictions: 1-D array-like of predicted values, same length as labels.
        n: Number of groups, between 1 and the number of rows.

    Returns:
        A dict with numpy arrays `pred_mean`, `label_mean` and `count` (one
        entry per group) and the float `mean_abs_rel_error`: the mean over
        groups of |pred_mean - label_mean| / max(label_mean, tiny), where tiny
        is the smallest positive float64. A group whose mean label is zero
        therefore makes the error huge (or inf) unless its mean prediction is
        also exactly zero.

    Raises:
        ValueError: If an argument is not 1-D, is empty or differs in length,
            or n is not between 1 and the number of rows.
    """
    labels, predictions = _as_columns(labels=labels, predictions=predictions)
    if not 1 <= n <= labels.size:
        raise ValueError(
            f"n must be between 1 and the number of rows ({labels.size}), got {n}"
        )
    groups = np.array_split(np.argsort(predictions, kind="stable"), n)
    pred_mean = np.array([predictions[group].mean() for group in groups])
    label_mean = np.array([labels[group].mean() for group in groups])
    relative_error = np.abs(pred_mean - label_mean) / np.maximum(
        label_mean, np.finfo(np.float64).tiny
    )
    return {
        "pred_mean": pred_mean,
        "label_mean": label_mean,
        "count": np.array([group.size for group in groups]),
        "mean_abs_rel_error": float(relative_error.mean()),
    }


def interval_coverage(labels, lower, upper) -> float:
    """Fraction of rows whose label lies in the closed interval [lower, upper].

    Args:
        labels: 1-D array-like of true values.
        lower: 1-D array-like of interval lower bounds, same length as labels.
        upper: 1-D array-like of interval upper bounds, same length as labels.

    Returns:
        The fraction of rows with lower <= label <= upper.

    Raises:
        ValueError: If an argument is not 1-D, is empty or differs in length.
    """
    return float(np.mean(interval_covered(labels, lower, upper)))


def interval_covered(labels, lower, upper) -> np.ndarray:
    """Per row, whether the label lies in the closed interval [lower, upper] (bool array).

    Raises:
        ValueError: If an argument is not 1-D, is empty or differs in length.
    """
    labels, lower, upper = _as_columns(labels=labels, lower=lower, upper=upper)
    return (lower <= labels) & (labels <= upper)


def summary(labels, predictions) -> Dict[str, float]:
    """The headline metrics of a set of predictions.

    Args:
        labels: 1-D array-like of true values.
        predictions: 1-D array-like of predicted values, same length as labels.

    Returns:
        A dict with keys mae, rmse, normalized_gini, spearman, xauc,
        mean_label, mean_prediction and count.

    Raises:
        ValueError: If an argument is not 1-D, is empty or differs in length.
    """
    labels, predictions = _as_columns(labels=labels, predictions=predictions)
    return {
        "mae": mae(labels, predictions),
        "rmse": rmse(labels, predictions),
        "normalized_gini": normalized_gini(labels, predictions),
        "spearman": spearman(labels, predictions),
        "xauc": xauc(labels, predictions),
        "mean_label": float(labels.mean()),
        "mean_prediction": float(predictions.mean()),
        "count": int(labels.size),
    }


def _as_columns(**named_values) -> Tuple[np.ndarray, ...]:
    """Converts named 1-D array-likes to float arrays of one non-zero length.

    Args:
        **named_values: The arrays, keyed by the argument name used in errors;
            the first one sets the expected length.

    Returns:
        The float64 arrays, in argument order.

    Raises:
        ValueError: Naming the argument that is not 1-D, is empty, or has a
            different length from the first one.
    """
    columns = []
    for name, values in named_values.items():
        column = np.asarray(values, dtype=np.float64)
        if column.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {column.shape}")
        if column.size == 0:
            raise ValueError(f"{name} must not be empty")
        columns.append(column)
    first_name = next(iter(named_values))
    for name, column in zip(named_values, columns):
        if column.size != columns[0].size:
            raise ValueError(
                f"{name} has length {column.size} but {first_name} has "
                f"length {columns[0].size}"
            )
    return tuple(columns)


def _is_constant(values: np.ndarray) -> bool:
    """Whether every value equals the first."""
    return bool(np.all(values == values[0]))


def _raw_gini(labels: np.ndarray, order: np.ndarray) -> float:
    """2 * mean cumulative label share - 1, taking rows in the given order."""
    cumulative_share = np.cumsum(labels[order]) / labels.sum()
    return 2.0 * cumulative_share.mean() - 1.0


def _tied_pair_count(*columns: np.ndarray) -> int:
    """Number of pairs of rows that are equal in every given column."""
    _, counts = np.unique(np.column_stack(columns), axis=0, return_counts=True)
    return int(np.sum(counts * (counts - 1) // 2))


def _count_inversions(values: np.ndarray) -> int:
    """Number of pairs i < j with values[i] > values[j], by merge sort.

    Bottom-up merge sort, every pair of neighbouring runs merged at once: the
    values become dense integer ranks offset by block index, so one stable
    sort merges all blocks. A right-run element that moves from position p
    to merged position q passes exactly p - q larger left-run elements.

    Args:
        values: 1-D array.

    Returns:
        The inversion count.
    """
    _, runs = np.unique(values, return_inverse=True)
    rank_range = int(runs.max()) + 1
    position = np.arange(values.size)
    merged_position = np.empty_like(position)
    inversions = 0
    width = 1
    while width < values.size:
        block = position // (2 * width)
        order = np.argsort(block * rank_range + runs, kind="stable")
        merged_position[order] = position
        in_right_run = (position // width) % 2 == 1
        inversions += int(np.sum(position[in_right_run] - merged_position[in_right_run]))
        runs = runs[order]
        width *= 2
    return inversions
