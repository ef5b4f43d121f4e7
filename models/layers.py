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
    """Concatenates scaled numeric features and categorical embeddings, then an MLP: -> [B, hidden[-1]].

    With `numeric_encoding="piecewise_linear"` each numeric feature also contributes its
    piecewise-linear encoding (`<key>_ple` from Transform, `models.piecewise_linear`) through its own
    Dense layer of `embedding_dim` ReLU units, beside its z-score.
    """

    def __init__(self, numeric_keys: Sequence[str], vocab_sizes: Mapping[str, int], embedding_dim: int,
                 hidden_units: Sequence[int], numeric_encoding: str = "zscore", **kwargs):
        super().__init__(**kwargs)
        self.numeric_keys = list(numeric_keys)
        self.vocab_sizes = dict(vocab_sizes)
        self.embedding_dim = embedding_dim
        self.hidden_units = list(hidden_units)
        self.numeric_encoding = numeric_encoding
        self.embeddings = {key: keras.layers.Embedding(size, embedding_dim, name=f"embed_{key}")
                           for key, size in self.vocab_sizes.items()}
        self.piecewise = ({key: keras.layers.Dense(embedding_dim, activation="relu", name=f"ple_{key}")
                           for key in self.numeric_keys} if numeric_encoding == "piecewise_linear" else {})
        self.mlp = [keras.layers.Dense(units, activation="relu") for units in self.hidden_units]

    def call(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        parts = [tf.reshape(tf.cast(inputs[features.transformed_name(k)], self.compute_dtype), [-1, 1])
                 for k in self.numeric_keys]
        for key, layer in self.piecewise.items():
            name = features.piecewise_linear_name(key)
            if name not in inputs:
                raise KeyError(f"model.numeric_encoding: piecewise_linear needs Transform's {name!r}; run Transform "
                               "with the same model.numeric_encoding")
            parts.append(layer(tf.cast(inputs[name], self.compute_dtype)))
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
                "embedding_dim": self.embedding_dim, "hidden_units": self.hidden_units,
                "numeric_encoding": self.numeric_encoding}
