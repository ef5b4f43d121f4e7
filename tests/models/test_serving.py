"""serving_default of every model kind on raw examples: bad values stay in their row, chunks change nothing,
unreadable rows end in an InvalidArgumentError that names them."""

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

from models import base, preprocessing, registry, serving, serving_cost, trainer
from pipeline.config import ModelConfig
from schemas import features

SIZES = (4, 3)
DATA = {"numeric_features": ["x", "y"], "categorical_features": ["c"], "label": "label"}
FEATURE_SPEC = {"x": tf.io.VarLenFeature(tf.float32), "y": tf.io.VarLenFeature(tf.float32),
                "c": tf.io.VarLenFeature(tf.string), "label": tf.io.FixedLenFeature([1], tf.float32)}
SMALL = dict(codebook_sizes=SIZES, embedding_dim=4, hidden_units=(16,), lstm_units=8, duration_feature="x",
             duration_groups=3, gr_first_tokens=2, interval_groups=1, gbdt_max_trees=10,
             gbdt_max_depths=(3,), gbdt_shrinkages=(0.1,), gbdt_min_examples=(5,))


def _rows(n=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.lognormal(2.0, 1.0, n)
    y = rng.normal(size=n)
    c = rng.choice(["web", "app", "shop"], n)
    label = np.where(y + (c == "app") > 0.3, np.round(x * np.exp(y), 2), 0.0)
    return [{"x": [float(a)], "y": [float(b)], "c": [k.encode()], "label": [float(v)]}
            for a, b, k, v in zip(x, y, c, label)]


@pytest.fixture(scope="module")
def transform_output(tmp_path_factory):
    """Transform fitted by `preprocessing_fn` on 300 rows of two numeric and one categorical feature."""
    model = ModelConfig(**SMALL)
    config = {**DATA, **preprocessing.transform_config(_Data(), model)}
    output = str(tmp_path_factory.mktemp("transform"))
    metadata = tft.DatasetMetadata.from_feature_spec(FEATURE_SPEC)
    with beam.Pipeline() as pipeline, tft_beam.Context(temp_dir=tempfile.mkdtemp()):
        transform_fn = ((pipeline | beam.Create(_rows()), metadata)
                        | tft_beam.AnalyzeDataset(lambda x: preprocessing.preprocessing_fn(x, config)))
        _ = transform_fn | tft_beam.WriteTransformFn(output)
    metadata_io.write_metadata(metadata, os.path.join(output, tft.TFTransformOutput.RAW_METADATA_DIR))
    return tft.TFTransformOutput(output)


@dataclasses.dataclass(frozen=True)
class _Data:
    numeric_features: tuple = tuple(DATA["numeric_features"])
    categorical_features: tuple = tuple(DATA["categorical_features"])
    label: str = DATA["label"]


def _signatures(kind, tft_output, **settings):
    """An untrained model of `kind` (seeded; a kind that trains itself, trees, fitted on the rows) and its
    serving signatures."""
    tf.keras.utils.set_random_seed(0)
    config = trainer.trainer_config(_Data(), ModelConfig(kind=kind, **{**SMALL, **settings}))
    rows = _rows()
    raw = tf.io.parse_example(tf.constant([_example(r) for r in rows]), FEATURE_SPEC)
    transformed = tft_output.transform_features_layer()(raw)
    context = base.TrainContext(
        numeric_keys=("x", "y"), vocab_sizes={"c": tft_output.vocabulary_size_by_name("c") + 1},
        label_transform="log1p", train_labels=np.array([r["label"][0] for r in rows], np.float32),
        codebook_levels=tuple(trainer.read_codebook(tft_output, len(SIZES))),
        train_features={key: value.numpy() for key, value in transformed.items()})
    model = trainer.build_model(config, context)
    if model.trains_itself:
        rows = ({key: value.numpy() for key, value in transformed.items()}, context.train_labels)
        model.fit_on_rows(rows, rows, log=None)
    model(transformed)
    return model, serving.signatures(model, tft_output, config)


def _example(row) -> bytes:
    return serialized_example(row, FEATURE_SPEC)


def _serve(signature, rows):
    return {key: value.numpy() for key, value in signature(tf.constant([_example(r) for r in rows])).items()}


def _without_label(row):
    return {key: value for key, value in row.items() if key != "label"}


GOOD = [_without_label(r) for r in _rows(6, seed=1)]
# Rows a client may send: non-finite, extreme, missing and unknown values.
BAD = [{"x": [np.nan], "y": [0.5], "c": [b"web"]}, {"x": [np.inf], "y": [-np.inf], "c": [b"app"]},
       {"x": [-np.inf], "y": [np.nan], "c": [b"shop"]}, {"x": [3e38], "y": [-3e38], "c": [b"web"]},
       {"x": [], "y": [], "c": []}, {"c": [b"never seen"]}, {"x": [1.0], "y": [1.0], "c": [b""]}]


@pytest.fixture(scope="module", params=registry.KINDS)
def kind_signatures(request, transform_output):
    return request.param, _signatures(request.param, transform_output)[1]


def test_nan_and_inf_in_a_numeric_feature_score_as_if_it_were_missing(kind_signatures):
    _, signatures = kind_signatures
    serve = signatures["serving_default"]
    rows = [dict(GOOD[0], x=[v]) for v in (np.nan, np.inf, -np.inf)] + [dict(GOOD[0], x=[])]
    outputs = _serve(serve, rows)
    for key in base.SERVING_KEYS:
        assert np.all(np.isfinite(outputs[key])), key
        np.testing.assert_array_equal(outputs[key][:3], np.repeat(outputs[key][3:], 3, axis=0), err_msg=key)


def test_every_row_scores_the_same_alone_as_among_bad_rows(kind_signatures):
    _, signatures = kind_signatures
    serve = signatures["serving_default"]
    mixed = [row for pair in zip(BAD, GOOD) for row in pair]
    together = _serve(serve, mixed)
    for i, row in enumerate(mixed):
        alone = _serve(serve, [row])
        for key, value in together.items():
            np.testing.assert_allclose(value[i], alone[key][0], rtol=1e-5, atol=1e-6, err_msg=f"row {i} {key}")
    for key in base.SERVING_KEYS:
        assert np.all(np.isfinite(together[key])), key
    empty = serve(tf.constant([], tf.string))
    assert {key: value.shape[0] for key, value in empty.items()} == {key: 0 for key in together}


def _assert_packed_equals_serving_default(signatures, rows):
    """score_packed's `scores` are serving_default's values, then its codes (if any), column by column."""
    outputs = _serve(signatures["serving_default"], rows)
    scores = _serve(signatures[features.SERVING_PACKED_SIGNATURE], rows)[features.SERVING_PACKED_KEY]
    codes = outputs.get(features.SERVING_CODES_KEY, np.zeros((len(rows), 0)))
    assert scores.dtype == np.float32 and scores.shape == (len(rows), 4 + codes.shape[1])
    for column, key in enumerate(features.SERVING_VALUE_KEYS):
        np.testing.assert_array_equal(scores[:, column], outputs[key], err_msg=key)
    np.testing.assert_array_equal(scores[:, 4:], codes)


def test_the_packed_signature_holds_serving_defaults_values_and_codes(kind_signatures):
    _, signatures = kind_signatures
    _assert_packed_equals_serving_default(signatures, GOOD + BAD)
    assert signatures[features.SERVING_PACKED_SIGNATURE](tf.constant([], tf.string))[
        features.SERVING_PACKED_KEY].shape[0] == 0


@pytest.mark.parametrize("kind, settings", [("rqreg", {}), ("rqreg", {"decoding": "pruned", "beam_width": 2}),
                                            ("mse", {})])
def test_scoring_in_chunks_equals_scoring_at_once(kind, settings, transform_output):
    rows = [_without_label(r) for r in _rows(45, seed=2)]
    _, chunked = _signatures(kind, transform_output, serving_chunk_rows=8, **settings)
    _, whole = _signatures(kind, transform_output, serving_chunk_rows=1000, **settings)
    got, expected = _serve(chunked["serving_default"], rows), _serve(whole["serving_default"], rows)
    assert set(got) == set(expected)
    for key in expected:
        assert got[key].shape == expected[key].shape
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-6, err_msg=key)
    empty = chunked["serving_default"](tf.constant([], tf.string))
    assert {key: value.shape[0] for key, value in empty.items()} == {key: 0 for key in expected}


