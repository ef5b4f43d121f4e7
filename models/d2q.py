"""D2Q: duration-deconfounded quantile regression for watch time.

Zhan et al., "Deconfounding Duration Bias in Watch-time Prediction for Video Recommendation"
(KDD 2022). Video duration drives both exposure and watch time; D2Q removes its confounding by a
backdoor adjustment: videos are split into equal-frequency duration groups, and within a group g a
watch time y is replaced by its quantile F_g(y) in that group. One model, with the duration
group as an input, regresses that quantile, and the prediction maps back through the group's
quantile function: ŷ = F_g⁻¹(q̂).

Here the groups are cut at the (k / G)-quantiles of the transformed duration feature in the
training sample (a z-scored log of the raw duration, monotone in it, so the groups are those of
the raw duration); a value goes to the group of the number of cuts at or below it. Each group's
quantile function is a fixed grid of QUANTILE_GRID_SIZE empirical quantiles of its training
labels, interpolated linearly both ways; a label tied with several grid points (e.g. a mass of
zeros) gets the middle of their quantiles. A group without training labels uses the grid of all
labels. The model: encoded features ⊕ a duration-group embedding -> Dense(relu) -> sigmoid,
trained with squared error on the group quantile. D2Q gives a point, so `serving_outputs` gives
the prediction as `median`, `lower` and `upper` (`base.point_outputs`); the served interval is the
split-conformal one around it (`models.calibration`).
"""

from typing import Dict, Mapping, Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from models import base
from models.layers import output_head
from schemas import features

QUANTILE_KEY = "quantile"
DEFAULT_DURATION_FEATURE = "video_duration"
DEFAULT_DURATION_GROUPS = 10
QUANTILE_GRID_SIZE = 101


def group_boundaries(durations: np.ndarray, num_groups: int) -> np.ndarray:
    """Equal-frequency cuts: the (k / num_groups)-quantiles of the durations, k = 1..num_groups-1, [G-1]."""
    return np.quantile(np.asarray(durations, np.float64), np.arange(1, num_groups) / num_groups).astype(np.float32)


def duration_group(durations: tf.Tensor, boundaries: np.ndarray) -> tf.Tensor:
    """Group of each duration [B]: the number of cuts at or below it, int64 in [0, G-1]."""
    durations = tf.reshape(tf.cast(durations, tf.float32), [-1, 1])
    return tf.reduce_sum(tf.cast(durations >= tf.constant(boundaries)[None, :], tf.int64), axis=1)


def quantile_grids(labels: np.ndarray, groups: np.ndarray, num_groups: int) -> np.ndarray:
    """Per group, the QUANTILE_GRID_SIZE evenly spaced empirical quantiles of its labels, [G, N] ascending."""
    levels = np.linspace(0.0, 1.0, QUANTILE_GRID_SIZE)
    everyone = np.quantile(labels, levels)
    rows = [np.quantile(labels[groups == g], levels) if np.any(groups == g) else everyone
            for g in range(num_groups)]
    return np.stack(rows).astype(np.float32)


def grid_cdf(values: tf.Tensor, grid: tf.Tensor) -> tf.Tensor:
    """Quantile of each value within its grid row, [B] in [0, 1]; values [B], grid [B, N] ascending.

    Between grid points g_{i-1} < y < g_i: F = (i - 1 + (y - g_{i-1}) / (g_i - g_{i-1})) / (N - 1);
    equal to grid points j..k: F = (j + k) / 2 / (N - 1); clipped to [0, 1] outside the grid.
    """
    last = grid.shape[-1] - 1
    values = tf.reshape(values, [-1, 1])
    below = tf.reduce_sum(tf.cast(grid < values, tf.int32), axis=1)
    at_or_below = tf.reduce_sum(tf.cast(grid <= values, tf.int32), axis=1)
    upper = tf.clip_by_value(below, 1, last)
    low = tf.gather(grid, upper - 1, batch_dims=1)
    high = tf.gather(grid, upper, batch_dims=1)
    between = tf.cast(upper - 1, tf.float32) + tf.math.divide_no_nan(values[:, 0] - low, high - low)
    between = tf.clip_by_value(between, tf.cast(upper - 1, tf.float32), tf.cast(upper, tf.float32))
    tied = tf.cast(below + at_or_below - 1, tf.float32) / 2.0
    return tf.where(at_or_below > below, tied, between) / last


