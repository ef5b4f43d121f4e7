"""Baselines on the same features: ZILN, MSE on the value, MSE on log1p, and two-stage.

Each shares the FeatureEncoder of `models.base` and honours the same serving contract, so TFMA,
the Pusher and serving treat every kind alike. Point predictors (MSE, log-MSE) give their value as
mean, median and both interval bounds, which calibration (`models.calibration`) widens into the
served interval; ZILN and two-stage give quantiles of their distributions.
"""

from typing import Dict, Mapping, Sequence

import tensorflow as tf
import tf_keras as keras

from models import base, losses
from models.layers import output_head

OUTPUT_KEY = "output"
PURCHASE_KEY = "purchase"
AMOUNT_KEY = "amount"


class _SingleHead(base.ValueModel):
    """Encoder -> Dense(units) under the output name OUTPUT_KEY."""

    units = 1

    def __init__(self, context: base.TrainContext, embedding_dim: int = 16, hidden_units: Sequence[int] = (64, 64),
                 **kwargs):
        super().__init__(context, embedding_dim, hidden_units, **kwargs)
        self.head = output_head(self.units, "head")

    @classmethod
    def from_config_and_context(cls, config: Mapping, context: base.TrainContext):
        return cls(context, embedding_dim=config["embedding_dim"], hidden_units=config["hidden_units"])

    def call(self, inputs, training=None) -> Dict[str, tf.Tensor]:
        return {OUTPUT_KEY: self.head(self.encoder(inputs))}

    def training_targets(self, inputs, target):
        return {OUTPUT_KEY: self.label_units(target)}


class ZILNModel(_SingleHead):
    """Zero-inflated lognormal (Wang et al. 2019): logits (p, μ, s); see `models.losses`."""

    units = 3

    def loss_config(self):
        return {OUTPUT_KEY: losses.ziln_loss}, {OUTPUT_KEY: 1.0}

    def distribution_parameters(self, inputs) -> Dict[str, tf.Tensor]:
        """The predictive distribution (1 − p)·δ₀ + p·LogNormal(μ, σ) in label units: `probability` p,
        `loc` μ and `scale` σ, [B] each (`models.scoring_rules.crps_zero_inflated_lognormal` scores it)."""
        probability, loc, scale = losses.ziln_parameters(self.head(self.encoder(inputs)))
        return {"probability": probability, "loc": loc, "scale": scale}

    def serving_outputs(self, inputs):
        logits = self.head(self.encoder(inputs))
        lower_q, upper_q = base.INTERVAL_QUANTILES
        return {"prediction": losses.ziln_mean(logits), "median": losses.ziln_quantile(logits, 0.5),
                "lower": losses.ziln_quantile(logits, lower_q), "upper": losses.ziln_quantile(logits, upper_q)}


class MSEModel(_SingleHead):
    """Least squares on the value itself."""

    def loss_config(self):
        return {OUTPUT_KEY: keras.losses.MeanSquaredError()}, {OUTPUT_KEY: 1.0}

    def serving_outputs(self, inputs):
        return base.point_outputs(self.head(self.encoder(inputs)))


class LogMSEModel(_SingleHead):
    """Least squares on log1p(value); serves expm1 of the prediction (a median-like point)."""

    def training_targets(self, inputs, target):
        return {OUTPUT_KEY: tf.math.log1p(tf.maximum(self.label_units(target), 0.0))}

    def loss_config(self):
        return {OUTPUT_KEY: keras.losses.MeanSquaredError()}, {OUTPUT_KEY: 1.0}

    def serving_outputs(self, inputs):
        return base.point_outputs(tf.math.expm1(self.head(self.encoder(inputs))))


class TwoStageModel(base.ValueModel):
    """Purchase probability × conditional amount (Drachen et al. 2018), one shared encoder.

    `purchase` is trained with cross-entropy on 1[y>0]; `amount` with squared error on log1p(y)
    over positive labels only. Serving: mean = p · expm1(amount); the quantiles treat the amount as
    a point mass, so the q-quantile is 0 while q <= 1 - p and expm1(amount) above.
    """

    def __init__(self, context: base.TrainContext, embedding_dim: int = 16, hidden_units: Sequence[int] = (64, 64),
                 **kwargs):
        super().__init__(context, embedding_dim, hidden_units, **kwargs)
        self.purchase = output_head(1, "purchase")
        self.amount = output_head(1, "amount")

    @classmethod
    def from_config_and_context(cls, config: Mapping, context: base.TrainContext):
        return cls(context, embedding_dim=config["embedding_dim"], hidden_units=config["hidden_units"])

    def call(self, inputs, training=None):
        hidden = self.encoder(inputs)
        return {PURCHASE_KEY: self.purchase(hidden), AMOUNT_KEY: self.amount(hidden)}

    def training_targets(self, inputs, target):
        value = self.label_units(target)
        return {PURCHASE_KEY: tf.cast(value > 0, tf.float32), AMOUNT_KEY: value}

    def loss_config(self):
        return ({PURCHASE_KEY: keras.losses.BinaryCrossentropy(from_logits=True),
                 AMOUNT_KEY: losses.masked_log_mse},
                {PURCHASE_KEY: 1.0, AMOUNT_KEY: 1.0})

    def serving_outputs(self, inputs):
        outputs = self.call(inputs)
        probability = tf.reshape(tf.sigmoid(outputs[PURCHASE_KEY]), [-1])
        amount = tf.reshape(tf.math.expm1(outputs[AMOUNT_KEY]), [-1])

        def quantile(q):
            return tf.where(q <= 1.0 - probability, tf.zeros_like(amount), amount)

        lower_q, upper_q = base.INTERVAL_QUANTILES
        return {"prediction": probability * amount, "median": quantile(0.5),
                "lower": quantile(lower_q), "upper": quantile(upper_q)}
