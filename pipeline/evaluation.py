"""The Evaluator's TFMA config: the metrics, the slices, and the model gate.

Slices: the whole eval split and each `value_bucket` (0 = zero labels, then quantiles of the
positive labels, highest last). The gate blesses a candidate only if
  - on the overall slice it clears the absolute floors (normalized Gini, Spearman, optional MAE cap);
  - against the baseline (the latest blessed model other than the candidate), on the overall slice
    and on the top `gate.top_buckets` value buckets, where most of the value is, its normalized Gini
    drops by no more than `gate.gini_tolerance` (absolute) and, if `gate.mae_tolerance` is set, its
    MAE rises by no more than that (relative). TFMA ignores change thresholds when there is no
    baseline.
"""

from typing import Dict, List, Optional

import tensorflow_model_analysis as tfma

from pipeline.config import RunConfig
from schemas import features

METRICS_MODULE = "models.tfma_metrics"


def _value_threshold(lower: Optional[float] = None, upper: Optional[float] = None):
    bounds: Dict[str, Dict[str, float]] = {}
    if lower is not None:
        bounds["lower_bound"] = {"value": lower}
    if upper is not None:
        bounds["upper_bound"] = {"value": upper}
    return tfma.GenericValueThreshold(**bounds) if bounds else None


def _slices(config: RunConfig) -> List[tfma.SlicingSpec]:
    """The overall slice and the top value buckets, the slices the gate compares with the baseline."""
    top = config.model.value_buckets - 1
    buckets = range(max(top - config.gate.top_buckets + 1, 1), top + 1)
    return [tfma.SlicingSpec()] + [
        tfma.SlicingSpec(feature_values={features.VALUE_BUCKET_KEY: str(b)}) for b in buckets]


def _metric(config: RunConfig, class_name: str, module: str = "", lower=None, upper=None,
            change: Optional[tfma.GenericChangeThreshold] = None) -> tfma.MetricConfig:
    metric = tfma.MetricConfig(class_name=class_name, module=module)
    value = _value_threshold(lower, upper)
    if value is not None:
        metric.per_slice_thresholds.append(tfma.PerSliceMetricThreshold(
            slicing_specs=[tfma.SlicingSpec()], threshold=tfma.MetricThreshold(value_threshold=value)))
    if change is not None:
        metric.per_slice_thresholds.append(tfma.PerSliceMetricThreshold(
            slicing_specs=_slices(config), threshold=tfma.MetricThreshold(change_threshold=change)))
    return metric


def eval_config(config: RunConfig) -> tfma.EvalConfig:
    """TFMA config of the run: metrics overall and per value bucket, plus the gate's thresholds."""
    gate = config.gate
    gini_change = tfma.GenericChangeThreshold(direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                                              absolute={"value": -gate.gini_tolerance})
    mae_change = None
    if gate.mae_tolerance is not None:
        mae_change = tfma.GenericChangeThreshold(direction=tfma.MetricDirection.LOWER_IS_BETTER,
                                                 relative={"value": gate.mae_tolerance})
    metrics = [
        _metric(config, "ExampleCount"),
        _metric(config, "MeanLabel"),
        _metric(config, "MeanPrediction"),
        _metric(config, "MeanAbsoluteError", upper=gate.max_mae, change=mae_change),
        _metric(config, "MeanSquaredError"),
        _metric(config, "NormalizedGini", METRICS_MODULE, lower=gate.min_normalized_gini, change=gini_change),
        _metric(config, "Spearman", METRICS_MODULE, lower=gate.min_spearman),
        _metric(config, "XAUC", METRICS_MODULE),
        _metric(config, "IntervalCoverage", METRICS_MODULE),
    ]
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(
            signature_name="serving_default",
            label_key=config.data.label,
            prediction_key="prediction",
            preprocessing_function_names=["transform_features"],
            model_type="tf_generic")],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[features.VALUE_BUCKET_KEY])],
        metrics_specs=[tfma.MetricsSpec(metrics=metrics)])
