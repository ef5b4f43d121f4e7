"""Mixed precision (trainer.precision: mixed_float16): float16 compute, float32 outputs and losses, a float32 export."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from toy_data import zero_inflated

from models import base, codebook, registry, trainer
from models.choices import MODEL_KINDS
from models.rqreg import level_key
from schemas import features

SIZES = (6, 4, 3)
DURATION = "duration"


def _setup(kind, n=512):
    """(Trainer config, TrainContext, feature tensors with RQ codes, transformed target) for a small model."""
    inputs, target, labels = zero_inflated(n)
    inputs[features.transformed_name(DURATION)] = np.random.default_rng(1).normal(size=n).astype(np.float32)
    book = codebook.fit(target, SIZES)
    inputs[features.CODES_KEY] = codebook.encode(target, book)
    numeric = ("x", DURATION) if kind == "d2q" else ("x",)
    config = dict(kind=kind, embedding_dim=4, hidden_units=[16], lstm_units=16, regression_weight=0.0, rnc_weight=0.1,
                  rnc_temperature=2.0, sampling_probability=0.0, decoding="tree", beam_width=4, code_smoothing=0.0,
                  rnc_representation="codes", gr_label_scale=None, gr_mixup_probability=0.5,
                  gr_regression_weight=1.0, gr_first_tokens=4, duration_feature=DURATION if kind == "d2q" else "",
                  duration_groups=4, learning_rate=1e-2, interval_groups=1)
    context = base.TrainContext(numeric_keys=numeric, vocab_sizes={"c": 4}, label_transform="log1p",
                                train_labels=labels, codebook_levels=tuple(book), train_features=inputs)
    return config, context, {k: tf.constant(v) for k, v in inputs.items()}, tf.constant(target)


def _float_dtypes(outputs):
    return {key: value.dtype.name for key, value in outputs.items() if value.dtype.is_floating}


def _mixed(kind, n=512):
    """A model of `kind` built under mixed_float16: (model, config, context, inputs, targets)."""
    keras.utils.set_random_seed(0)
    config, context, inputs, target = _setup(kind, n)
    with trainer.precision_policy("mixed_float16"):
        model = trainer.build_model(config, context)
    assert keras.mixed_precision.global_policy().name == "float32"  # restored
    assert model.compute_dtype == "float16" and model.encoder.compute_dtype == "float16"
    assert isinstance(model.optimizer, keras.mixed_precision.LossScaleOptimizer)
    return model, config, context, inputs, model.training_targets(inputs, target)


def _check_export(model, config, context, inputs, targets):
    """The float32 copy has the trained weights, serves float32 and computes what the float16 model does."""
    exported = trainer.float32_model(model, config, context, (inputs, targets))
    assert exported is not model and exported.compute_dtype == "float32"
    for trained, copied in zip(model.weights, exported.weights):
        np.testing.assert_array_equal(trained.numpy(), copied.numpy())
    served = exported.predict_outputs({k: v[:32] for k, v in inputs.items()})
    assert set(_float_dtypes(served).values()) == {"float32"}
    assert all(np.all(np.isfinite(v.numpy())) for v in served.values())
    # The float32 copy computes what the float16 model does, up to float16 rounding (which can flip
    # a greedy decoder's choice, and so change the rest of a few sequences).
    head = {k: v[:64] for k, v in inputs.items()}
    for key, value in model(head, training=False).items():
        close = np.isclose(exported(head, training=False)[key].numpy(), value.numpy(), rtol=0.05, atol=0.05)
        assert close.mean() > 0.95, (key, close.mean())
    return exported


# Keras-trained kinds; RQ-Reg below. Trees (gbdt) train outside Keras and take no dtype policy.
@pytest.mark.parametrize("kind", [kind for kind in MODEL_KINDS if kind != "rqreg" and not registry.trains_itself(kind)])
def test_every_kind_trains_in_mixed_float16_with_float32_outputs_and_exports_in_float32(kind):
    model, config, context, inputs, targets = _mixed(kind, n=128)
    outputs = model(inputs, training=True)
    assert set(_float_dtypes(outputs).values()) == {"float32"}, _float_dtypes(outputs)
    model.run_eagerly = True  # the same ops without tracing a training function: faster for a few steps
    losses = model.fit(inputs, targets, batch_size=128, epochs=1, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses)), losses
    _check_export(model, config, context, inputs, targets)


def test_rqreg_learns_in_mixed_float16_and_its_code_tree_stays_float32():
    model, config, context, inputs, targets = _mixed("rqreg")
    outputs = model(inputs, training=True)
    for level in range(1, len(SIZES) + 1):  # the heads' logits, hence their softmaxes and cross-entropies
        assert outputs[level_key(level)].dtype == tf.float32
    assert outputs["value"].dtype == tf.float32
    (rnc_term,) = model.losses  # Rank-N-Contrast on the code embeddings
    assert rnc_term.dtype == tf.float32
    model.run_eagerly = True
    history = model.fit(inputs, targets, batch_size=128, epochs=8, verbose=0).history["loss"]
    assert history[-1] < 0.7 * history[0]
    exported = _check_export(model, config, context, inputs, targets)
    probabilities = exported.leaf_probabilities({k: v[:16] for k, v in inputs.items()})
    assert probabilities.dtype == tf.float32
    np.testing.assert_allclose(probabilities.numpy().sum(axis=1), 1.0, rtol=1e-5)


def test_a_float32_model_is_exported_as_it_is():
    config, context, inputs, target = _setup("mse", n=32)
    model = trainer.build_model(config, context)
    assert trainer.float32_model(model, config, context, (inputs, model.training_targets(inputs, target))) is model
    assert not isinstance(model.optimizer, keras.mixed_precision.LossScaleOptimizer)


def test_only_the_tree_kind_trains_outside_keras_so_ignores_the_precision():
    assert [kind for kind in MODEL_KINDS if registry.trains_itself(kind)] == ["gbdt"]
    with pytest.raises(ValueError, match="model.kind: 'xgb'"):
        registry.trains_itself("xgb")
