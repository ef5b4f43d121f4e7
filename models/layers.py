"""Keras layers shared by every model kind."""

from typing import Mapping, Sequence

import tensorflow as tf
import tf_keras as keras

from schemas import features


def output_head(units: int, name: str) -> keras.layers.Dense:
    """A model's output layer: a Dense that computes in float32 whatever the dtype policy.

    Under a mixed precision policy (trainer.precision: mixed_float16) the layers before it compute
    in float16; the logits, and the softmaxes, decoded values and losses built on them, stay float32.
    """
    return keras.layers.Dense(units, name=name, dtype="float32")


class FeatureEncoder(keras.layers.Layer):
    """Concatenates scaled numeric features and categorical embeddings, then an MLP: -> [B, hidden[-1]]."""

    def __init__(self, numeric_keys: Sequence[str], vocab_sizes: Mapping[str, int], embedding_dim: int,
                 hidden_units: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        self.numeric_keys = list(numeric_keys)
        self.vocab_sizes = dict(vocab_sizes)
        self.embedding_dim = embedding_dim
        self.hidden_units = list(hidden_units)
        self.embeddings = {key: keras.layers.Embedding(size, embedding_dim, name=f"embed_{key}")
                           for key, size in self.vocab_sizes.items()}
        self.mlp = [keras.layers.Dense(units, activation="relu") for units in self.hidden_units]

    def call(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        parts = [tf.reshape(tf.cast(inputs[features.transformed_name(k)], self.compute_dtype), [-1, 1])
                 for k in self.numeric_keys]
        for key, embedding in self.embeddings.items():
            ids = tf.reshape(tf.cast(inputs[features.transformed_name(key)], tf.int64), [-1])
            ids = tf.clip_by_value(ids, 0, self.vocab_sizes[key] - 1)
            parts.append(embedding(ids))
        x = tf.concat(parts, axis=1)
        for layer in self.mlp:
            x = layer(x)
        return x

    def get_config(self):
        return {**super().get_config(), "numeric_keys": self.numeric_keys, "vocab_sizes": self.vocab_sizes,
                "embedding_dim": self.embedding_dim, "hidden_units": self.hidden_units}
