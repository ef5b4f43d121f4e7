"""Piecewise-linear encoding of numeric features: the encoding on known edges, the quantile bins Transform
fits, and every Keras model kind training on it and serving raw examples through it."""

import dataclasses
import os
import tempfile

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import metadata_io
from toy_data import serialized_example

from models import base, piecewise_linear, preprocessing, registry, serving, trainer
from pipeline.config import ConfigError, ModelConfig
from schemas import features

BINS = 4
SIZES = (4, 3)
FEATURE_SPEC = {"x": tf.io.VarLenFeature(tf.float32), "c": tf.io.VarLenFeature(tf.string),
                "label": tf.io.FixedLenFeature([1], tf.float32)}
SMALL = dict(codebook_sizes=SIZES, embedding_dim=4, hidden_units=(16,), lstm_units=8, duration_feature="x",
             duration_groups=3, gr_first_tokens=2, interval_groups=1, numeric_encoding="piecewise_linear",
             numeric_bins=BINS, batch_size=32)
KERAS_KINDS = tuple(kind for kind in registry.KINDS if not registry.trains_itself(kind))


@dataclasses.dataclass(frozen=True)
class _Data:
    numeric_features: tuple = ("x",)
    categorical_features: tuple = ("c",)
    label: str = "label"


def test_encoding_on_known_edges():
    # Four bins: [0, 1], [1, 3], [3, 3] (zero width: a step at 3), [3, 5].
    edges = tf.constant([0.0, 1.0, 3.0, 3.0, 5.0])
    value = tf.constant([-1.0, 0.5, 2.0, 3.0, 4.0, 9.0, 0.0])
    present = tf.constant([True] * 6 + [False])
    got = piecewise_linear.encode(value, present, edges).numpy()
    np.testing.assert_allclose(got, [
        [0, 0, 0, 0, 0],  # below the first edge: clipped to an empty first bin
        [0.5, 0, 0, 0, 0],
        [1, 0.5, 0, 0, 0],
        [1, 1, 1, 0, 0],  # on the zero-width bin's edge: its step is taken
        [1, 1, 1, 0.5, 0],
        [1, 1, 1, 1, 0],  # above the last edge: every bin full
        [0, 0, 0, 0, 1],  # missing: no bin, the indicator
    ])


def test_config_names_a_bad_encoding_or_bin_count():
    with pytest.raises(ConfigError, match="model.numeric_encoding"):
        ModelConfig(numeric_encoding="splines")
    with pytest.raises(ConfigError, match="model.numeric_bins"):
        ModelConfig(numeric_bins=1)
    assert ModelConfig().numeric_encoding == "zscore"


def _rows(n=400, seed=0):
    rng = np.random.default_rng(seed)
    x = np.round(rng.lognormal(2.0, 1.0, n), 3)
    c = rng.choice(["web", "app"], n)
    label = np.where(rng.random(n) < 0.4, 0.0, np.round(x * rng.lognormal(0.0, 0.5, n), 2))
    rows = [{"x": [float(a)], "c": [k.encode()], "label": [float(v)]} for a, k, v in zip(x, c, label)]
    rows[0]["x"] = []  # missing
    rows[1]["x"] = [np.nan]
    return rows


def _example(row) -> bytes:
    return serialized_example(row, FEATURE_SPEC)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """Transform with numeric_encoding piecewise_linear fitted on 400 rows, and the rows transformed."""
    config = preprocessing.transform_config(_Data(), ModelConfig(**SMALL))
    output = str(tmp_path_factory.mktemp("transform"))
    metadata = tft.DatasetMetadata.from_feature_spec(FEATURE_SPEC)
    rows = _rows()
    with beam.Pipeline() as pipeline, tft_beam.Context(temp_dir=tempfile.mkdtemp()):
        transform_fn = ((pipeline | beam.Create(rows), metadata)
                        | tft_beam.AnalyzeDataset(lambda x: preprocessing.preprocessing_fn(x, config)))
        _ = transform_fn | tft_beam.WriteTransformFn(output)
    metadata_io.write_metadata(metadata, os.path.join(output, tft.TFTransformOutput.RAW_METADATA_DIR))
    tft_output = tft.TFTransformOutput(output)
    raw = tf.io.parse_example(tf.constant([_example(r) for r in rows]), FEATURE_SPEC)
    transformed = {k: v.numpy() for k, v in tft_output.transform_features_layer()(raw).items()}
    return tft_output, rows, transformed


