"""GR: the vocabulary comes from training labels only, tokens round-trip, and the model honours the contract."""

import numpy as np
import pytest
import scipy.stats
import tensorflow as tf
import tf_keras as keras
from toy_data import zero_inflated

from models import base, gr
from schemas import features

SMALL = dict(embedding_dim=4, hidden_units=(16,), d_model=32, num_heads=2, num_layers=1, ffn_units=64)


def _heavy_tailed(n, seed):
    """Zero-inflated lognormal labels: 40% zeros, the rest LogNormal(3, 1.5)."""
    rng = np.random.default_rng(seed)
    return np.where(rng.random(n) < 0.4, 0.0, rng.lognormal(3.0, 1.5, n)).astype(np.float32)


def _data(n=512, seed=0):
    inputs, target, labels = zero_inflated(n, seed)
    return {key: tf.constant(value) for key, value in inputs.items()}, target, labels


def _context(labels):
    return base.TrainContext(numeric_keys=("x",), vocab_sizes={"c": 4}, label_transform="log1p", train_labels=labels)


def _extreme(value):
    return {features.transformed_name("x"): tf.fill([4], value),
            features.transformed_name("c"): tf.zeros([4], tf.int64)}


@pytest.fixture(scope="module")
def trained():
    """A small GR model fitted for 10 epochs (CLEM curriculum on) on `_data`: (model, loss history, inputs, labels)."""
    keras.utils.set_random_seed(0)
    inputs, target, labels = _data()
    model = gr.GRModel(_context(labels), **SMALL)
    loss, weights = model.loss_config()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss, loss_weights=weights)
    targets = model.training_targets(inputs, tf.constant(target))
    history = model.fit(inputs, targets, batch_size=64, epochs=10, verbose=0,
                        callbacks=model.training_callbacks(10 * 8)).history["loss"]
    return model, history, inputs, labels


def test_a_value_only_in_the_test_labels_does_not_shape_the_vocabulary():
    train = _heavy_tailed(2000, seed=0)
    test = np.append(_heavy_tailed(500, seed=1), 50.0 * train.max())
    model = gr.GRModel(_context(train), **SMALL)
    from_train = gr.build_vocabulary(np.round(train * model.scale))
    leaky = gr.build_vocabulary(np.round(np.concatenate([train, test]) * model.scale))
    np.testing.assert_array_equal(model.token_values, from_train)
    assert not np.array_equal(model.token_values, leaky)
    assert model.token_values[0] <= np.round(train.max() * model.scale)


def test_tokens_are_unique_descending_bounded_and_end_with_one():
    tokens = gr.build_vocabulary(np.round(_heavy_tailed(5000, seed=2) * 100))
    assert np.all(np.diff(tokens) < 0)
    assert tokens[-1] == 1.0 and np.all(tokens == np.round(tokens))
    assert len(tokens) <= gr.MAX_NUMERIC_TOKENS + 1


def test_default_scale_gives_the_median_positive_label_at_least_1000_units():
    assert gr.default_label_scale(np.array([0.0, 30.0, 45.0, 9000.0])) == 100.0
    assert gr.default_label_scale(np.array([0.0, 0.8, 2.0])) == 1000.0
    assert gr.default_label_scale(np.zeros(3)) == 1.0


def test_greedy_encoding_round_trips_unseen_heavy_tailed_labels():
    model = gr.GRModel(_context(_heavy_tailed(5000, seed=3)), **SMALL)
    labels = _heavy_tailed(2000, seed=4)
    token_ids = model.encode_labels(tf.constant(labels))
    decoded = model.decode_labels(token_ids).numpy()
    positive = labels > 0
    relative = np.abs(decoded - labels)[positive] / labels[positive]
    rounding = 0.5 / model.scale / labels[positive]
    assert np.all(relative <= 0.02 + rounding)
    assert np.median(relative) < 1e-3
    for row in token_ids.numpy():
        assert np.all(np.diff(row[row >= gr.NUM_SPECIAL]) >= 0)  # ids ascending: token values non-increasing
        assert np.sum(row == gr.END) == 1


