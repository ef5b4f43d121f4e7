"""Bench scoring: a trained model's serving outputs on the eval split, the table's metrics, the serving
time and memory of its `serving_default` signature, and the reference scores of constant predictions."""

import math
import os
import tempfile
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from rqvalue.bench.data import Prepared
from rqvalue.bench.rows import Budget


def predict_function(model, columns: Mapping[str, np.ndarray]):
    """`model.predict_outputs` as one tf.function for any batch size (traced once)."""
    import tensorflow as tf

    signature = {k: tf.TensorSpec([None, *v.shape[1:]], tf.as_dtype(v.dtype)) for k, v in columns.items()}
    return tf.function(model.predict_outputs, input_signature=[signature])


def predict(fn, columns: Mapping[str, np.ndarray], batch: int = 1024) -> Dict[str, np.ndarray]:
    """Value outputs of `predict_function` over numpy features, in batches."""
    from models import base

    n = len(next(iter(columns.values())))
    parts: Dict[str, List[np.ndarray]] = {key: [] for key in base.SERVING_KEYS}
    for start in range(0, n, batch):
        outputs = fn({k: v[start:start + batch] for k, v in columns.items()})
        for key in base.SERVING_KEYS:
            parts[key].append(outputs[key].numpy().astype(np.float64))
    return {key: np.concatenate(v) for key, v in parts.items()}


def quantiles(valid_labels: np.ndarray, valid: Mapping[str, np.ndarray], scored: Mapping[str, np.ndarray],
              transform: str, groups: int, cap: Optional[float] = None) -> Dict[str, np.ndarray]:
    """`q10` and `q90` of the scored rows: the model's uncalibrated lower/upper bounds, each made a
    conformal 10% / 90% quantile on its own on the validation rows (`calibration.quantile_offsets`,
    in the predicted-value groups of the served interval). What the pinball losses at 10% and 90% and
    the quantile CRPS score; the served 80% interval's bounds share one budget of misses and are not
    the 10% and 90% quantiles on zero-inflated labels.

    Args:
      valid_labels: [n] validation labels (label units).
      valid, scored: uncalibrated outputs (prediction, median, lower, upper; label units) on the
        validation rows and on the rows to score; `prediction` picks the group, as served.
      transform: the label transform.
      groups: the most predicted-value groups (the model's interval_groups).
      cap: clip both to [0, cap], as the model serves its bounds (None: no cap).
    """
    from models import calibration

    grouped = calibration.quantile_offsets(valid_labels, valid["lower"], valid["upper"], valid["median"],
                                           valid["prediction"], transform, groups=groups)
    q10, q90 = calibration.apply_grouped(scored["lower"], scored["upper"], scored["median"], scored["prediction"],
                                         grouped, transform)
    if cap is not None:
        q10, q90 = np.clip(q10, 0.0, cap), np.clip(q90, 0.0, cap)
    return {"q10": q10, "q90": q90}


def uncalibrated(model, fn, splits: Mapping[str, Mapping[str, np.ndarray]], served) -> Dict[str, Dict[str, np.ndarray]]:
    """`predict` on each split with the model's interval offsets at zero (its own bounds; the mean map
    kept), then the `served` offsets (a `calibration.GroupedOffsets`) set back."""
    from models import calibration

    model.set_interval_offsets(calibration.GroupedOffsets())
    try:
        return {name: predict(fn, columns) for name, columns in splits.items()}
    finally:
        model.set_interval_offsets(served)


def scores(labels: np.ndarray, outputs: Mapping[str, np.ndarray]) -> Dict[str, float]:
    """The table's accuracy metrics of one set of serving outputs on the eval labels (label units)."""
    from models import metrics

    summary = metrics.summary(labels, outputs["prediction"])
    return {
        "mae": summary["mae"],
        "mae_median": metrics.mae(labels, outputs["median"]),
        "rmse": summary["rmse"],
        "normalized_gini": summary["normalized_gini"],
        "spearman": summary["spearman"],
        "xauc": summary["xauc"],
        **calibration_errors(labels, outputs["prediction"]),
        "coverage_80": metrics.interval_coverage(labels, outputs["lower"], outputs["upper"]),
        "mean_label": summary["mean_label"],
        "mean_prediction": summary["mean_prediction"],
        "eval_count": summary["count"],
    }


def calibration_errors(labels: np.ndarray, predictions: np.ndarray) -> Dict[str, float]:
    """Decile calibration two ways (models.metrics.decile_calibration divides by each decile's mean
    label, which is 0 for deciles of zeros):
      - calibration_error: mean over deciles of |pred_mean - label_mean|, divided by the overall mean
        label (always defined; the table's column);
      - calibration_error_positive: mean of |pred_mean - label_mean| / label_mean over the deciles whose
        mean label is positive (the ZILN notebook's decile MAPE without the undefined deciles)."""
    from models import metrics

    deciles = metrics.decile_calibration(labels, predictions, n=min(10, labels.size))
    gap = np.abs(deciles["pred_mean"] - deciles["label_mean"])
    positive = deciles["label_mean"] > 0
    overall = float(np.mean(labels))
    return {
        "calibration_error": float(gap.mean() / overall) if overall > 0 else math.nan,
        "calibration_error_positive": float(np.mean(gap[positive] / deciles["label_mean"][positive]))
        if positive.any() else math.nan,
        "calibration_positive_deciles": int(positive.sum()),
    }