@pytest.fixture(scope="module")
def saved_rqreg_path(transform_output, tmp_path_factory):
    """An RQ-Reg model saved with chunks of 4 rows, as the Trainer exports it."""
    model, signatures = _signatures("rqreg", transform_output, serving_chunk_rows=4)
    path = str(tmp_path_factory.mktemp("saved"))
    tf.saved_model.save(model, path, signatures=signatures)
    return path


@pytest.fixture(scope="module")
def saved_rqreg(saved_rqreg_path):
    """The saved RQ-Reg model's signatures, loaded back as the Pusher and TF Serving see them."""
    return tf.saved_model.load(saved_rqreg_path).signatures


def test_a_saved_model_scores_in_chunks_and_keeps_bad_values_in_their_row(saved_rqreg):
    outputs = _serve(saved_rqreg["serving_default"], GOOD + BAD)
    assert outputs["prediction"].shape == (len(GOOD + BAD),)
    for i, row in enumerate(GOOD + BAD):
        np.testing.assert_allclose(outputs["prediction"][i], _serve(saved_rqreg["serving_default"], [row])[
            "prediction"][0], rtol=1e-5)


def test_a_saved_models_packed_signature_holds_serving_defaults_outputs_and_checks_rows(saved_rqreg):
    _assert_packed_equals_serving_default(saved_rqreg, GOOD + BAD)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"examples\[6\] cannot be read"):
        saved_rqreg[features.SERVING_PACKED_SIGNATURE](tf.constant([_example(r) for r in GOOD] + [b"garbage"]))


