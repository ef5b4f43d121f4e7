"""Losses and distribution helpers of the baselines, as pure TensorFlow functions.

ZILN (Wang, Liu & Miao 2019, "A Deep Probabilistic Model for Customer Lifetime Value
Prediction"): the network emits logits [B, 3] = (purchase logit p, location μ, raw scale s);
σ = max(softplus(s), sqrt(ε)). A label y is 0 with probability 1 - sigmoid(p), else lognormal(μ, σ):
  loss(y) = BCE(1[y>0], p) - 1[y>0] · log LogNormal(y; μ, σ)
and the mean is sigmoid(p) · exp(μ + σ²/2).
"""

import math

import tensorflow as tf

_EPSILON = 1e-7
# exp() of more than this overflows float32; predictions are capped far below it anyway.
_MAX_EXPONENT = 80.0


def _safe_exp(x: tf.Tensor) -> tf.Tensor:
    return tf.exp(tf.minimum(x, _MAX_EXPONENT))


def ziln_parameters(logits: tf.Tensor):
    """(purchase probability, μ, σ), each [B], from logits [B, 3]."""
    logits = tf.convert_to_tensor(logits, tf.float32)
    probability = tf.sigmoid(logits[:, 0])
    loc = logits[:, 1]
    scale = tf.maximum(tf.nn.softplus(logits[:, 2]), math.sqrt(_EPSILON))
    return probability, loc, scale


def ziln_loss(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Per-example zero-inflated lognormal negative log-likelihood, [B]; labels [B] or [B, 1] in label units."""
    labels = tf.reshape(tf.cast(labels, tf.float32), [-1])
    logits = tf.convert_to_tensor(logits, tf.float32)
    positive = tf.cast(labels > 0, tf.float32)
    classification = tf.nn.sigmoid_cross_entropy_with_logits(labels=positive, logits=logits[:, 0])
    _, loc, scale = ziln_parameters(logits)
    safe = tf.where(labels > 0, labels, tf.ones_like(labels))  # log(0) never evaluated
    log_y = tf.math.log(safe)
    log_density = (-log_y - tf.math.log(scale) - 0.5 * math.log(2 * math.pi)
                   - tf.square(log_y - loc) / (2.0 * tf.square(scale)))
    return classification - positive * log_density


def ziln_mean(logits: tf.Tensor) -> tf.Tensor:
    """Predicted mean sigmoid(p) · exp(μ + σ²/2), [B], computed in log space so it cannot overflow to NaN."""
    _, loc, scale = ziln_parameters(logits)
    log_probability = tf.math.log_sigmoid(tf.convert_to_tensor(logits, tf.float32)[:, 0])
    return _safe_exp(log_probability + loc + 0.5 * tf.square(scale))


def ziln_quantile(logits: tf.Tensor, q: float) -> tf.Tensor:
    """The q-quantile of the zero-inflated lognormal, [B]: 0 while q <= P(y = 0)."""
    probability, loc, scale = ziln_parameters(logits)
    conditional = tf.clip_by_value((q - (1.0 - probability)) / tf.maximum(probability, _EPSILON), _EPSILON,
                                   1.0 - _EPSILON)
    value = _safe_exp(loc + scale * tf.math.ndtri(conditional))
    return tf.where(q <= 1.0 - probability, tf.zeros_like(value), value)


def masked_log_mse(labels: tf.Tensor, predictions: tf.Tensor) -> tf.Tensor:
    """Squared error on log1p(y) over positive labels only, [B] (zero for zero labels)."""
    labels = tf.reshape(tf.cast(labels, tf.float32), [-1])
    predictions = tf.reshape(tf.cast(predictions, tf.float32), [-1])
    positive = tf.cast(labels > 0, tf.float32)
    return positive * tf.square(tf.math.log1p(tf.maximum(labels, 0.0)) - predictions)
