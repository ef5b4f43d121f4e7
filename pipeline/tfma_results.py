"""What TFMA wrote for an evaluation: the metric values per slice and the thresholds the candidate
failed. Read by `pipeline.mlmd` (a run's latest result), `rqvalue inspect` and `rqvalue report`;
TFMA is imported only when an evaluation is read."""

import glob
import math
import os
from typing import Any, Dict, List, Tuple

OVERALL = "overall"


def slice_name(slice_key: Tuple) -> str:
    """'overall' for the whole eval split, else 'value_bucket=3' style names."""
    if not slice_key:
        return OVERALL
    return ",".join(f"{k}={v}" for k, v in slice_key)


def slice_order(name: str) -> tuple:
    """Sort key of slice names: overall first, then value buckets in numeric order, then the rest."""
    if name == OVERALL:
        return (0, 0, "")
    try:
        return (1, float(name.split("=", 1)[1]), "")
    except (IndexError, ValueError):
        return (2, 0, name)


def load_metrics(evaluation_uri: str, model_name: str = "candidate") -> Dict[str, Dict[str, float]]:
    """Metric values per slice of one model of a TFMA evaluation (diffs against a baseline excluded)."""
    import tensorflow_model_analysis as tfma  # slow to import; only readers of evaluations need it

    result: Dict[str, Dict[str, float]] = {}
    for metrics_for_slice in tfma.load_metrics(evaluation_uri):
        name = slice_name(tfma.slicer.deserialize_slice_key(metrics_for_slice.slice_key))
        values = result.setdefault(name, {})
        for item in metrics_for_slice.metric_keys_and_values:
            key = item.key
            if key.is_diff or (key.model_name and key.model_name != model_name):
                continue
            if item.value.HasField("double_value"):
                values[key.name] = item.value.double_value.value
        if "mean_squared_error" in values:
            values["root_mean_squared_error"] = math.sqrt(values["mean_squared_error"])
    return result


def failed_thresholds(evaluation_path: str) -> List[Dict[str, Any]]:
    """The gate's thresholds the candidate failed: slice, metric, model, value, threshold, message."""
    if not glob.glob(os.path.join(evaluation_path, "validations*")):
        return []
    import tensorflow_model_analysis as tfma

    failures = []
    validation = tfma.load_validation_result(evaluation_path)
    for per_slice in validation.metric_validations_per_slice:
        name = slice_name(tfma.slicer.deserialize_slice_key(per_slice.slice_key))
        for failure in per_slice.failures:
            failures.append({
                "slice": name,
                "metric": failure.metric_key.name,
                "model": failure.metric_key.model_name or "candidate",
                "value": failure.metric_value.double_value.value
                if failure.metric_value.HasField("double_value") else None,
                "threshold": _threshold_text(failure.metric_threshold),
                "message": failure.message,
            })
    for missing in validation.missing_slices:
        failures.append({"slice": str(missing).strip() or OVERALL, "metric": "-", "model": "candidate",
                         "value": None, "threshold": "slice present", "message": "slice missing"})
    return failures


def _threshold_text(threshold) -> str:
    parts = []
    if threshold.HasField("value_threshold"):
        bounds = threshold.value_threshold
        if bounds.HasField("lower_bound"):
            parts.append(f">= {bounds.lower_bound.value:g}")
        if bounds.HasField("upper_bound"):
            parts.append(f"<= {bounds.upper_bound.value:g}")
    if threshold.HasField("change_threshold"):
        change = threshold.change_threshold
        parts.append(f"change vs baseline {str(change).strip()}".replace("\n", ", "))
    return " and ".join(parts) or "?"
