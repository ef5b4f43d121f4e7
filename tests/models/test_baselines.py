"""Baselines: the ZILN loss against the closed-form lognormal density, and every kind's contract."""

import math

import numpy as np
import pytest
import scipy.stats
import tensorflow as tf
import tf_keras as keras
from toy_data import RQREG_PLAIN, zero_inflated

from models import base, codebook, losses, registry
from schemas import features

BASELINES = ("ziln", "mse", "logmse", "twostage")
CONFIG = {"embedding_dim": 4, "hidden_units": (16,), "lstm_units": 8, **RQREG_PLAIN,
          "gbdt_loss": "poisson", "gbdt_max_trees": 20, "gbdt_max_depths": (3,), "gbdt_shrinkages": (0.1,),
          "gbdt_min_examples": (5,), "seed": 0, "categorical_features": ("c",)}


def test_ziln_loss_matches_the_closed_form_on_hand_written_rows():
    labels = np.array([0.0, 2.5, 40.0], dtype=np.float32)
    logits = np.array([[0.3, 0.1, 0.2], [-1.0, 1.2, -0.5], [2.0, 3.5, 1.0]], dtype=np.float32)
    got = losses.ziln_loss(labels, logits).numpy()
    for y, (p_logit, loc, raw_scale), value in zip(labels, logits, got):
        p = 1.0 / (1.0 + math.exp(-p_logit))
        scale = math.log1p(math.exp(raw_scale))
        if y == 0:
            expected = -math.log(1.0 - p)
        else:
            expected = -math.log(p) - scipy.stats.lognorm.logpdf(y, s=scale, scale=math.exp(loc))
        assert value == pytest.approx(expected, rel=1e-4)


def test_ziln_mean_and_quantiles_match_the_distribution():
    logits = np.array([[0.5, 1.0, 0.3], [-2.0, 2.0, 0.1]], dtype=np.float32)
    p, loc, scale = (t.numpy() for t in losses.ziln_parameters(logits))
    np.testing.assert_allclose(losses.ziln_mean(logits).numpy(), p * np.exp(loc + scale ** 2 / 2), rtol=1e-5)
    for q in (0.1, 0.5, 0.9):
        value = losses.ziln_quantile(logits, q).numpy()
        # P(Y <= value) for the mixture equals q wherever the quantile is positive.
        cdf = (1 - p) + p * scipy.stats.lognorm.cdf(value, s=scale, scale=np.exp(loc))
        positive = value > 0
        np.testing.assert_allclose(cdf[positive], q, atol=1e-4)
        assert np.all(q <= (1 - p)[~positive] + 1e-6)


def test_masked_log_mse_ignores_zero_labels():
    got = losses.masked_log_mse(np.array([0.0, math.e - 1]), np.array([5.0, 0.5])).numpy()
    np.testing.assert_allclose(got, [0.0, 0.25], rtol=1e-6)


def _model(kind, labels):
    context = base.TrainContext(numeric_keys=("x",), vocab_sizes={"c": 4}, label_transform="log1p",
                                train_labels=labels)
    return registry.build(kind, CONFIG, context)


@pytest.mark.parametrize("kind", BASELINES)
def test_loss_falls_and_serving_outputs_are_ordered(kind):
    keras.utils.set_random_seed(0)
    inputs, target, labels = zero_inflated()
    model = _model(kind, labels)
    loss, weights = model.loss_config()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss, loss_weights=weights)
    tensors = {k: tf.constant(v) for k, v in inputs.items()}
    targets = model.training_targets(tensors, tf.constant(target))
    history = model.fit(tensors, targets, batch_size=64, epochs=10, verbose=0).history["loss"]
    assert history[-1] < 0.8 * history[0]
    outputs = model.predict_outputs(tensors)
    for key in base.SERVING_KEYS:
        assert outputs[key].shape == (len(labels),)
    lower, median, upper = (outputs[k].numpy() for k in ("lower", "median", "upper"))
    assert np.all(lower <= median + 1e-4) and np.all(median <= upper + 1e-4)


@pytest.mark.parametrize("kind", BASELINES + ("rqreg", "gbdt"))
def test_predictions_stay_bounded_far_outside_the_training_range(kind):
    inputs, target, labels = zero_inflated(64)
    context = base.TrainContext(numeric_keys=("x",), vocab_sizes={"c": 4}, label_transform="log1p",
                                train_labels=labels,
                                codebook_levels=tuple(codebook.fit(target, (4, 3))))
    model = registry.build(kind, CONFIG, context)
    if model.trains_itself:  # trees have nothing to predict with before they are grown
        model.fit_on_rows((inputs, labels), (inputs, labels), log=None)
    extreme = {features.transformed_name("x"): np.full(4, 1e4, np.float32),
               features.transformed_name("c"): np.zeros(4, np.int64)}
    prediction = model.predict_outputs(extreme)["prediction"].numpy()
    assert np.all(np.isfinite(prediction)) and np.all(prediction <= context.prediction_cap)


def test_ziln_distribution_parameters_are_the_ones_its_served_mean_and_median_come_from():
    inputs, _, labels = zero_inflated(32)
    model = _model("ziln", labels)
    tensors = {k: tf.constant(v) for k, v in inputs.items()}
    parameters = {k: v.numpy() for k, v in model.distribution_parameters(tensors).items()}
    p, loc, scale = parameters["probability"], parameters["loc"], parameters["scale"]
    assert np.all((0 < p) & (p < 1)) and np.all(scale > 0)
    served = {k: v.numpy() for k, v in model.serving_outputs(tensors).items()}
    np.testing.assert_allclose(served["prediction"], p * np.exp(loc + scale ** 2 / 2), rtol=1e-4)
    median = np.where(p > 0.5, np.exp(loc + scale * scipy.stats.norm.ppf(np.clip((p - 0.5) / p, 1e-9, 1))), 0.0)
    np.testing.assert_allclose(served["median"], median, rtol=1e-3, atol=1e-5)
