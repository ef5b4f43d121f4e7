"""The invertible transform applied to the label before quantization (TensorFlow ops)."""

import tensorflow as tf

from models.choices import LABEL_TRANSFORMS as TRANSFORMS


def forward(value: tf.Tensor, name: str) -> tf.Tensor:
    """Label units -> transformed units."""
    if name == "log1p":
        return tf.math.log1p(tf.maximum(value, 0.0))
    if name == "identity":
        return value
    raise ValueError(f"label_transform: {name!r} is not one of {TRANSFORMS}")


def inverse(value: tf.Tensor, name: str) -> tf.Tensor:
    """Transformed units -> label units."""
    if name == "log1p":
        return tf.math.expm1(value)
    if name == "identity":
        return value
    raise ValueError(f"label_transform: {name!r} is not one of {TRANSFORMS}")
