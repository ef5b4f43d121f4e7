"""serialized_examples writes what to_examples writes, whatever the pattern of missing values."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from components import training_examples
from components.ingestion_spec import IngestionSpec

NUMERIC = ("spend", "visits", "tenure")
CATEGORICAL = ("channel", "cohort")
SPEC = IngestionSpec(feast_repo="", spine="", entity_columns=("customer_id",), feature_refs=(),
                     numeric_features=NUMERIC, categorical_features=CATEGORICAL,
                     timestamp_column="prediction_time", label="label", eval_fraction=0.2)


def _frame(rows: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({
        "customer_id": np.arange(rows, dtype=np.int64),
        "prediction_time": pd.Timestamp("2024-03-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 90, rows), "D"),
        "label": np.where(np.arange(rows) % 3 == 0, 0.0, rng.lognormal(2, 1, rows)),
        "spend": rng.lognormal(1, 1, rows),
        "visits": rng.integers(0, 9, rows).astype(np.int64),
        "tenure": rng.random(rows),
        "channel": rng.choice(["email", "search"], rows),
        "cohort": pd.array(rng.integers(1, 13, rows), dtype="Int64"),
    })
    frame.loc[0:39, "spend"] = np.nan  # a common pattern: one feature missing (column-wise encoder)
    frame.loc[40:69, ["tenure", "channel", "cohort"]] = None  # another: a whole view missing
    frame.loc[70, "visits"] = None  # rare patterns: one row each (row by row)
    frame.loc[71, ["spend", "channel"]] = None
    frame.loc[72, NUMERIC + CATEGORICAL] = None
    return frame


def test_every_missing_pattern_encodes_like_to_examples():
    frame = _frame()
    encoded = training_examples.serialized_examples(frame, SPEC)
    assert [tf.train.Example.FromString(e) for e in encoded] == training_examples.to_examples(frame, SPEC)
    assert set(tf.train.Example.FromString(encoded[45]).features.feature) == {
        "customer_id", "prediction_time", "label", "spend", "visits"}
    assert tf.train.Example.FromString(encoded[0]).features.feature["label"].float_list.value == [0.0]


def test_a_common_pattern_takes_the_column_wise_encoder(monkeypatch):
    calls = []
    encode = training_examples.example_encoding.encode
    monkeypatch.setattr(training_examples.example_encoding, "encode",
                        lambda frame, *args, **kwargs: calls.append(len(frame)) or encode(frame, *args, **kwargs))
    training_examples.serialized_examples(_frame(), SPEC)
    assert sorted(calls) == [30, 40, 47]  # the two blanked groups and the complete rows; rare rows row by row


def test_no_rows_no_examples():
    assert training_examples.serialized_examples(_frame().iloc[:0], SPEC) == []


@pytest.mark.parametrize("tz", ["UTC", "US/Eastern", None])
def test_epoch_seconds_are_int_timestamp_of_each_time(tz):
    times = pd.Series(pd.to_datetime(["1969-12-31 23:59:59.5", "1970-01-01", "2024-01-02 03:04:05.9",
                                      "1969-12-31 23:59:58"], utc=True))
    times = times.dt.tz_convert(tz) if tz else times.dt.tz_localize(None)
    assert training_examples.epoch_seconds(times).tolist() == [int(t.timestamp()) for t in times]
