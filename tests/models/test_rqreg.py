"""RQ-Reg model: output shapes, a proper leaf distribution, and a loss that falls on a small set."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from toy_data import RQREG_PLAIN, zero_inflated

from models import base, codebook
from models import rqreg as rq_model
from schemas import features

SIZES = (6, 4, 3)


def _data(n=512, seed=0):
    """The shared zero-inflated toy set (`toy_data`) with the RQ codes of its target."""
    inputs, _, labels = zero_inflated(n, seed)
    t = np.log1p(labels.astype(np.float64))
    book = codebook.fit(t, SIZES)
    return {**inputs, features.CODES_KEY: codebook.encode(t, book)}, t.astype(np.float32), book


def _context(book, labels=np.array([0.0, 500.0])):
    return base.TrainContext(numeric_keys=("x",), vocab_sizes={"c": 4}, label_transform="log1p",
                             train_labels=labels, codebook_levels=tuple(book))


# A small plain model: cross-entropy and the Huber term, no Rank-N-Contrast, no scheduled sampling.
PLAIN = dict(embedding_dim=4, hidden_units=(16,), lstm_units=16, **RQREG_PLAIN)


def _model(book, **settings):
    return rq_model.RQRegModel(_context(book), **{**PLAIN, **settings})


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


def _stepwise_leaf_probabilities(model, inputs):
    """Reference: one full LSTM step (`model._step`) for every (path, code) branch of the tree."""
    context = model.encoder(inputs)
    batch = tf.shape(context)[0]
    probs, previous, paths = tf.ones([batch, 1]), tf.tile(model.start, [batch, 1]), 1
    state = model._start_state(context)
    for level, size in enumerate(model.sizes):
        logits, state = model._step(level, previous, context, state)
        probs = tf.reshape(probs[:, :, None] * tf.reshape(tf.nn.softmax(logits), [batch, paths, size]), [batch, -1])
        state = [tf.repeat(s, size, axis=0) for s in state]
        context = tf.repeat(context, size, axis=0)
        previous = tf.tile(model.code_embeddings[level](tf.range(size, dtype=tf.int64)), [batch * paths, 1])
        paths *= size
    return probs.numpy()


def test_leaf_probabilities_equal_a_full_lstm_step_on_every_branch():
    tf.keras.utils.set_random_seed(3)
    inputs, _, book = _data(9)
    model = _model(book)
    model(inputs)
    np.testing.assert_allclose(model.leaf_probabilities(inputs).numpy(), _stepwise_leaf_probabilities(model, inputs),
                               rtol=1e-5, atol=1e-7)


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


def _leaf_quantile(values, probs, q):
    """Reference: the first value, in ascending order, whose cumulative probability reaches q."""
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(probs[order].astype(np.float64))
    return values[order][min(np.searchsorted(cumulative, q, side="left"), len(values) - 1)]


def test_tree_median_and_interval_are_the_quantiles_of_the_leaf_distribution():
    tf.keras.utils.set_random_seed(5)
    inputs, _, book = _data(64)
    model = _model(book)
    outputs = model.serving_outputs(inputs)
    probs, values = model.leaf_probabilities(inputs).numpy(), model._leaf_values.numpy()
    for key, q in (("median", 0.5), ("lower", base.INTERVAL_QUANTILES[0]), ("upper", base.INTERVAL_QUANTILES[1])):
        expected = [_leaf_quantile(values, row, q) for row in probs]
        np.testing.assert_allclose(outputs[key].numpy(), expected, rtol=1e-6, err_msg=key)
    np.testing.assert_allclose(outputs["prediction"].numpy(), probs @ values, rtol=1e-5)


def test_pruned_tree_keeps_every_prefix_probability_and_expands_the_kept_prefixes_exactly():
    tf.keras.utils.set_random_seed(7)
    inputs, _, book = _data(32)
    model = _model(book)
    exact = model.leaf_probabilities(inputs).numpy().reshape(32, -1, SIZES[-1])
    pruned = model.leaf_probabilities(inputs, prefixes=3).numpy().reshape(32, -1, SIZES[-1])
    np.testing.assert_allclose(pruned.sum(axis=2), exact.sum(axis=2), rtol=1e-5, atol=1e-7)
    collapsed = np.argmin(np.abs(book[-1]))
    expanded = np.abs(pruned - exact).max(axis=2) < 1e-6
    on_one_leaf = np.isclose(pruned[:, :, collapsed], pruned.sum(axis=2), rtol=1e-5, atol=1e-8)
    assert np.all(expanded | on_one_leaf)
    assert np.all(expanded.sum(axis=1) >= 3)  # the 3 kept prefixes (others may match by chance)


def test_pruned_tree_mean_is_within_the_last_level_spread_of_the_pruned_prefixes():
    """Each pruned prefix moves the mean by at most its probability times the range of its leaves' values."""
    inputs, t, book = _data(256)
    model = _trained(book, inputs, t)
    sample = {k: v[:40] for k, v in inputs.items()}
    values = model._leaf_values.numpy().reshape(-1, SIZES[-1])
    exact = model.leaf_probabilities(sample).numpy().reshape(40, -1, SIZES[-1])
    tree = model.serving_outputs(sample)
    model.decoding, model.beam_width = "pruned", 2
    pruned = model.serving_outputs(sample)
    expanded = np.abs(model.leaf_probabilities(sample, 2).numpy().reshape(40, -1, SIZES[-1]) - exact).max(axis=2) < 1e-6
    bound = np.where(expanded, 0.0, exact.sum(axis=2) * np.ptp(values, axis=1)[None, :]).sum(axis=1)
    assert np.all(np.abs(pruned["prediction"].numpy() - tree["prediction"].numpy()) <= bound + 1e-3)
    np.testing.assert_array_equal(pruned["codes"].numpy(), tree["codes"].numpy())


