"""preprocessing_fn under TFT's Beam implementation: codebook assets, codes, value buckets, scaling."""

import tempfile

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam

from models import codebook, codebook_analyzer, preprocessing
from schemas import features

CONFIG = {
    "numeric_features": ["amount"],
    "categorical_features": ["channel"],
    "label": "label",
    "label_transform": "log1p",
    "value_buckets": 4,
    "codebook_sizes": [8, 4, 4],
    "first_level_median": True,
    "codebook_resolution": 1e-4,
}
FEATURE_SPEC = {
    "amount": tf.io.VarLenFeature(tf.float32),
    "channel": tf.io.VarLenFeature(tf.string),
    "label": tf.io.FixedLenFeature([1], tf.float32),
}


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 600
    label = np.where(rng.random(n) < 0.5, 0.0, np.round(rng.lognormal(3.0, 1.0, n), 2))
    rows = [{"amount": [float(a)], "channel": [c.encode()], "label": [float(y)]}
            for a, c, y in zip(rng.lognormal(2.0, 1.0, n), rng.choice(["web", "app"], n), label)]
    rows[0]["amount"] = []  # a missing numeric value
    for row, bad in zip(rows[1:4], (np.nan, np.inf, -np.inf)):  # non-finite values: the same as missing
        row["amount"] = [bad]
    output = str(tmp_path_factory.mktemp("transform"))
    metadata = tft.DatasetMetadata.from_feature_spec(FEATURE_SPEC)
    with beam.Pipeline() as pipeline, tft_beam.Context(temp_dir=tempfile.mkdtemp()):
        (_, _), transform_fn = ((pipeline | beam.Create(rows), metadata)
                                   | tft_beam.AnalyzeAndTransformDataset(
                                       lambda x: preprocessing.preprocessing_fn(x, CONFIG),
                                       output_record_batches=False))
        _ = transform_fn | tft_beam.WriteTransformFn(output)
    return tft.TFTransformOutput(output), label, rows


def _levels(output):
    return [np.loadtxt(output.vocabulary_file_by_name(codebook_analyzer.codebook_asset_key(l)))
            for l in (1, 2, 3)]


def test_codebook_assets_are_sorted_with_the_zero_code_first(transformed):
    output, _, _ = transformed
    levels = _levels(output)
    assert [len(c) for c in levels] == CONFIG["codebook_sizes"]
    assert levels[0][0] == 0.0
    for centroids in levels:
        assert np.all(np.diff(centroids) >= 0)


def test_codes_match_the_numpy_codebook_and_decode_close_to_the_target(transformed):
    output, label, _ = transformed
    layer = output.transform_features_layer()
    raw = {"amount": tf.sparse.from_dense(tf.ones([len(label), 1])),
           "channel": tf.sparse.from_dense(tf.fill([len(label), 1], "web")),
           "label": tf.constant(label[:, None], tf.float32)}
    result = layer(raw)
    levels = _levels(output)
    target = np.log1p(label)
    codes = result[features.CODES_KEY].numpy()
    np.testing.assert_array_equal(codes, codebook.encode(target.astype(np.float32), levels))
    decoded = codebook.decode(codes, levels)
    assert np.all(decoded[label == 0] == 0.0)
    assert np.abs(decoded - target).mean() < 0.05
    np.testing.assert_allclose(result[features.TARGET_KEY].numpy(), target, rtol=1e-5)


def test_value_bucket_is_zero_for_zero_labels_and_ordered_otherwise(transformed):
    output, label, _ = transformed
    layer = output.transform_features_layer()
    order = np.argsort(label)
    raw = {"amount": tf.sparse.from_dense(tf.ones([len(label), 1])),
           "channel": tf.sparse.from_dense(tf.fill([len(label), 1], "web")),
           "label": tf.constant(label[order][:, None], tf.float32)}
    bucket = layer(raw)[features.VALUE_BUCKET_KEY].numpy()
    sorted_label = label[order]
    assert np.all(bucket[sorted_label == 0] == 0)
    assert np.all(bucket[sorted_label > 0] >= 1)
    assert np.all(np.diff(bucket) >= 0)
    assert set(bucket[sorted_label > 0]) == {1, 2, 3}


def test_serving_without_label_keeps_feature_outputs(transformed):
    output, _, _ = transformed
    layer = output.transform_features_layer()
    result = layer({"amount": tf.sparse.from_dense(tf.constant([[3.0]])),
                    "channel": tf.sparse.from_dense(tf.constant([[b"unseen"]]))})
    assert features.CODES_KEY not in result
    assert result[features.transformed_name("channel")].numpy()[0] == output.vocabulary_size_by_name("channel")
    assert np.isfinite(result[features.transformed_name("amount")].numpy()).all()


def test_nan_and_inf_are_a_missing_value_in_the_statistics_and_the_transform(transformed):
    output, _, rows = transformed
    layer = output.transform_features_layer()
    amount = [np.nan, np.inf, -np.inf, 3.0]
    result = layer({"amount": tf.sparse.from_dense(tf.constant([[a] for a in amount])),
                    "channel": tf.sparse.from_dense(tf.fill([len(amount), 1], "web"))})
    missing = layer({"amount": tf.SparseTensor(tf.zeros([0, 2], tf.int64), [], [1, 1]),
                     "channel": tf.sparse.from_dense(tf.constant([["web"]]))})
    scaled = result[features.transformed_name("amount")].numpy()
    np.testing.assert_array_equal(scaled[:3], missing[features.transformed_name("amount")].numpy()[0])
    # The z-score's mean and deviation counted the training rows' NaN/inf (and missing) values as 0.
    raw = np.array([r["amount"][0] if r["amount"] and np.isfinite(r["amount"][0]) else 0.0 for r in rows])
    logged = np.log1p(raw)
    np.testing.assert_allclose(scaled[3], (np.log1p(3.0) - logged.mean()) / logged.std(), rtol=1e-4)