def test_zero_labels_encode_as_end_alone_and_decode_to_zero():
    model = gr.GRModel(_context(_heavy_tailed(500, seed=5)), **SMALL)
    token_ids = model.encode_labels(tf.zeros([3])).numpy()
    np.testing.assert_array_equal(token_ids[:, 0], gr.END)
    np.testing.assert_array_equal(token_ids[:, 1:], gr.PAD)
    np.testing.assert_array_equal(model.decode_labels(token_ids).numpy(), 0.0)


def test_labels_beyond_max_tokens_are_truncated():
    model = gr.GRModel(_context(_heavy_tailed(500, seed=6)), max_tokens=4, **SMALL)
    top = model.token_values[0] / model.scale
    token_ids = model.encode_labels(tf.constant([100.0 * top])).numpy()
    np.testing.assert_array_equal(token_ids[0], [gr.NUM_SPECIAL] * 4 + [gr.END])
    assert model.decode_labels(token_ids).numpy()[0] == pytest.approx(4 * top, rel=1e-5)


def test_the_curriculum_raises_the_mixup_rate_from_zero_towards_its_maximum():
    model = gr.GRModel(_context(_heavy_tailed(500, seed=8)), mixup_probability=0.4, **SMALL)
    (schedule,) = model.training_callbacks(total_steps=100)
    rates = []
    for batch in range(100):
        schedule.on_train_batch_begin(batch)
        rates.append(float(model.mixup_rate.numpy()))
    assert rates[0] == 0.0 and np.all(np.diff(rates) > 0)
    assert 0.95 * 0.4 < rates[-1] < 0.4
    teacher_forced_only = gr.GRModel(_context(_heavy_tailed(500, seed=8)), mixup_probability=0.0, **SMALL)
    assert teacher_forced_only.training_callbacks(100) == []


def test_loss_falls_on_a_small_synthetic_set(trained):
    _, history, _, _ = trained
    assert history[-1] < 0.8 * history[0]


def test_serving_outputs_have_the_contract_keys_and_shapes_and_rank_the_labels(trained):
    model, _, inputs, labels = trained
    outputs = model.predict_outputs(inputs)
    for key in base.SERVING_KEYS:
        assert outputs[key].shape == (len(labels),)
    assert outputs[gr.TOKENS_KEY].shape == (len(labels), model.sequence_length)
    np.testing.assert_array_equal(outputs["median"].numpy(), outputs["prediction"].numpy())
    assert scipy.stats.spearmanr(outputs["prediction"].numpy(), labels).correlation > 0.5


@pytest.mark.parametrize("value", [1e4, -1e4])
def test_predictions_stay_bounded_far_outside_the_training_range(trained, value):
    model, _, _, _ = trained
    raw = model.serving_outputs(_extreme(value))["prediction"].numpy()
    assert np.all(np.isfinite(raw))
    assert np.all(raw <= model.max_tokens * model.token_values[0] / model.scale + 1e-3)
    capped = model.predict_outputs(_extreme(value))["prediction"].numpy()
    assert np.all(capped <= model.prediction_cap)


def test_a_non_positive_label_scale_is_rejected():
    with pytest.raises(ValueError, match="gr_label_scale"):
        gr.GRModel(_context(_heavy_tailed(100, seed=7)), label_scale=0.0, **SMALL)


def test_greedy_decoding_weighs_end_against_all_numeric_tokens_together():
    model = gr.GRModel(_context(_heavy_tailed(2000, seed=9)), **SMALL)
    spread = np.full(model.vocab_size - gr.NUM_SPECIAL, 0.7 / (model.vocab_size - gr.NUM_SPECIAL))
    probabilities = np.concatenate([[1e-6, 1e-6, 0.3], spread])
    probabilities[gr.NUM_SPECIAL + 4] += 0.05  # the likeliest numeric token, still below P(END)
    probabilities[gr.NUM_SPECIAL + 8] += 0.02
    logits = tf.constant(np.log(probabilities)[None, :], tf.float32)
    start = tf.constant([gr.START], tf.int64)
    assert model.next_token(logits, start, last=False).numpy()[0] == gr.NUM_SPECIAL + 4
    assert model.next_token(logits, start, last=True).numpy()[0] == gr.END
    # Only tokens no larger than the previous one are admitted.
    after = tf.constant([gr.NUM_SPECIAL + 6], tf.int64)
    assert model.next_token(logits, after, last=False).numpy()[0] == gr.NUM_SPECIAL + 8