def test_pruning_no_prefix_that_changes_a_value_serves_the_tree():
    """With every prefix not under the zero code kept (those decode to 0 whatever their last code),
    the pruned tree serves exactly the tree's outputs."""
    inputs, t, book = _data(256)
    model = _trained(book, inputs, t)
    sample = {k: v[:40] for k, v in inputs.items()}
    tree = model.serving_outputs(sample)
    model.decoding = "pruned"
    model.beam_width = (SIZES[0] - 1) * SIZES[1] + 1  # every non-zero prefix, and the greedy one
    pruned = model.serving_outputs(sample)
    for key in ("prediction", "median", "lower", "upper", "codes"):
        np.testing.assert_allclose(pruned[key].numpy(), tree[key].numpy(), rtol=1e-5, atol=1e-4, err_msg=key)


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
    model = _model(book, rnc_weight=0.5)
    tensors = {k: tf.constant(v) for k, v in inputs.items()}
    model(tensors, training=False)
    assert not model.losses
    model(tensors, training=True)
    assert len(model.losses) == 1 and float(model.losses[0]) > 0


def test_scheduled_sampling_rate_ramps_to_its_maximum():
    inputs, target, book = _data(256)
    model = _model(book, sampling_probability=0.3)
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
    model = _model(book, rnc_weight=0.1, sampling_probability=0.25)
    loss, weights = model.loss_config()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss, loss_weights=weights)
    tensors = {k: tf.constant(v) for k, v in inputs.items()}
    targets = model.training_targets(tensors, tf.constant(target))
    history = model.fit(tensors, targets, batch_size=64, epochs=15, verbose=0,
                        callbacks=model.training_callbacks(15 * 8)).history["loss"]
    assert history[-1] < 0.6 * history[0]


# -- decoding ---------------------------------------------------------------------------------------

