"""The map of the served mean (models/mean_calibration.py): fitted on held-out rows, strictly increasing
(so rankings do not move), and served by `predict_outputs` as the numpy twin computes it."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from toy_data import RQREG_PLAIN, zero_inflated

from models import base, calibration, codebook, mean_calibration, metrics, registry
from schemas import features


def _rows(n=3000, seed=0, level=1.3):
    """Labels whose mean given the prediction is level·prediction^1.2 (a model that is off in level and shape)."""
    rng = np.random.default_rng(seed)
    prediction = rng.lognormal(2.0, 1.0, n)
    labels = rng.poisson(level * prediction ** 1.2 / 5.0) * 5.0
    return labels, prediction


def test_scale_puts_the_mean_prediction_on_the_mean_label():
    labels, prediction = _rows()
    knots = mean_calibration.fit(labels, prediction, "scale")
    mapped = mean_calibration.apply(knots, prediction)
    assert mapped.mean() == pytest.approx(labels.mean(), rel=1e-9)
    np.testing.assert_allclose(mapped / prediction, labels.sum() / prediction.sum())


def test_deciles_fix_the_shape_too_and_keep_the_order():
    labels, prediction = _rows()
    held_out, fresh = slice(0, 1500), slice(1500, None)
    errors = {}
    for method in ("none", "scale", "deciles"):
        knots = mean_calibration.fit(labels[held_out], prediction[held_out], method)
        mapped = mean_calibration.apply(knots, prediction[fresh])
        deciles = metrics.decile_calibration(labels[fresh], mapped)
        errors[method] = np.mean(np.abs(deciles["pred_mean"] - deciles["label_mean"]))
        assert np.all(np.diff(mapped[np.argsort(prediction[fresh])]) > 0)  # strictly increasing: same order
        assert metrics.normalized_gini(labels[fresh], mapped) == metrics.normalized_gini(labels[fresh],
                                                                                         prediction[fresh])
    assert errors["deciles"] < errors["scale"] < errors["none"]


def test_deciles_pool_violators_and_stay_strictly_increasing():
    prediction = np.repeat([1.0, 2.0, 3.0, 4.0], 100)
    labels = np.repeat([5.0, 3.0, 3.0, 10.0], 100)  # the second and third groups are below the first
    x, y = mean_calibration.fit(labels, prediction, "deciles")
    assert np.all(np.diff(x) > 0) and np.all(np.diff(y) > 0)
    mapped = mean_calibration.apply((x, y), np.array([1.0, 2.0, 3.0, 4.0]))
    assert mapped[0] == pytest.approx(11 / 3, rel=1e-2) and mapped[1] == pytest.approx(11 / 3, rel=1e-2)
    assert mapped[3] == pytest.approx(10.0)
    assert mean_calibration.apply((x, y), np.array([8.0]))[0] == pytest.approx(20.0)  # proportional above


def test_none_and_degenerate_rows_give_the_identity():
    identity = mean_calibration.identity_knots()
    np.testing.assert_array_equal(mean_calibration.fit([1.0, 2.0], [3.0, 4.0], "none"), identity)
    np.testing.assert_array_equal(mean_calibration.fit([1.0, 2.0], [0.0, 0.0], "scale"), identity)
    with pytest.raises(ValueError, match="model.mean_calibration"):
        mean_calibration.fit([1.0], [1.0], "isotonic")


@pytest.mark.parametrize("method", ("scale", "deciles"))
def test_the_model_serves_the_map_and_calibrate_model_fits_it(method, tmp_path):
    keras.utils.set_random_seed(0)
    inputs, target, labels = zero_inflated(400)
    context = base.TrainContext(numeric_keys=("x",), vocab_sizes={"c": 4}, label_transform="log1p",
                                train_labels=labels, codebook_levels=tuple(codebook.fit(target, (4, 3))))
    model = registry.build("mse", {"embedding_dim": 4, "hidden_units": (8,), "lstm_units": 8, **RQREG_PLAIN},
                           context)
    raw = model.predict_outputs(inputs)["prediction"].numpy()
    dataset = tf.data.Dataset.from_tensor_slices((inputs, target)).batch(64)
    summary = calibration.calibrate_model(model, dataset, log=None, mean=method)
    served = model.predict_outputs(inputs)
    expected = np.clip(mean_calibration.apply(summary["mean_knots"], raw), 0, model.prediction_cap)
    np.testing.assert_allclose(served["prediction"].numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(served["median"].numpy(), raw, rtol=1e-5)  # the median is not mapped
    if method == "scale":
        assert served["prediction"].numpy().mean() == pytest.approx(labels.mean(), rel=1e-4)
    assert summary["mean_prediction_before"] == pytest.approx(raw.mean(), rel=1e-5)

    x_key, c_key = features.transformed_name("x"), features.transformed_name("c")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32), tf.TensorSpec([None], tf.int64)])
    def serve(x, c):
        return model.predict_outputs({x_key: x, c_key: c})

    tf.saved_model.save(model, str(tmp_path), signatures={"serving_default": serve})
    loaded = tf.saved_model.load(str(tmp_path)).signatures["serving_default"](
        x=tf.constant(inputs[x_key]), c=tf.constant(inputs[c_key]))
    np.testing.assert_allclose(loaded["prediction"].numpy(), served["prediction"].numpy(), rtol=1e-5)
