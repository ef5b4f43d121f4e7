"""The column-wise tf.Example encoder writes what the training ingestion writes, as the model parses it."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from components import example_encoding
from components import feature_store_example_gen as ingest

NUMERIC = ("basket_value", "visits")
CATEGORICAL = ("channel", "store_id")


def _frame():
    return pd.DataFrame({
        "customer_id": np.array([7, 8, 9], dtype=np.int64),
        "prediction_time": pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-04"], utc=True),
        "label": [0.0, 12.5, 3.0],
        "basket_value": [19.99, np.nan, 0.0],
        "visits": np.array([1, 2, 3], dtype=np.int64),
        "channel": ["email", None, "search"],
        "store_id": np.array([3, 4, 5], dtype=np.int64),
    })


def _parse(serialized, spec):
    return {k: v for k, v in tf.io.parse_example(list(serialized), spec).items()}


def _spec():
    spec = {"customer_id": tf.io.VarLenFeature(tf.string), "prediction_time": tf.io.VarLenFeature(tf.int64)}
    spec.update({n: tf.io.VarLenFeature(tf.float32) for n in NUMERIC})
    spec.update({n: tf.io.VarLenFeature(tf.string) for n in CATEGORICAL})
    return spec


def test_parses_like_the_training_encoding():
    frame = _frame()
    spec = ingest.IngestionSpec(feast_repo="", spine="", entity_columns=("customer_id",), feature_refs=(),
                                numeric_features=NUMERIC, categorical_features=CATEGORICAL,
                                timestamp_column="prediction_time", label="label", eval_fraction=0.2)
    training = [e.SerializeToString() for e in ingest.to_examples(frame, spec)]
    times = frame.prediction_time.map(lambda t: int(t.timestamp())).to_numpy()
    scoring = example_encoding.encode(frame, ("customer_id",), "prediction_time", times, NUMERIC, CATEGORICAL)
    expected, got = _parse(training, _spec()), _parse(scoring, _spec())
    for key in _spec():
        np.testing.assert_array_equal(tf.sparse.to_dense(got[key]).numpy(), tf.sparse.to_dense(expected[key]).numpy(),
                                      err_msg=key)
        np.testing.assert_array_equal(got[key].indices.numpy(), expected[key].indices.numpy(), err_msg=key)


def test_a_missing_value_is_no_value_not_zero():
    frame = _frame()
    scoring = example_encoding.encode(frame, ("customer_id",), "t", np.zeros(3), NUMERIC, CATEGORICAL)
    parsed = _parse(scoring, {"basket_value": tf.io.VarLenFeature(tf.float32),
                              "channel": tf.io.VarLenFeature(tf.string)})
    assert parsed["basket_value"].indices.numpy()[:, 0].tolist() == [0, 2]  # row 1 has none
    assert parsed["channel"].indices.numpy()[:, 0].tolist() == [0, 2]
    assert parsed["basket_value"].values.numpy()[1] == 0.0  # a real zero stays a value


@pytest.mark.parametrize("feast_type, expected", [("Int64", b"3"), ("Float64", b"3.0")])
def test_integer_categories_stay_digits_around_a_missing_value(feast_type, expected):
    # Feast returns an Int64 feature as floats when a row misses it; the category must still read "3".
    frame = pd.DataFrame({"customer_id": [1, 2], "store_id": [3.0, np.nan]})
    scoring = example_encoding.encode(frame, ("customer_id",), "t", np.zeros(2), (), ("store_id",),
                                      {"store_id": feast_type})
    example = tf.train.Example.FromString(scoring[0])
    assert example.features.feature["store_id"].bytes_list.value == [expected]
    assert example.features.feature["customer_id"].bytes_list.value == [b"1"]


def test_no_rows_no_examples():
    frame = _frame().head(0)
    assert example_encoding.encode(frame, ("customer_id",), "t", np.zeros(0), NUMERIC, CATEGORICAL) == []
