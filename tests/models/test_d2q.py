"""D2Q: equal-frequency duration groups, the in-group quantile round trip, and the model contract."""

import numpy as np
import pytest
import scipy.stats
import tensorflow as tf
import tf_keras as keras

from models import base, d2q
from schemas import features

CONFIG = {"embedding_dim": 4, "hidden_units": (16,)}
DURATION = d2q.DEFAULT_DURATION_FEATURE
DURATION_XF = features.transformed_name(DURATION)
AFFINITY_XF = features.transformed_name("affinity")


def _data(n=1000, seed=0):
    """Watch time = duration · sigmoid(2 · affinity + noise), 10% skips at 0; transformed features as Transform
    writes them (z-scored log duration), transformed target log1p(watch time)."""
    rng = np.random.default_rng(seed)
    duration = rng.lognormal(np.log(45.0), 1.0, n)
    affinity = rng.normal(size=n)
    ratio = 1.0 / (1.0 + np.exp(-(2.0 * affinity + 0.5 * rng.normal(size=n))))
    watch = np.where(rng.random(n) < 0.1, 0.0, duration * ratio).astype(np.float32)
    log_duration = np.log1p(duration)
    inputs = {DURATION_XF: ((log_duration - log_duration.mean()) / log_duration.std()).astype(np.float32),
              AFFINITY_XF: affinity.astype(np.float32)}
    return inputs, np.log1p(watch).astype(np.float32), watch


def _context(inputs, labels, numeric_keys=(DURATION, "affinity")):
    return base.TrainContext(numeric_keys=numeric_keys, vocab_sizes={}, label_transform="log1p",
                             train_labels=labels, train_features=inputs)


def _tensors(inputs):
    return {key: tf.constant(value) for key, value in inputs.items()}


@pytest.fixture(scope="module")
def trained():
    """A D2Q model fitted for 8 epochs on `_data`: (model, loss history, inputs, quantile targets)."""
    keras.utils.set_random_seed(0)
    inputs, target, labels = _data()
    model = d2q.D2QModel.from_config_and_context(CONFIG, _context(inputs, labels))
    loss, weights = model.loss_config()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss, loss_weights=weights)
    tensors = _tensors(inputs)
    targets = model.training_targets(tensors, tf.constant(target))
    history = model.fit(tensors, targets, batch_size=64, epochs=8, verbose=0).history["loss"]
    return model, history, tensors, targets[d2q.QUANTILE_KEY].numpy()


def test_groups_are_equal_frequency_over_the_training_durations():
    inputs, _, labels = _data(2000)
    model = d2q.D2QModel(_context(inputs, labels), num_groups=10)
    counts = np.bincount(model.groups(_tensors(inputs)).numpy(), minlength=10)
    assert len(counts) == 10
    assert np.all(np.abs(counts - 200) <= 2)


def test_label_to_group_quantile_and_back_is_close():
    inputs, target, labels = _data()
    model = d2q.D2QModel(_context(inputs, labels))
    tensors = _tensors(inputs)
    quantiles = model.training_targets(tensors, tf.constant(target))[d2q.QUANTILE_KEY]
    grids = tf.gather(model.grids, model.groups(tensors))
    back = d2q.grid_quantile(quantiles, grids).numpy()
    np.testing.assert_allclose(back, labels, rtol=1e-3, atol=1e-3)
    q = quantiles.numpy()
    assert np.all((q >= 0) & (q <= 1))
    for group in range(d2q.DEFAULT_DURATION_GROUPS):  # within a group the quantiles are about uniform
        assert np.mean(q[model.groups(tensors).numpy() == group]) == pytest.approx(0.5, abs=0.05)


def test_grid_cdf_interpolates_and_gives_ties_the_middle_quantile():
    grid = tf.constant([[0.0, 0.0, 0.0, 2.0, 4.0]] * 4)
    cdf = d2q.grid_cdf(tf.constant([0.0, 3.0, -1.0, 9.0]), grid).numpy()
    np.testing.assert_allclose(cdf, [0.25, 0.875, 0.0, 1.0])


def test_loss_falls(trained):
    _, history, _, _ = trained
    assert history[-1] < 0.8 * history[0]


def test_a_feature_tied_to_the_quantile_gives_a_positive_spearman(trained):
    model, _, tensors, quantiles = trained
    predicted = model(tensors)[d2q.QUANTILE_KEY].numpy()
    assert scipy.stats.spearmanr(predicted, quantiles).correlation > 0.5


def test_serving_outputs_have_the_contract_keys_and_shapes(trained):
    model, _, tensors, quantiles = trained
    outputs = model.predict_outputs(tensors)
    for key in base.SERVING_KEYS:
        assert outputs[key].shape == quantiles.shape
    assert outputs[d2q.QUANTILE_KEY].shape == quantiles.shape


@pytest.mark.parametrize("value", [1e4, -1e4])
def test_predictions_stay_bounded_far_outside_the_training_range(trained, value):
    model, _, _, _ = trained
    extreme = {DURATION_XF: tf.fill([4], value), AFFINITY_XF: tf.fill([4], value)}
    raw = model.serving_outputs(extreme)["prediction"].numpy()
    assert np.all(np.isfinite(raw)) and np.all(raw <= float(tf.reduce_max(model.grids)))
    assert np.all(model.predict_outputs(extreme)["prediction"].numpy() <= model.prediction_cap)


def test_a_missing_duration_feature_names_duration_feature():
    inputs, _, labels = _data(100)
    without = {AFFINITY_XF: inputs[AFFINITY_XF]}
    with pytest.raises(ValueError, match="duration_feature: 'video_duration'"):  # empty means the default
        d2q.D2QModel.from_config_and_context({**CONFIG, "duration_feature": ""},
                                             _context(without, labels, numeric_keys=("affinity",)))
    with pytest.raises(ValueError, match="duration_feature: 'length'"):
        d2q.D2QModel.from_config_and_context({**CONFIG, "duration_feature": "length"}, _context(inputs, labels))
