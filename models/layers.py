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

    With `cross_layers` > 0 the concatenation x0 first goes through that many cross layers,
    x_{l+1} = x0 ⊙ (W_l x_l + b_l) + x_l (full-rank W_l, the cross network of DCN-V2, Wang et al.
    2021, arXiv 2008.13535): each layer multiplies every input by a learnt linear mix of all of them,
    so products of features (duration × a rate, two categories' embeddings agreeing, frequency ×
    recency) are one layer away instead of being approximated by ReLU pieces.
    """

    def __init__(self, numeric_keys: Sequence[str], vocab_sizes: Mapping[str, int], embedding_dim: int,
                 hidden_units: Sequence[int], numeric_encoding: str = "zscore", cross_layers: int = 0, **kwargs):
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
        self.cross_layers = int(cross_layers)
        width = (len(self.numeric_keys) + embedding_dim * (len(self.piecewise) + len(self.vocab_sizes)))
        self.cross = [keras.layers.Dense(width, name=f"cross_{i}") for i in range(self.cross_layers)]
        self.mlp = [keras.layers.Dense(units, activation="relu") for units in self.hidden_units]

    def call(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        x0 = x = self.concatenated(inputs)
        for layer in self.cross:
            x = x0 * layer(x) + x
        for layer in self.mlp:
            x = layer(x)
        return x

    def concatenated(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """The numeric features, their piecewise-linear encodings and the embeddings side by side, [B, D]."""
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
        return tf.concat(parts, axis=1)

    def get_config(self):
        return {**super().get_config(), "numeric_keys": self.numeric_keys, "vocab_sizes": self.vocab_sizes,
                "embedding_dim": self.embedding_dim, "hidden_units": self.hidden_units,
                "numeric_encoding": self.numeric_encoding, "cross_layers": self.cross_layers}


class TokenMixingEncoder(keras.layers.Layer):
    """Features as tokens, mixed by MLPs across tokens and across channels, then an MLP: -> [B, hidden[-1]].

    Every feature becomes one token of `embedding_dim` channels: a numeric feature's z-score x as
    x·w_f + b_f (its own weights), a categorical feature as its embedding. Each of `blocks` blocks
    then adds, with layer normalisation before each part,
      - a token-mixing MLP: for every channel, a two-layer MLP over the T tokens (so each feature's
        representation sees every other feature's), and
      - a channel-mixing MLP: for every token, a two-layer MLP over its channels,
    each as a residual. The tokens are flattened (each keeps its place, so the head still knows
    which feature is which) and read by the same ReLU MLP as `FeatureEncoder`. This restates the
    token-mixing idea of MLP-Mixer-style encoders for recommendation features (UniMixer, arXiv
    2604.00590) as a small layer; `model.feature_encoder: token_mixing` selects it for RQ-Reg.
    """

    def __init__(self, numeric_keys: Sequence[str], vocab_sizes: Mapping[str, int], embedding_dim: int,
                 hidden_units: Sequence[int], blocks: int = 2, expansion: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.numeric_keys = list(numeric_keys)
        self.vocab_sizes = dict(vocab_sizes)
        self.embedding_dim = embedding_dim
        self.hidden_units = list(hidden_units)
        self.blocks = int(blocks)
        self.expansion = int(expansion)
        tokens = len(self.numeric_keys) + len(self.vocab_sizes)
        if tokens < 1:
            raise ValueError("model.feature_encoder: token_mixing needs at least one feature")
        self.numeric_weight = self.add_weight(name="numeric_weight", shape=(max(len(self.numeric_keys), 1), embedding_dim),
                                              initializer="glorot_uniform")
        self.numeric_bias = self.add_weight(name="numeric_bias", shape=(max(len(self.numeric_keys), 1), embedding_dim),
                                            initializer="zeros")
        self.embeddings = {key: keras.layers.Embedding(size, embedding_dim, name=f"embed_{key}")
                           for key, size in self.vocab_sizes.items()}
        self.mixers = []
        for block in range(self.blocks):
            self.mixers.append({
                "token_norm": keras.layers.LayerNormalization(name=f"token_norm_{block}"),
                "token_in": keras.layers.Dense(self.expansion * tokens, activation="gelu", name=f"token_in_{block}"),
                "token_out": keras.layers.Dense(tokens, name=f"token_out_{block}"),
                "channel_norm": keras.layers.LayerNormalization(name=f"channel_norm_{block}"),
                "channel_in": keras.layers.Dense(self.expansion * embedding_dim, activation="gelu",
                                                 name=f"channel_in_{block}"),
                "channel_out": keras.layers.Dense(embedding_dim, name=f"channel_out_{block}"),
            })
        self.mlp = [keras.layers.Dense(units, activation="relu") for units in self.hidden_units]

    def tokens(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """The feature tokens before mixing, [B, T, embedding_dim] (numeric features first)."""
        parts = []
        if self.numeric_keys:
            values = tf.stack([tf.reshape(tf.cast(inputs[features.transformed_name(k)], self.compute_dtype), [-1])
                               for k in self.numeric_keys], axis=1)  # [B, F]
            weight = tf.cast(self.numeric_weight, self.compute_dtype)
            bias = tf.cast(self.numeric_bias, self.compute_dtype)
            parts.append(values[:, :, None] * weight[None] + bias[None])
        for key, embedding in self.embeddings.items():
            ids = tf.reshape(tf.cast(inputs[features.transformed_name(key)], tf.int64), [-1])
            ids = tf.clip_by_value(ids, 0, self.vocab_sizes[key] - 1)
            parts.append(embedding(ids)[:, None, :])
        return tf.concat(parts, axis=1)

    def call(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        x = self.tokens(inputs)
        for mixer in self.mixers:
            across = tf.transpose(mixer["token_norm"](x), [0, 2, 1])  # [B, C, T]: mix over tokens
            x = x + tf.transpose(mixer["token_out"](mixer["token_in"](across)), [0, 2, 1])
            x = x + mixer["channel_out"](mixer["channel_in"](mixer["channel_norm"](x)))
        x = tf.reshape(x, [-1, x.shape[1] * self.embedding_dim])
        for layer in self.mlp:
            x = layer(x)
        return x

    def get_config(self):
        return {**super().get_config(), "numeric_keys": self.numeric_keys, "vocab_sizes": self.vocab_sizes,
                "embedding_dim": self.embedding_dim, "hidden_units": self.hidden_units, "blocks": self.blocks,
                "expansion": self.expansion}
