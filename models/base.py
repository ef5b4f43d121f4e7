"""What every model kind shares: the training context, the feature encoder, and the serving contract.

A model kind is a `ValueModel` subclass. It defines
  - `call(inputs)`: its training outputs (a dict), from transformed features;
  - `training_targets(inputs, target)`: the Keras targets for those outputs, from the transformed
    features and the transformed label (`target_xf`);
  - `loss_config()`: `(losses, loss_weights)` dicts keyed like the training outputs — the loss is
    found here, in one place per model;
  - `serving_outputs(inputs)`: `prediction` (the mean), `median`, `lower` and `upper` (the
    INTERVAL_QUANTILES of its predictive distribution), all [B] in label units, plus extras.
A kind that does not train in Keras' fit loop (trees) sets `trains_itself` and defines
`fit_on_rows(train, valid)` instead of `training_targets` and `loss_config`; `models.trainer` hands it
every train and valid row.
`predict_outputs` applies what every kind shares: the map of the mean and the interval offsets
fitted on the valid split after training (`models.mean_calibration`, and `models.calibration`,
split-conformal per predicted-value group; the identity and zero until then), so the served
`prediction`, `lower` and `upper` are calibrated, and the guard that clips every value to [0, context.prediction_cap], so a
feature far outside the training range cannot produce an unbounded prediction.
"""

import dataclasses
from typing import Dict, Mapping, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tf_keras as keras

from models import label_transform, mean_calibration
from models.layers import FeatureEncoder
from schemas import features

# Quantiles of the predictive distribution served as `lower` and `upper`: an 80% central interval.
INTERVAL_QUANTILES = (0.1, 0.9)
SERVING_KEYS = features.SERVING_VALUE_KEYS
# Predictions are capped at this multiple of the largest training label.
PREDICTION_CAP_FACTOR = 10.0


@dataclasses.dataclass(frozen=True)
class TrainContext:
    """What Transform and the training split tell a model before it is built.

    Attributes:
      numeric_keys: raw names of numeric features (their `_xf` versions are read).
      vocab_sizes: raw name of each categorical feature -> number of ids (vocabulary + OOV).
      label_transform: name of the label transform ("log1p" or "identity").
      train_labels: a sample of training labels in label units (for vocabularies and scales).
      codebook_levels: the RQ centroids per level, transformed units (empty if not needed).
      train_features: a sample of transformed training features, aligned with train_labels.
      interval_groups: the most predicted-value groups the served interval is calibrated in.
      numeric_encoding: how the feature encoder reads numeric features ("zscore" or
        "piecewise_linear": Transform also wrote `<key>_ple`).
    """

    numeric_keys: Tuple[str, ...]
    vocab_sizes: Mapping[str, int]
    label_transform: str
    train_labels: np.ndarray
    codebook_levels: Tuple[np.ndarray, ...] = ()
    train_features: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    interval_groups: int = 1
    numeric_encoding: str = "zscore"

    @property
    def prediction_cap(self) -> float:
        top = float(np.max(self.train_labels)) if self.train_labels.size else 1.0
        return PREDICTION_CAP_FACTOR * max(top, 1.0)


