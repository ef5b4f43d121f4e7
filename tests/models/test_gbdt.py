"""The gbdt kind: a grid of forests chosen on the valid rows, served through the shared contract."""

import numpy as np
import pytest
import tensorflow as tf
from toy_data import zero_inflated

from models import base, calibration, choices, gbdt, registry
from schemas import features

CONFIG = {"gbdt_loss": "poisson", "gbdt_max_trees": 200, "gbdt_max_depths": (2, 4), "gbdt_shrinkages": (0.1,),
          "gbdt_min_examples": (5,), "seed": 0, "categorical_features": ("c",)}


def _model(labels, **changes):
    context = base.TrainContext(numeric_keys=("x",), vocab_sizes={"c": 4}, label_transform="log1p",
                                train_labels=labels, interval_groups=2)
    return registry.build("gbdt", {**CONFIG, **changes}, context)


def _rows(n, seed):
    """The shared toy set with lognormal noise on the positive labels, so that trees can overfit."""
    inputs, _, labels = zero_inflated(n, seed)
    labels = (labels * np.exp(np.random.default_rng(seed + 100).normal(0.0, 0.7, n))).astype(np.float32)
    return inputs, np.log1p(labels), labels


@pytest.mark.parametrize("loss", ["poisson", "squared_error"])
def test_trees_learn_the_mean_and_serve_calibrated_outputs(loss):
    train_x, _, train_y = _rows(2000, 0)
    valid_x, valid_t, valid_y = _rows(600, 1)
    model = _model(train_y, gbdt_loss=loss)
    summary = model.fit_on_rows((train_x, train_y), (valid_x, valid_y), log=None)
    assert [(s["max_depth"], s["shrinkage"], s["min_examples"]) for s in summary["search"]] == [(2, 0.1, 5), (4, 0.1, 5)]
    assert summary["valid_loss"] == min(s["valid_loss"] for s in summary["search"])
    assert 0 < summary["trees"] < 200  # stopped early on the valid rows

    calibration.calibrate_model(model, tf.data.Dataset.from_tensor_slices((valid_x, valid_t)).batch(256), log=None)
    test_x, _, test_y = _rows(1000, 2)
    outputs = {k: v.numpy() for k, v in model.predict_outputs({k: tf.constant(v) for k, v in test_x.items()}).items()}
    for key in base.SERVING_KEYS:
        assert outputs[key].shape == (1000,)
    assert np.all(outputs["lower"] <= outputs["median"] + 1e-4) and np.all(outputs["median"] <= outputs["upper"] + 1e-4)
    # The served mean is the mean in label units: close to the labels' mean, and it ranks them.
    assert outputs["prediction"].mean() == pytest.approx(test_y.mean(), rel=0.15)
    assert np.corrcoef(outputs["prediction"], test_y)[0, 1] > 0.6
    coverage = calibration.coverage(test_y, outputs["lower"], outputs["upper"])
    assert 0.7 <= coverage <= 0.9


def test_every_configurable_loss_is_known_to_the_kind():
    assert set(gbdt.LOSSES) == set(choices.GBDT_LOSSES)


def test_gbdt_says_it_trains_itself_and_refuses_the_keras_loop():
    _, _, labels = _rows(64, 0)
    model = _model(labels)
    assert model.trains_itself and not base.ValueModel.trains_itself
    with pytest.raises(NotImplementedError, match="fit_on_rows"):
        model.loss_config()
    with pytest.raises(ValueError, match="not trained yet"):
        model({features.transformed_name("x"): np.zeros(2, np.float32),
               features.transformed_name("c"): np.zeros(2, np.int64)})


def test_bad_rows_name_the_problem():
    train_x, _, train_y = _rows(200, 0)
    model = _model(train_y)
    with pytest.raises(ValueError, match="c_xf"):
        model.fit_on_rows(({features.transformed_name("x"): train_x[features.transformed_name("x")]}, train_y),
                          (train_x, train_y), log=None)
    with pytest.raises(ValueError, match="non-negative"):
        model.fit_on_rows((train_x, -train_y - 1.0), (train_x, train_y), log=None)
