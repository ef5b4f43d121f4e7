"""RQ-Reg model: output shapes, a proper leaf distribution, and a loss that falls on a small set."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from models import base, codebook
from models import model as rq_model
from schemas import features

SIZES = (6, 4, 3)


def _data(n=512, seed=0):
    """One numeric and one categorical feature that determine a zero-inflated target."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n).astype(np.float32)
    cat = rng.integers(0, 3, size=n)
    y = np.where(x + 0.5 * cat > 0.5, np.exp(2.0 + x + cat), 0.0)
    t = np.log1p(y)
    book = codebook.fit(t, SIZES)
    inputs = {features.transformed_name("x"): x, features.transformed_name("c"): cat.astype(np.int64),
              features.CODES_KEY: codebook.encode(t, book)}
    return inputs, t.astype(np.float32), book


def _context(book, labels=np.array([0.0, 500.0])):
    return base.TrainContext(numeric_keys=("x",), vocab_sizes={"c": 4}, label_transform="log1p",
                             train_labels=labels, codebook_levels=tuple(book))


def _model(book):
    return rq_model.RQRegModel(_context(book), embedding_dim=4, hidden_units=(16,), lstm_units=16)


def test_call_returns_logits_per_level_and_expected_value():
    inputs, _, book = _data(8)
    outputs = _model(book)(inputs)
    for level, size in enumerate(SIZES, start=1):
        assert outputs[rq_model.level_key(level)].shape == (8, size)
    assert outputs[rq_model.VALUE_KEY].shape == (8,)


def test_leaf_probabilities_form_a_distribution_over_every_code_path():
    inputs, _, book = _data(5)
    probs = _model(book).leaf_probabilities(inputs).numpy()
    assert probs.shape == (5, int(np.prod(SIZES)))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(probs >= 0)


def test_predict_outputs_are_in_label_units_and_bounded_by_the_leaves():
    inputs, _, book = _data(7)
    outputs = _model(book).predict_outputs(inputs)
    _, leaf_targets = codebook.leaf_values(book)
    leaf_values = np.minimum(np.expm1(leaf_targets), 5000.0)  # the serving cap: 10x the largest label
    assert outputs["prediction"].shape == (7,) and outputs["median"].shape == (7,)
    assert outputs["codes"].shape == (7, len(SIZES))
    assert np.all(outputs["prediction"].numpy() <= leaf_values.max() + 1e-3)
    assert np.all(outputs["prediction"].numpy() >= 0.0)
    assert set(np.round(outputs["median"].numpy(), 4)) <= set(np.round(leaf_values.astype(np.float32), 4))
    lower, median, upper = (outputs[k].numpy() for k in ("lower", "median", "upper"))
    assert np.all(lower <= median) and np.all(median <= upper)


def test_greedy_codes_follow_the_most_probable_first_level_code():
    inputs, _, book = _data(6)
    model = _model(book)
    probs = model.leaf_probabilities(inputs).numpy().reshape((6,) + SIZES)
    codes = model.predict_outputs(inputs)["codes"].numpy()
    np.testing.assert_array_equal(codes[:, 0], probs.sum(axis=(2, 3)).argmax(axis=1))


def test_loss_falls_on_a_small_training_set():
    tf.keras.utils.set_random_seed(0)
    inputs, target, book = _data(512)
    model = _model(book)
    loss, weights = model.loss_config()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss, loss_weights=weights)
    targets = model.training_targets({k: tf.constant(v) for k, v in inputs.items()}, tf.constant(target))
    history = model.fit(inputs, targets, batch_size=64, epochs=15, verbose=0).history["loss"]
    assert history[-1] < 0.6 * history[0]


def test_rank_n_contrast_adds_a_training_loss_only_when_training():
    inputs, _, book = _data(64)
    model = rq_model.RQRegModel(_context(book), embedding_dim=4, hidden_units=(16,), lstm_units=16, rnc_weight=0.5)
    tensors = {k: tf.constant(v) for k, v in inputs.items()}
    model(tensors, training=False)
    assert not model.losses
    model(tensors, training=True)
    assert len(model.losses) == 1 and float(model.losses[0]) > 0


def test_scheduled_sampling_rate_ramps_to_its_maximum():
    inputs, target, book = _data(256)
    model = rq_model.RQRegModel(_context(book), embedding_dim=4, hidden_units=(16,), lstm_units=16,
                                sampling_probability=0.3)
    loss, weights = model.loss_config()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss, loss_weights=weights)
    tensors = {k: tf.constant(v) for k, v in inputs.items()}
    targets = model.training_targets(tensors, tf.constant(target))
    (schedule,) = model.training_callbacks(total_steps=8)
    model.fit(tensors, targets, batch_size=32, epochs=2, verbose=0, callbacks=[schedule])
    assert float(model.sampling_rate.numpy()) == pytest.approx(0.3)


def test_full_objective_with_rnc_and_scheduled_sampling_falls():
    tf.keras.utils.set_random_seed(0)
    inputs, target, book = _data(512)
    model = rq_model.RQRegModel(_context(book), embedding_dim=4, hidden_units=(16,), lstm_units=16,
                                rnc_weight=0.1, sampling_probability=0.25)
    loss, weights = model.loss_config()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss, loss_weights=weights)
    tensors = {k: tf.constant(v) for k, v in inputs.items()}
    targets = model.training_targets(tensors, tf.constant(target))
    history = model.fit(tensors, targets, batch_size=64, epochs=15, verbose=0,
                        callbacks=model.training_callbacks(15 * 8)).history["loss"]
    assert history[-1] < 0.6 * history[0]
