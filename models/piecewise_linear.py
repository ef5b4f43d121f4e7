"""Piecewise-linear encoding (PLE) of a numeric feature on quantile bins, for `model.numeric_encoding: piecewise_linear`.

A network reading a numeric feature as one scaled number must bend a single input into every
threshold a tree would put on it; PLE hands it those thresholds. Transform fits `numeric_bins` (B)
bins of the feature's sign(x)·log1p(|x|) on the train split: the B + 1 edges are the smallest value,
the B − 1 inner quantile boundaries (`tft.quantiles`) and the largest value. A value v in bin j
(edges e_j ≤ v ≤ e_j+1) is encoded as B components: 1 for every bin below j, (v − e_j) / (e_j+1 − e_j)
for bin j, 0 above; values outside the train range are clipped to the first or last bin, so the
encoding stays in [0, 1] at serving whatever the input. A bin of zero width (many equal values, e.g.
the zeros of a zero-inflated count) is a step: 1 once v reaches its edge. Summing the components with
weights gives any continuous piecewise-linear function of v with knots at the edges, which the shared
feature encoder (`models.layers.FeatureEncoder`) learns per feature.

Missing values (and NaN, ±inf) get their own indicator, a last component B + 1 that is 1 for them and
0 otherwise, with all B bin components 0; the edges are fitted on present values only. (The z-score
beside it keeps the pipeline's rule, missing = 0.) So a feature's encoding has B + 1 components.
"""

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

QUANTILE_EPSILON = 1e-3


def width(num_bins: int) -> int:
    """Components of one feature's encoding: its bins plus the missing indicator."""
    return num_bins + 1


def bin_edges(value: tf.Tensor, present: tf.Tensor, num_bins: int) -> tf.Tensor:
    """TFT analyzers: the [num_bins + 1] sorted bin edges of `value` [B] over the rows where `present` [B].

    A feature with no present value gets edges all 0 (every bin a step at 0).
    """
    inner = tf.reshape(tft.quantiles(value, num_bins, QUANTILE_EPSILON, weights=tf.cast(present, tf.float32)), [-1])
    low = tft.min(tf.where(present, value, tf.fill(tf.shape(value), np.inf)))
    high = tft.max(tf.where(present, value, tf.fill(tf.shape(value), -np.inf)))
    low = tf.where(tf.math.is_finite(low), low, 0.0)
    high = tf.where(tf.math.is_finite(high), tf.maximum(high, low), low)
    return tf.concat([low[None], tf.clip_by_value(inner, low, high), high[None]], axis=0)


def encode(value: tf.Tensor, present: tf.Tensor, edges: tf.Tensor) -> tf.Tensor:
    """The encoding [B, width(num_bins)] of `value` [B] (float32) given sorted `edges` [num_bins + 1].

    Rows where `present` [B] is False get all bin components 0 and the missing indicator 1.
    """
    edges = tf.reshape(tf.cast(edges, tf.float32), [1, -1])
    low, high = edges[:, :-1], edges[:, 1:]
    span = high - low
    v = tf.reshape(value, [-1, 1])
    inside = tf.clip_by_value((v - low) / tf.where(span > 0.0, span, tf.ones_like(span)), 0.0, 1.0)
    step = tf.cast(v >= high, tf.float32)
    bins = tf.where(span > 0.0, inside, step)
    present = tf.reshape(tf.cast(present, tf.float32), [-1, 1])
    return tf.concat([bins * present, 1.0 - present], axis=1)