def grid_quantile(quantiles: tf.Tensor, grid: tf.Tensor) -> tf.Tensor:
    """The grid row's quantile function at each q [B], by linear interpolation; grid [B, N] ascending."""
    last = grid.shape[-1] - 1
    position = tf.clip_by_value(tf.reshape(quantiles, [-1]), 0.0, 1.0) * last
    lower = tf.clip_by_value(tf.cast(tf.floor(position), tf.int32), 0, last - 1)
    low = tf.gather(grid, lower, batch_dims=1)
    high = tf.gather(grid, lower + 1, batch_dims=1)
    return low + (position - tf.cast(lower, tf.float32)) * (high - low)


def training_durations(context: base.TrainContext, duration_feature: str) -> np.ndarray:
    """The transformed duration feature of the training sample, [N]; ValueError if the run lacks it."""
    if duration_feature not in context.numeric_keys:
        raise ValueError(f"duration_feature: {duration_feature!r} is not a numeric feature of this run "
                         f"(numeric features: {list(context.numeric_keys)}); set model.duration_feature")
    key = features.transformed_name(duration_feature)
    if key not in context.train_features:
        raise ValueError(f"duration_feature: {duration_feature!r} has no training sample ({key!r} is missing)")
    return np.reshape(np.asarray(context.train_features[key], np.float32), [-1])


class D2QModel(base.ValueModel):
    """Feature encoder ⊕ duration-group embedding -> the watch time's quantile in its group (D2Q, KDD 2022).

    Args:
      context: the training context; groups and quantile grids come from its training sample.
      duration_feature: raw name of the numeric duration feature (the Trainer config's `duration_feature`;
        empty or absent there means DEFAULT_DURATION_FEATURE).
      num_groups: number of equal-frequency duration groups.
      embedding_dim, hidden_units: sizes of the shared encoder; the group embedding has embedding_dim
        and the head one hidden layer of hidden_units[-1].

    Output of `call`: `quantile` q̂ in (0, 1), [B].
    """

    def __init__(self, context: base.TrainContext, duration_feature: str = DEFAULT_DURATION_FEATURE,
                 num_groups: int = DEFAULT_DURATION_GROUPS, embedding_dim: int = 16,
                 hidden_units: Sequence[int] = (64, 64), **kwargs):
        super().__init__(context, embedding_dim, hidden_units, **kwargs)
        if num_groups < 1:
            raise ValueError(f"duration_groups: {num_groups} must be at least 1")
        durations = training_durations(context, duration_feature)
        self.duration_key = features.transformed_name(duration_feature)
        self.boundaries = group_boundaries(durations, num_groups)
        groups = duration_group(durations, self.boundaries).numpy()
        labels = np.reshape(np.asarray(context.train_labels, np.float64), [-1])
        self.grids = tf.constant(quantile_grids(labels, groups, num_groups))
        self.group_embedding = keras.layers.Embedding(num_groups, embedding_dim, name="duration_group_embedding")
        self.hidden = keras.layers.Dense(list(hidden_units)[-1], activation="relu", name="quantile_hidden")
        self.head = output_head(1, "quantile_head")

    @classmethod
    def from_config_and_context(cls, config: Mapping, context: base.TrainContext) -> "D2QModel":
        return cls(context, duration_feature=config.get("duration_feature") or DEFAULT_DURATION_FEATURE,
                   num_groups=config.get("duration_groups", DEFAULT_DURATION_GROUPS),
                   embedding_dim=config["embedding_dim"], hidden_units=config["hidden_units"])

    def groups(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """Duration group of each example, [B] int64."""
        return duration_group(inputs[self.duration_key], self.boundaries)

    def call(self, inputs: Mapping[str, tf.Tensor], training=None) -> Dict[str, tf.Tensor]:
        hidden = tf.concat([self.encoder(inputs), self.group_embedding(self.groups(inputs))], axis=1)
        return {QUANTILE_KEY: tf.sigmoid(tf.reshape(self.head(self.hidden(hidden)), [-1]))}

    def training_targets(self, inputs: Mapping[str, tf.Tensor], target: tf.Tensor) -> Dict[str, tf.Tensor]:
        """The label's quantile within its duration group."""
        return {QUANTILE_KEY: grid_cdf(self.label_units(target), tf.gather(self.grids, self.groups(inputs)))}

    def loss_config(self):
        """Squared error between the predicted and the true group quantile."""
        return {QUANTILE_KEY: keras.losses.MeanSquaredError()}, {QUANTILE_KEY: 1.0}

    def serving_outputs(self, inputs: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """F_g⁻¹(q̂) in label units as prediction, median, lower and upper [B]; q̂ as `quantile`."""
        quantile = self.call(inputs)[QUANTILE_KEY]
        value = grid_quantile(quantile, tf.gather(self.grids, self.groups(inputs)))
        return {**base.point_outputs(value), QUANTILE_KEY: quantile}
