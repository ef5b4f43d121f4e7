"""Feature-store ingestion: point-in-time features, zero labels kept, encoding, splits and clear errors."""

import dataclasses
import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from components import feature_store_example_gen as ingest
from pipeline import datasets
from schemas import features


@pytest.fixture(scope="module")
def ltv(tmp_path_factory):
    data = datasets.prepare("synthetic_ltv", str(tmp_path_factory.mktemp("ltv")), rows=300)
    return ingest.IngestionSpec.from_data_config(data)


def _examples(spec, frame):
    return {int(e.features.feature["customer_id"].bytes_list.value[0]): e for e in ingest.to_examples(frame, spec)}


def test_features_come_from_at_or_before_the_prediction_time(ltv):
    frame = ingest.retrieve(ltv)
    table = pd.read_parquet(os.path.join(ltv.feast_repo, "data", "customer_profile.parquet"))
    assert table.groupby("customer_id").size().max() > 1, "the table must hold later rows for this test to bite"
    for _, row in frame.sample(50, random_state=0).iterrows():
        history = table[table.customer_id == row.customer_id]
        known = history[history[features.EVENT_TIMESTAMP_KEY] <= row.prediction_time]
        expected = known.sort_values(features.EVENT_TIMESTAMP_KEY).iloc[-1]
        for name in ("spend_to_date", "orders_to_date", "discount_share"):
            assert row[name] == pytest.approx(expected[name]), name


def test_retrieved_rows_keep_spine_order_and_labels(ltv):
    frame = ingest.retrieve(ltv)
    spine = pd.read_parquet(ltv.spine)
    np.testing.assert_array_equal(frame.customer_id.values, spine.customer_id.values)
    np.testing.assert_array_equal(frame.label.values, spine.label.values)


def test_zero_label_survives_as_a_present_float(ltv):
    frame = ingest.retrieve(ltv)
    zeros = frame[frame.label == 0.0]
    assert len(zeros) > 0
    for example in ingest.to_examples(zeros, ltv):
        assert "label" in example.features.feature
        assert list(example.features.feature["label"].float_list.value) == [0.0]


def test_encoding_of_each_kind_of_column(ltv):
    frame = ingest.retrieve(ltv).head(3)
    frame.loc[0, "first_order_value"] = np.nan
    frame.loc[1, "label"] = np.nan
    examples = ingest.to_examples(frame, ltv)
    feature = examples[2].features.feature
    assert feature["customer_id"].bytes_list.value[0] == str(frame.customer_id.iat[2]).encode()
    assert feature["prediction_time"].int64_list.value[0] == int(frame.prediction_time.iat[2].timestamp())
    assert feature["channel"].bytes_list.value[0].decode() in features.CHANNELS
    assert feature["discount_share"].float_list.value[0] == pytest.approx(frame.discount_share.iat[2])
    assert "first_order_value" not in examples[0].features.feature  # missing -> absent
    assert "label" not in examples[1].features.feature


def test_non_numeric_label_is_written_as_text_so_validation_sees_the_type(ltv):
    frame = ingest.retrieve(ltv).head(3)
    frame["label"] = ["1.5", "abc", "0"]
    examples = ingest.to_examples(frame, ltv)
    assert examples[1].features.feature["label"].bytes_list.value[0] == b"abc"


def test_write_examples_splits_by_entity_deterministically(ltv, tmp_path):
    frame = ingest.retrieve(ltv)
    counts = ingest.write_examples(frame, ltv, str(tmp_path))
    assert sum(counts.values()) == len(frame)
    assert 0.1 < counts["eval"] / len(frame) < 0.3
    ids = {}
    for split in ingest.SPLITS:
        path = os.path.join(tmp_path, f"Split-{split}", "data_tfrecord-00000-of-00001.gz")
        records = tf.data.TFRecordDataset(path, compression_type="GZIP")
        ids[split] = {tf.train.Example.FromString(r.numpy()).features.feature["customer_id"].bytes_list.value[0]
                      for r in records}
    assert not ids["train"] & ids["eval"] and not ids["valid"] & (ids["train"] | ids["eval"])
    assert counts["valid"] > 0
    assert ingest.split_of("42", 0.2, 0.1) == ingest.split_of("42", 0.2, 0.1)