class ValueModel(keras.Model):
    """Base of every model kind: a FeatureEncoder over the transformed features, plus a head."""

    # False: trained by `models.trainer`'s Keras fit loop; True: by the kind's own `fit_on_rows`.
    trains_itself = False

    def __init__(self, context: TrainContext, embedding_dim: int = 16, hidden_units: Sequence[int] = (64, 64),
                 cross_layers: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.label_transform_name = context.label_transform
        self.prediction_cap = context.prediction_cap
        self.encoder = FeatureEncoder(context.numeric_keys, context.vocab_sizes, embedding_dim, hidden_units,
                                      numeric_encoding=context.numeric_encoding, cross_layers=cross_layers,
                                      name="encoder")
        # Per predicted-value group, (lower, upper) offsets in transformed label units, and the
        # thresholds between the groups (+inf: unused), set by `calibration.calibrate_model`.
        self.interval_groups = max(int(context.interval_groups), 1)
        self.interval_offsets = self.add_weight(name="interval_offsets", shape=(self.interval_groups, 2),
                                                initializer="zeros", trainable=False)
        self.interval_thresholds = self.add_weight(name="interval_thresholds", shape=(self.interval_groups - 1,),
                                                   initializer=keras.initializers.Constant(np.inf), trainable=False)
        # The map of the served mean (`models.mean_calibration`): knots x (row 0) -> y (row 1); the
        # identity until `calibration.calibrate_model` fits it.
        self.mean_knots = self.add_weight(
            name="mean_knots", shape=(2, mean_calibration.KNOTS), trainable=False,
            initializer=keras.initializers.Constant(mean_calibration.identity_knots()))

    def label_units(self, target: tf.Tensor) -> tf.Tensor:
        """Transformed label -> label units."""
        return label_transform.inverse(tf.reshape(tf.cast(target, tf.float32), [-1]), self.label_transform_name)

    def training_targets(self, inputs: Mapping[str, tf.Tensor], target: tf.Tensor) -> Dict[str, tf.Tensor]:
        raise NotImplementedError

    def loss_config(self) -> Tuple[Dict[str, keras.losses.Loss], Dict[str, float]]:
        raise NotImplementedError

    def serving_outputs(self, inputs: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        raise NotImplementedError

    def export_signatures(self, tft_output) -> Dict[str, tf.types.experimental.GenericFunction]:
        """Signatures (tf.functions with an input signature, by name) the kind exports beside
        `serving_default` and `transform_features`; none by default."""
        del tft_output
        return {}

    def training_callbacks(self, total_steps: int) -> list:
        """Keras callbacks the kind needs during `fit` (e.g. a schedule); none by default."""
        del total_steps
        return []

    def set_interval_offsets(self, grouped) -> None:
        """Sets the interval offsets per predicted-value group (a `calibration.GroupedOffsets`; a plain
        `calibration.Offsets` applies to every row)."""
        thresholds = list(getattr(grouped, "thresholds", ()))
        offsets = list(getattr(grouped, "offsets", (grouped,)))
        if len(offsets) > self.interval_groups:
            raise ValueError(f"interval_groups: {len(offsets)} calibrated groups do not fit the model's "
                             f"{self.interval_groups}")
        padding = self.interval_groups - len(offsets)
        self.interval_thresholds.assign(np.array(thresholds + [np.inf] * padding, dtype=np.float32))
        self.interval_offsets.assign(np.array([[o.lower, o.upper] for o in offsets + offsets[-1:] * padding],
                                              dtype=np.float32))

    def set_mean_knots(self, knots) -> None:
        """Sets the map of the served mean ([2, mean_calibration.KNOTS] knots, `mean_calibration.fit`)."""
        self.mean_knots.assign(np.asarray(knots, dtype=np.float32))

    def calibrated_mean(self, prediction: tf.Tensor) -> tf.Tensor:
        """The mean map g (`models.mean_calibration`) of predictions [B] >= 0: linear between the knots,
        proportional above the last."""
        x, y = self.mean_knots[0], self.mean_knots[1]
        last = mean_calibration.KNOTS - 1
        segment = tf.clip_by_value(tf.searchsorted(x[None, :], prediction[None, :], side="right")[0] - 1, 0, last - 1)
        x0, x1 = tf.gather(x, segment), tf.gather(x, segment + 1)
        y0, y1 = tf.gather(y, segment), tf.gather(y, segment + 1)
        inside = y0 + (prediction - x0) * (y1 - y0) / (x1 - x0)
        return tf.where(prediction > x[last], prediction * (y[last] / x[last]), inside)

    def predict_outputs(self, inputs: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """`serving_outputs` with the mean and the interval calibrated, every value output clipped to [0, prediction_cap].

        `prediction` is clipped, then mapped by the calibrated mean map g (`models.mean_calibration`;
        the identity until fitted) and clipped again; the median and the bounds are not mapped.

        In the label transform t, the calibrated interval (`models.calibration`) is
        lower = min(t⁻¹(t(lower) − offset_lower), median), or 0 where lower <= 0, and
        upper = max(t⁻¹(t(upper) + offset_upper), median), with the offsets of the row's group
        (the number of thresholds at or below its calibrated `prediction`); `median` is unchanged.
        """
        outputs = dict(self.serving_outputs(inputs))
        lower, upper, median = (tf.reshape(outputs[key], [-1]) for key in ("lower", "upper", "median"))
        prediction = tf.clip_by_value(tf.reshape(outputs["prediction"], [-1]), 0.0, self.prediction_cap)
        prediction = tf.clip_by_value(self.calibrated_mean(prediction), 0.0, self.prediction_cap)
        outputs["prediction"] = prediction
        group = tf.reduce_sum(tf.cast(prediction[:, None] >= self.interval_thresholds[None, :], tf.int32), axis=1)
        offsets = tf.gather(self.interval_offsets, group)
        name = self.label_transform_name
        shifted = label_transform.inverse(label_transform.forward(lower, name) - offsets[:, 0], name)
        outputs["lower"] = tf.where(lower > 0.0, tf.minimum(shifted, median), tf.zeros_like(lower))
        outputs["upper"] = tf.maximum(
            label_transform.inverse(label_transform.forward(upper, name) + offsets[:, 1], name), median)
        for key in SERVING_KEYS:
            outputs[key] = tf.clip_by_value(tf.reshape(outputs[key], [-1]), 0.0, self.prediction_cap)
        return outputs


def point_outputs(value: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Serving outputs of a point predictor: its value stands for the mean, median and both bounds
    (`predict_outputs` then widens the bounds by the calibrated offsets)."""
    value = tf.reshape(value, [-1])
    return {key: value for key in SERVING_KEYS}