def test_zero_inflated_labels_get_the_hurdle_mean_not_a_hard_zero(trained):
    model, _, inputs, labels = trained
    token_ids, logits, prediction = model.greedy_decode(inputs)
    stop_first = model.stop_probability(logits[:, 0], tf.fill([len(labels)], tf.constant(gr.START, tf.int64)),
                                        last=False).numpy()
    likely_zero = stop_first >= gr.STOP_PROBABILITY
    assert 0 < likely_zero.sum() < len(labels)  # `_data` is zero-inflated
    np.testing.assert_array_equal(token_ids.numpy()[likely_zero, 0], gr.END)  # the greedy path says zero ...
    assert np.all(prediction.numpy()[likely_zero] > 0)  # ... the value is (1 - P(END first)) x the path's
    assert np.unique(prediction.numpy()[likely_zero]).size > likely_zero.sum() // 2  # they still rank


def test_first_token_expansion_averages_the_paths_of_the_likeliest_first_tokens(trained):
    model, _, inputs, labels = trained
    greedy_ids, greedy_logits, greedy_prediction = model.greedy_decode(inputs)
    model.first_tokens = 3
    try:
        ids, logits, prediction = model.greedy_decode(inputs)
    finally:
        model.first_tokens = 1
    # The served path and its logits stay those of the likeliest first token.
    np.testing.assert_array_equal(ids.numpy(), greedy_ids.numpy())
    np.testing.assert_allclose(logits.numpy(), greedy_logits.numpy(), atol=1e-5)
    assert not np.allclose(prediction.numpy(), greedy_prediction.numpy())

    # By hand: P(not END first) x the renormalised-probability-weighted mean of v_k + the later steps' value.
    crosses = model._cross_terms(model._memory(inputs))
    start_caches = [None] * len(model.blocks)
    first_logits = model._decode_step(model.token_embedding(tf.fill([len(labels), 1], tf.constant(gr.START, tf.int64))),
                                      crosses, start_caches).numpy()
    numeric = np.exp(first_logits[:, gr.NUM_SPECIAL:] - first_logits[:, gr.NUM_SPECIAL:].max(axis=1, keepdims=True))
    numeric /= numeric.sum(axis=1, keepdims=True)
    stop_first = model.stop_probability(tf.constant(first_logits), tf.fill([len(labels)], tf.constant(gr.START, tf.int64)),
                                        last=False).numpy()
    expected = np.zeros(len(labels))
    top = np.argsort(-numeric, axis=1)[:, :3]
    weights = np.take_along_axis(numeric, top, axis=1)
    weights /= weights.sum(axis=1, keepdims=True)
    for j in range(3):
        first = tf.constant(top[:, j] + gr.NUM_SPECIAL, tf.int64)
        _, _, later = model._continue(first, crosses, start_caches)
        expected += weights[:, j] * (model.token_values[top[:, j]] + later.numpy())
    expected *= (1.0 - stop_first) / model.scale
    np.testing.assert_allclose(prediction.numpy(), expected, rtol=1e-4)


def test_first_tokens_must_be_positive():
    with pytest.raises(ValueError, match="gr_first_tokens"):
        gr.GRModel(_context(_heavy_tailed(100, seed=7)), first_tokens=0, **SMALL)


def test_step_decoding_gives_the_full_causal_pass_at_every_position(trained):
    model, _, inputs, labels = trained
    memory = model._memory(inputs)
    rng = np.random.default_rng(0)
    ids = np.concatenate([np.full((len(labels), 1), gr.START),
                          rng.integers(gr.NUM_SPECIAL, model.vocab_size, size=(len(labels), 5))], axis=1)
    full = model._decode(model.token_embedding(tf.constant(ids)), memory).numpy()
    crosses, caches = model._cross_terms(memory), [None] * len(model.blocks)
    for position in range(ids.shape[1]):
        step = model._decode_step(model.token_embedding(tf.constant(ids[:, position:position + 1])), crosses,
                                  caches).numpy()
        np.testing.assert_allclose(step, full[:, position], rtol=1e-4, atol=1e-4)