def test_transform_fits_quantile_bins_of_the_present_values(fitted):
    _, rows, transformed = fitted
    code = transformed[features.piecewise_linear_name("x")]
    assert code.shape == (len(rows), piecewise_linear.width(BINS))
    np.testing.assert_array_equal(code[:2], [[0, 0, 0, 0, 1]] * 2)  # missing and NaN: the indicator alone
    x = np.array([r["x"][0] for r in rows[2:]])
    bins = code[2:, :BINS]
    assert np.all(code[2:, BINS] == 0)
    order = np.argsort(x)
    np.testing.assert_array_equal(bins[order[0]], np.zeros(BINS))  # the smallest train value: the first edge
    np.testing.assert_array_equal(bins[order[-1]], np.ones(BINS))  # the largest: the last edge
    assert np.all(np.diff(bins[order].sum(axis=1)) >= -1e-6)  # monotone in the value
    # Each row is inside exactly one bin (its fractional component); quantile bins hold equal shares.
    inside = np.argmax((bins > 0) & (bins < 1), axis=1)
    shares = np.bincount(inside[(bins > 0).any(axis=1) & (bins < 1).any(axis=1)], minlength=BINS) / len(x)
    np.testing.assert_allclose(shares, 1.0 / BINS, atol=0.03)


def test_the_z_score_is_still_written_beside(fitted):
    _, _, transformed = fitted
    assert features.transformed_name("x") in transformed
    assert transformed[features.transformed_name("x")].shape == (400,)


@pytest.mark.parametrize("kind", KERAS_KINDS)
def test_every_keras_kind_trains_on_the_encoding_and_serves_raw_examples(kind, fitted):
    tft_output, rows, transformed = fitted
    tf.keras.utils.set_random_seed(0)
    config = trainer.trainer_config(_Data(), ModelConfig(kind=kind, **SMALL))
    labels = np.array([r["label"][0] for r in rows], np.float32)
    context = base.TrainContext(
        numeric_keys=("x",), vocab_sizes={"c": tft_output.vocabulary_size_by_name("c") + 1},
        label_transform="log1p", train_labels=labels,
        codebook_levels=tuple(trainer.read_codebook(tft_output, len(SIZES))), train_features=transformed,
        numeric_encoding="piecewise_linear")
    model = trainer.build_model(config, context)
    inputs = {k: v for k, v in transformed.items() if k != features.TARGET_KEY}
    data = (tf.data.Dataset.from_tensor_slices((inputs, transformed[features.TARGET_KEY])).batch(32)
            .map(lambda x, y: (x, model.training_targets(x, y))))
    history = model.fit(data.repeat(), steps_per_epoch=3, epochs=1, verbose=0).history
    assert np.all(np.isfinite(history["loss"]))
    assert any("/ple_x/" in w.name for w in model.trainable_weights), [w.name for w in model.trainable_weights]
    serve = serving.signatures(model, tft_output, config)["serving_default"]
    good = [{k: v for k, v in r.items() if k != "label"} for r in rows[2:7]]
    served = serve(tf.constant([_example(r) for r in good + [{"c": [b"web"]}, {"x": [1e30], "c": [b"app"]}]]))
    for key in base.SERVING_KEYS:
        assert np.all(np.isfinite(served[key].numpy())), key
    np.testing.assert_allclose(served["prediction"].numpy()[:5], model.predict_outputs(
        {k: v[2:7] for k, v in inputs.items()})["prediction"].numpy(), rtol=1e-4, atol=1e-4)