def test_every_snapshot_of_an_entity_lands_in_its_one_split(tmp_path):
    data = datasets.prepare("cdnow_snapshots", str(tmp_path / "data"), rows=200)
    spec = ingest.IngestionSpec.from_data_config(data)
    frame = ingest.retrieve(spec)
    assert frame.groupby("customer_id").size().eq(4).all()  # four cut-offs per customer
    counts = ingest.write_examples(frame, spec, str(tmp_path / "examples"))
    splits_of = {}
    for split in ingest.SPLITS:
        path = os.path.join(tmp_path, "examples", f"Split-{split}", "data_tfrecord-00000-of-00001.gz")
        for record in tf.data.TFRecordDataset(path, compression_type="GZIP"):
            feature = tf.train.Example.FromString(record.numpy()).features.feature
            splits_of.setdefault(feature["customer_id"].bytes_list.value[0], []).append(split)
    assert len(splits_of) == 200 and sum(counts.values()) == 800
    assert all(len(found) == 4 and len(set(found)) == 1 for found in splits_of.values())
    assert all(count > 0 and count % 4 == 0 for count in counts.values())


def test_missing_spine_column_names_the_column(ltv, tmp_path):
    spine = pd.read_parquet(ltv.spine).drop(columns=["label"])
    path = str(tmp_path / "spine.parquet")
    spine.to_parquet(path)
    with pytest.raises(ingest.IngestionError, match="'label'"):
        ingest.retrieve(dataclasses.replace(ltv, spine=path))


def test_unknown_feature_view_is_named(ltv):
    spec = dataclasses.replace(ltv, feature_refs=("no_such_view:x",))
    with pytest.raises(ingest.IngestionError, match="no_such_view"):
        ingest.input_fingerprint(spec)


def test_fingerprint_changes_with_the_spine_and_not_otherwise(ltv, tmp_path):
    before = ingest.input_fingerprint(ltv)
    assert ingest.input_fingerprint(ltv) == before
    spine = pd.read_parquet(ltv.spine)
    spine.loc[0, "label"] += 1.0
    path = str(tmp_path / "spine.parquet")
    spine.to_parquet(path)
    assert ingest.input_fingerprint(dataclasses.replace(ltv, spine=path)) != before


# -- spans ----------------------------------------------------------------------------------------

def test_span_is_the_first_day_of_its_window():
    times = pd.Series(pd.to_datetime(["2024-01-01 00:00", "2024-01-07 23:59", "2024-01-08", "1969-12-31"], utc=True))
    assert list(ingest.span_numbers(times, 7, "1970-01-05")) == [20240101, 20240101, 20240108, 19691229]
    assert list(ingest.span_numbers(times, 1, "2024-01-01")) == [20240101, 20240107, 20240108, 19691231]


def test_a_span_that_does_not_start_a_window_is_named(ltv):
    weekly = dataclasses.replace(ltv, span_days=7)
    with pytest.raises(ingest.IngestionError, match="span 20240102: 7-day spans .* do not start on 2024-01-02"):
        ingest.span_window(20240102, weekly)
    with pytest.raises(ingest.IngestionError, match="span 2024: not a date"):
        ingest.span_window(2024, weekly)


def test_retrieve_takes_only_the_rows_of_the_span(ltv):
    spine = ingest.read_spine(ltv)
    weekly = dataclasses.replace(ltv, span_days=7)
    latest = ingest.latest_span(weekly)
    start, end = ingest.span_window(latest, weekly)
    expected = spine[(spine.prediction_time >= start) & (spine.prediction_time < end)]
    frame = ingest.retrieve(weekly, latest)
    assert 0 < len(frame) == len(expected) < len(spine)
    assert frame.prediction_time.min() >= start and frame.prediction_time.max() < end


def test_a_span_without_rows_is_an_error_naming_the_window(ltv):
    weekly = dataclasses.replace(ltv, span_days=7)
    with pytest.raises(ingest.IngestionError, match=r"span 19700105: the spine has no rows with 'prediction_time' "
                                                     r"in \[1970-01-05, 1970-01-12\)"):
        ingest.retrieve(weekly, 19700105)


def test_without_spans_the_whole_spine_is_span_zero(ltv):
    assert ingest.latest_span(ltv) == 0
    assert len(ingest.retrieve(ltv, 0)) == len(ingest.read_spine(ltv))