def out_of_range(columns: Mapping[str, np.ndarray], numeric_keys: Sequence[str], limit: int
                 ) -> Dict[str, np.ndarray]:
    """Eval features (the first `limit` rows) with every numeric transformed feature set to 10x its max |value|."""
    from schemas import features
    rows = {k: v[:limit] for k, v in columns.items()}
    for key in numeric_keys:
        name = features.transformed_name(key)
        rows[name] = np.full_like(rows[name], 10.0 * float(np.max(np.abs(columns[name]))))
        piecewise = features.piecewise_linear_name(key)
        if piecewise in rows:  # above the last bin: every bin full, not missing
            rows[piecewise] = np.concatenate([np.ones_like(rows[piecewise][:, :-1]),
                                              np.zeros_like(rows[piecewise][:, -1:])], axis=1)
    return rows


def serving_time(model, prepared: Prepared, config: Mapping[str, Any], budget: Budget,
                 signatures: Optional[Mapping[str, Any]] = None) -> Tuple[float, Dict[str, np.ndarray]]:
    """(median ms per 1,000 examples of the serving signature, its outputs on the timed batch).

    `signatures`: the model's `models.serving.signatures` if already built (else they are built here)."""
    import tensorflow as tf

    from models import serving

    if signatures is None:
        signatures = serving.signatures(model, prepared.tft_output, config)
    serve = signatures["serving_default"]
    pool = prepared.serialized["eval"]
    n = min(budget.serving_batch, len(pool))
    batch = tf.constant(pool[:n])
    first = {k: v.numpy() for k, v in serve(batch).items()}  # warm-up (traces the function)
    times = []
    for _ in range(budget.serving_calls):
        started = time.perf_counter()
        outputs = serve(batch)
        _ = outputs["prediction"].numpy()
        times.append(time.perf_counter() - started)
    ms_per_1000 = 1000.0 * float(np.median(times)) * 1000.0 / n
    return ms_per_1000, first


def serving_memory(model, signatures: Mapping[str, Any], prepared: Prepared, rows: int) -> Dict[str, float]:
    """Peak extra memory of one `serving_default` call on `rows` raw eval examples, measured as for a
    pushed model: the model is exported as the Trainer exports it (`tf.saved_model.save` with its
    serving signatures) and `models.serving_cost.measure` scores the rows in a fresh process (so no
    memory this process already holds hides the call's own).

    Returns:
      serve_mb_per_1000 (extra MB of that call, per 1,000 rows; NaN with `serve_memory_error` if the
      fresh process failed), serve_memory_rows, and serve_memory_s (the seconds the export and the
      fresh process took).
    """
    import tensorflow as tf

    from models import serving_cost

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rqvalue_bench_serving_") as folder:
        examples = os.path.join(folder, "eval.tfrecord")
        with tf.io.TFRecordWriter(examples) as writer:
            for record in prepared.serialized["eval"][:rows]:
                writer.write(record)
        model_dir = os.path.join(folder, "model")
        tf.saved_model.save(model, model_dir, signatures=dict(signatures))
        try:
            [measured] = serving_cost.measure(model_dir, examples, [rows])
        except RuntimeError as e:  # e.g. the fresh process ran out of memory: the row's accuracy still counts
            return {"serve_mb_per_1000": math.nan, "serve_memory_rows": rows,
                    "serve_memory_error": str(e).splitlines()[0], "serve_memory_s": time.perf_counter() - started}
    return {"serve_mb_per_1000": float(measured["extra_mb"]) * 1000.0 / rows, "serve_memory_rows": rows,
            "serve_memory_s": time.perf_counter() - started}


def top_bucket_coverage(labels: np.ndarray, outputs: Mapping[str, np.ndarray], eval_x: Mapping[str, np.ndarray],
                        config: Mapping[str, Any]) -> float:
    """80% interval coverage on the eval rows of the top `value_bucket` (NaN if there are none)."""
    from models import metrics
    from schemas import features

    top = np.asarray(eval_x[features.VALUE_BUCKET_KEY]).reshape(-1) == config["value_buckets"] - 1
    if not top.any():
        return math.nan
    return metrics.interval_coverage(labels[top], outputs["lower"][top], outputs["upper"][top])


def group_coverage(labels: np.ndarray, outputs: Mapping[str, np.ndarray], grouped) -> Dict[str, Any]:
    """80% interval coverage on eval within each predicted-value group of the model's calibration
    (`grouped`, a `calibration.GroupedOffsets`): `coverage_80_by_group`, lowest prediction first, and
    the lowest of them, `coverage_80_worst_group`."""
    from models import calibration

    by_group = calibration.group_coverage(labels, outputs["lower"], outputs["upper"], outputs["prediction"], grouped)
    finite = [c for c in by_group if math.isfinite(c)]
    return {"coverage_80_by_group": list(by_group), "coverage_80_worst_group": min(finite) if finite else math.nan}


def references(train_labels: np.ndarray, eval_labels: np.ndarray) -> Dict[str, Dict[str, float]]:
    """MAE and RMSE on eval of constant predictions: 0, the train median and the train mean."""
    from models import metrics

    out = {}
    for name, value in (("all zeros", 0.0), ("train median", float(np.median(train_labels))),
                        ("train mean", float(np.mean(train_labels)))):
        constant = np.full_like(eval_labels, value)
        out[name] = {"value": value, "mae": metrics.mae(eval_labels, constant),
                     "rmse": metrics.rmse(eval_labels, constant)}
    return out