def _trained(book, inputs, t, steps=60):
    keras.utils.set_random_seed(3)
    model = _model(book)
    loss, weights = model.loss_config()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss, loss_weights=weights)
    model.fit(inputs, model.training_targets(inputs, tf.constant(t)), batch_size=64, epochs=steps // 8, verbose=0)
    return model


def test_a_beam_wide_enough_for_every_prefix_is_the_tree():
    inputs, t, book = _data(256)
    model = _trained(book, inputs, t)
    sample = {k: v[:40] for k, v in inputs.items()}
    tree = model.serving_outputs(sample)
    model.decoding, model.beam_width = "beam", SIZES[1]  # every second-level code under each first
    beam = model.serving_outputs(sample)
    for key in ("prediction", "median", "lower", "upper"):
        np.testing.assert_allclose(beam[key].numpy(), tree[key].numpy(), rtol=1e-4, atol=1e-3, err_msg=key)
    np.testing.assert_array_equal(beam["codes"].numpy()[:, 0], tree["codes"].numpy()[:, 0])


def test_a_narrow_beam_keeps_a_proper_distribution_and_the_zero_mass():
    inputs, t, book = _data(256)
    model = _trained(book, inputs, t)
    sample = {k: v[:40] for k, v in inputs.items()}
    probs, values, codes = model.beam(sample, 2)
    leaves = SIZES[0] * 2 * SIZES[-1]
    assert probs.shape == (40, leaves) and codes.shape == (40, leaves, len(SIZES))
    assert set(np.unique(codes.numpy()[:, :, 0])) == set(range(SIZES[0]))  # every first-level code kept
    np.testing.assert_allclose(probs.numpy().sum(axis=1), 1.0, rtol=1e-5)
    # The zero code's subtree is one path: where it is the likelier half it is never pruned, so its
    # whole probability survives (renormalisation can only raise it).
    tree = model.leaf_probabilities(sample).numpy().reshape((40,) + SIZES)
    p_zero = tree[:, codebook.ZERO_CODE].sum(axis=(1, 2))
    zero_mass = np.where(codes.numpy()[:, :, 0] == codebook.ZERO_CODE, probs.numpy(), 0.0).sum(axis=1)
    likely_zero = p_zero > 0.5
    assert likely_zero.sum() >= 5
    assert np.all(zero_mass[likely_zero] >= p_zero[likely_zero] - 1e-5)
    assert np.all(values.numpy()[codes.numpy()[:, :, 0] == codebook.ZERO_CODE] == 0.0)


@pytest.mark.parametrize("decoding", ["greedy", "expectation"])
def test_point_decodings_are_bounded_and_ordered_with_the_interval(decoding):
    inputs, t, book = _data(256)
    model = _trained(book, inputs, t)
    model.decoding = decoding
    outputs = model.predict_outputs({k: v[:50] for k, v in inputs.items()})
    _, leaf_targets = codebook.leaf_values(book)
    prediction = outputs["prediction"].numpy()
    assert np.all(prediction >= 0.0) and np.all(prediction <= np.expm1(leaf_targets.max()) + 1e-2)
    lower, median, upper = (outputs[k].numpy() for k in ("lower", "median", "upper"))
    assert np.all(lower <= median) and np.all(median <= upper)


def test_greedy_prediction_is_the_value_of_the_greedy_codes():
    inputs, t, book = _data(256)
    model = _trained(book, inputs, t)
    model.decoding = "greedy"
    outputs = model.serving_outputs({k: v[:30] for k, v in inputs.items()})
    decoded = np.expm1(codebook.decode(outputs["codes"].numpy(), book))
    np.testing.assert_allclose(outputs["prediction"].numpy(), decoded, rtol=1e-4, atol=1e-3)


def test_unknown_decoding_is_named():
    _, _, book = _data(8)
    with pytest.raises(ValueError, match="model.decoding: 'mode'"):
        _model(book, decoding="mode")


def test_smoothed_code_targets_keep_zero_labels_hard_and_favour_the_nearest_codes():
    levels = [np.array([0.0, 1.0, 2.0, 3.0, 4.0], np.float32), np.array([-0.2, 0.0, 0.2], np.float32)]
    target = np.array([0.0, 2.05, 3.9], np.float32)
    codes = codebook.encode(target, levels)
    soft = [t.numpy() for t in rq_model.smoothed_code_targets(target, codes, levels, smoothing=0.75)]
    for level in soft:
        np.testing.assert_allclose(level.sum(axis=1), 1.0, rtol=1e-6)
    # The zero label keeps its one-hot codes; the positive ones never put mass on the zero code.
    np.testing.assert_array_equal(soft[0][0], [1, 0, 0, 0, 0])
    np.testing.assert_array_equal(soft[1][0], np.eye(3)[codes[0, 1]])
    assert np.all(soft[0][1:, 0] == 0)
    # Level 1 of 2.05: most mass on its own code 2, the neighbours 1 and 3 next, nearly equal, 4 least.
    row = soft[0][1]
    assert row.argmax() == 2 and row[1] > row[4] and row[3] > row[4]
    assert abs(row[1] - row[3]) < 0.05
    # Level 2 sees the residual after level 1's true code: 2.05 - 2 = 0.05 lies between codes 0.0 and 0.2.
    assert soft[1][1].argmax() == 1 and soft[1][1][2] > soft[1][1][0]
    # The edge bins are open: 3.9 puts the most mass on the top code.
    assert soft[0][2].argmax() == 4
    # smoothing = 0: the one-hot codes.
    hard = [t.numpy() for t in rq_model.smoothed_code_targets(target, codes, levels, smoothing=0.0)]
    np.testing.assert_array_equal(hard[0], np.eye(5)[codes[:, 0]])


def test_loss_falls_with_smoothed_code_targets():
    tf.keras.utils.set_random_seed(0)
    inputs, target, book = _data(512)
    model = _model(book, code_smoothing=0.75)
    loss, weights = model.loss_config()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss, loss_weights=weights)
    targets = model.training_targets(inputs, tf.constant(target))
    history = model.fit(inputs, targets, batch_size=64, epochs=5, verbose=0).history["loss"]
    assert history[-1] < 0.8 * history[0]