@pytest.mark.parametrize("garbage", [b"\xff\xfe\x00 not an example \x80", b"\x0a\x05abc", b"garbage"])
def test_bytes_that_are_not_an_example_raise_an_error_naming_the_row(saved_rqreg, garbage):
    batch = [_example(r) for r in GOOD] + [garbage]  # row 6: in the second chunk of 4
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"examples\[6\] cannot be read: it is not a serialized "
                                                             r"tf.Example"):
        saved_rqreg["serving_default"](tf.constant(batch))


def test_a_feature_of_the_wrong_type_raises_an_error_naming_the_row_and_the_types(saved_rqreg):
    wrong = tf.train.Example(features=tf.train.Features(feature={
        "x": tf.train.Feature(int64_list=tf.train.Int64List(value=[3]))})).SerializeToString()
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"examples\[1\].*x: float_list"):
        saved_rqreg["serving_default"](tf.constant([_example(GOOD[0]), wrong]))


def test_two_values_in_one_feature_raise_an_error_naming_the_row_and_the_feature(saved_rqreg):
    rows = GOOD[:5] + [dict(GOOD[0], y=[1.0, 2.0])]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"examples\[5\]: feature y holds more than one value"):
        _serve(saved_rqreg["serving_default"], rows)


def test_serving_cost_scores_a_batch_of_the_given_examples(saved_rqreg_path, tmp_path):
    path = str(tmp_path / "examples.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for row in GOOD:
            writer.write(_example(row))
    result = serving_cost.measure_here(saved_rqreg_path, str(tmp_path / "*.tfrecord"), rows=10)
    assert result["rows"] == 10 and result["seconds"] > 0 and result["extra_mb"] >= 0
