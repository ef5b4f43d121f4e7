"""Transform's module code: `preprocessing_fn` scales features, transforms the label and fits the RQ codebook.

Feature names and settings arrive through Transform's `custom_config` (see `transform_config`),
so a user's own data needs no code edit. Outputs:
  - `<numeric>_xf`: z-score of sign(x)·log1p(|x|); a missing value and NaN or ±inf are the same:
    0 before scaling (in the analyzers' statistics too), in training and at serving alike, since
    serving runs this graph;
  - `<numeric>_ple` (only with `numeric_encoding: piecewise_linear`): its piecewise-linear encoding
    on `numeric_bins` quantile bins of sign(x)·log1p(|x|) fitted on train, plus a missing
    indicator (`models.piecewise_linear`);
  - `<categorical>_xf`: vocabulary index, one out-of-vocabulary bucket;
  - `target_xf`: the transformed label; `rq_codes`: its [L] RQ codes;
  - `value_bucket`: 0 for a zero label, else 1..n-1 by quantiles of the positive labels
    (zero-inflation would otherwise collapse many quantile boundaries at 0).
Label-derived outputs are pruned at serving time, when the label is absent.
"""

from typing import Any, Dict, Mapping

import tensorflow as tf
import tensorflow_transform as tft

from models import codebook_analyzer, label_transform, piecewise_linear
from schemas import features

_QUANTILE_EPSILON = 1e-3


def transform_config(data, model) -> Dict[str, Any]:
    """The `custom_config` Transform passes to `preprocessing_fn`, from the run's config sections."""
    return {
        "numeric_features": list(data.numeric_features),
        "categorical_features": list(data.categorical_features),
        "label": data.label,
        "label_transform": model.label_transform,
        "value_buckets": model.value_buckets,
        "codebook_sizes": list(model.codebook_sizes),
        "first_level_median": model.first_level_median,
        "codebook_resolution": model.codebook_resolution,
        "numeric_encoding": model.numeric_encoding,
        "numeric_bins": model.numeric_bins,
    }


def _dense(x, default) -> tf.Tensor:
    """[B] dense values of a single-valued feature; missing values become `default`."""
    if isinstance(x, tf.SparseTensor):
        x = tf.sparse.to_dense(tf.sparse.reset_shape(x, [x.dense_shape[0], 1]), default_value=default)
    return tf.reshape(x, [-1])


def _signed_log1p(x: tf.Tensor) -> tf.Tensor:
    return tf.sign(x) * tf.math.log1p(tf.abs(x))


def _value_bucket(label: tf.Tensor, num_buckets: int) -> tf.Tensor:
    positive = tf.cast(label > 0, tf.float32)
    boundaries = tft.quantiles(label, num_buckets - 1, _QUANTILE_EPSILON, weights=positive)
    bucket = tft.apply_buckets(label, boundaries) + 1
    return tf.where(label > 0, bucket, tf.zeros_like(bucket))


def preprocessing_fn(inputs: Mapping[str, Any], custom_config: Mapping[str, Any]) -> Dict[str, tf.Tensor]:
    """TFX Transform entry point.

    Args:
      inputs: raw features parsed by the raw schema (dense or sparse, one value each).
      custom_config: see `transform_config`.

    Returns:
      Transformed features, keyed as described in the module docstring.
    """
    outputs = {}
    piecewise = custom_config.get("numeric_encoding", "zscore") == "piecewise_linear"
    for key in custom_config["numeric_features"]:
        # A missing value densifies to NaN, so "present" is one test: finite (not missing, NaN or ±inf).
        value = _dense(tf.cast(inputs[key], tf.float32), float("nan"))
        present = tf.math.is_finite(value)
        value = _signed_log1p(tf.where(present, value, tf.zeros_like(value)))
        outputs[features.transformed_name(key)] = tft.scale_to_z_score(value)
        if piecewise:
            edges = piecewise_linear.bin_edges(value, present, custom_config["numeric_bins"])
            outputs[features.piecewise_linear_name(key)] = piecewise_linear.encode(value, present, edges)
    for key in custom_config["categorical_features"]:
        outputs[features.transformed_name(key)] = tft.compute_and_apply_vocabulary(
            _dense(inputs[key], b""), num_oov_buckets=1, vocab_filename=key)

    label = tf.cast(_dense(inputs[custom_config["label"]], 0.0), tf.float32)
    target = label_transform.forward(label, custom_config["label_transform"])
    codes, _ = codebook_analyzer.rq_codes(
        target,
        custom_config["codebook_sizes"],
        custom_config["first_level_median"],
        custom_config["codebook_resolution"])
    outputs[features.TARGET_KEY] = target
    outputs[features.CODES_KEY] = codes
    outputs[features.VALUE_BUCKET_KEY] = _value_bucket(label, custom_config["value_buckets"])
    return outputs