@pytest.mark.parametrize("representation", ["codes", "features"])
def test_rank_n_contrast_is_added_in_training_only_on_the_chosen_representation(representation):
    tf.keras.utils.set_random_seed(0)
    inputs, _, book = _data(64)
    model = _model(book, rnc_weight=1.0,
                                rnc_representation=representation)
    model(inputs, training=False)
    assert not model.losses
    with tf.GradientTape() as tape:
        model(inputs, training=True)
        rnc_term = tf.add_n(model.losses)
    grads = dict(zip([v.name for v in model.trainable_variables],
                     tape.gradient(rnc_term, model.trainable_variables)))
    encoder_grads = [g for name, g in grads.items() if "encoder" in name and g is not None]
    # Only the "features" representation sends the ranking loss into the feature encoder.
    assert bool(encoder_grads and any(float(tf.reduce_max(tf.abs(g))) > 0 for g in encoder_grads)) == (
        representation == "features")


def test_an_unknown_rnc_representation_is_rejected():
    _, _, book = _data(8)
    with pytest.raises(ValueError, match="rnc_representation"):
        _model(book, rnc_representation="states")


def test_token_mixing_encoder_mixes_every_feature_and_rqreg_learns_with_it():
    tf.keras.utils.set_random_seed(0)
    inputs, target, book = _data(512)
    model = _model(book, feature_encoder="token_mixing", mixer_blocks=2)
    tensors = {k: tf.constant(v) for k, v in inputs.items()}
    assert model.encoder.tokens(tensors).shape == (512, 2, PLAIN["embedding_dim"])  # x and c: one token each
    category = features.transformed_name("c")
    changed = dict(tensors, **{category: tf.zeros_like(tensors[category])})
    assert not np.allclose(model.encoder(tensors).numpy(), model.encoder(changed).numpy())
    loss, weights = model.loss_config()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss, loss_weights=weights)
    targets = model.training_targets(tensors, tf.constant(target))
    history = model.fit(inputs, targets, batch_size=64, epochs=15, verbose=0).history["loss"]
    assert history[-1] < 0.6 * history[0]
    with pytest.raises(ValueError, match="model.feature_encoder"):
        _model(book, feature_encoder="transformer")


def test_warmup_cosine_schedule_sets_the_learning_rate_each_batch():
    inputs, target, book = _data(128)
    model = _model(book, learning_rate_schedule="warmup_cosine", warmup_steps=2, learning_rate=0.01)
    loss, weights = model.loss_config()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss, loss_weights=weights)
    tensors = {k: tf.constant(v) for k, v in inputs.items()}
    (schedule,) = model.training_callbacks(total_steps=4)
    model.fit(tensors, model.training_targets(tensors, tf.constant(target)), batch_size=32, epochs=1, verbose=0,
              callbacks=[schedule])
    # Batches 0..3: 0.005, 0.01 (warm-up), then the cosine from 0.01 at step 2 to 0 at step 4: 0.01, 0.005.
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.005, rel=1e-5)


def test_cross_encoder_multiplies_features_and_rqreg_learns_with_it():
    tf.keras.utils.set_random_seed(0)
    inputs, target, book = _data(512)
    model = _model(book, feature_encoder="cross", cross_layers=2)
    tensors = {k: tf.constant(v) for k, v in inputs.items()}
    assert [layer.units for layer in model.encoder.cross] == [1 + PLAIN["embedding_dim"]] * 2  # x, then c's embedding
    x0 = model.encoder.concatenated(tensors)
    first = model.encoder.cross[0]
    first(x0)
    # One cross layer is x0 * (W x0 + b) + x0: a product of inputs, exactly.
    np.testing.assert_allclose((x0 * first(x0) + x0).numpy(),
                               (x0 * (tf.matmul(x0, first.kernel) + first.bias) + x0).numpy(), rtol=1e-6)
    loss, weights = model.loss_config()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss, loss_weights=weights)
    targets = model.training_targets(tensors, tf.constant(target))
    history = model.fit(inputs, targets, batch_size=64, epochs=15, verbose=0).history["loss"]
    assert history[-1] < 0.6 * history[0]
    assert model.encoder.get_config()["cross_layers"] == 2
