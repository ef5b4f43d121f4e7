"""Feature-store ingestion: point-in-time features, zero labels kept, encoding, splits and clear errors."""

import dataclasses
import os
import re

import numpy as np
import own_data
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


def test_write_examples_splits_by_entity_deterministically(ltv, tmp_path):
    frame = ingest.retrieve(ltv)
    counts = ingest.write_examples(frame, ltv, str(tmp_path))
    assert sum(counts.values()) == len(frame)
    assert 0.1 < counts["eval"] / len(frame) < 0.3
    ids = {}
    for split in ingest.SPLITS:
        path = os.path.join(tmp_path, f"Split-{split}", "data_tfrecord-00000.gz")
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
        path = os.path.join(tmp_path, "examples", f"Split-{split}", "data_tfrecord-00000.gz")
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


# -- bad labels, duplicate rows and spine rows without features ------------------------------------

@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """A user's own data with an inferred schema: Int64 `tier` as a category, a 30-day TTL."""
    return ingest.IngestionSpec.from_data_config(own_data.prepare(str(tmp_path_factory.mktemp("own"))))


def _with_spine(spec, spine, tmp_path, **changes):
    path = str(tmp_path / "spine.csv")
    spine.to_csv(path, index=False)
    return dataclasses.replace(spec, spine=path, **changes)


def _own_spine(spec):
    return pd.read_parquet(spec.spine)


def _split(customer_id, spec):
    return ingest.split_of(str(customer_id), spec.eval_fraction, spec.validation_fraction)


@pytest.mark.parametrize("bad, fault", [
    (-1.0, "a negative label"),
    (np.nan, r"no label \(empty or NaN\)"),
    ("abc", "a label that is not a number"),
    ("inf", "an infinite label"),
])
def test_a_bad_label_stops_ingestion_naming_split_column_count_and_entity(own, tmp_path, bad, fault):
    spine = _own_spine(own).astype({"label": object})
    spine.loc[[4, 9], "label"] = bad
    spec = _with_spine(own, spine, tmp_path)
    with pytest.raises(ingest.IngestionError) as raised:
        ingest.retrieve(spec)
    message = str(raised.value)
    assert "data.label 'label'" in message and "nothing was trained or pushed" in message
    for customer in (5, 10):  # rows 4 and 9
        split = _split(customer, spec)
        assert re.search(rf"split '{split}': [12] rows? with {fault} \(e\.g\. customer_id=", message), message
    assert "customer_id=5 " in message or "customer_id=10 " in message


def test_every_label_fault_is_reported_at_once(own, tmp_path):
    spine = _own_spine(own).astype({"label": object})
    spine.loc[0, "label"], spine.loc[1, "label"], spine.loc[2, "label"] = -3.0, None, "12 USD"
    with pytest.raises(ingest.IngestionError) as raised:
        ingest.retrieve(_with_spine(own, spine, tmp_path))
    for fault in ("negative", "no label", "not a number"):
        assert fault in str(raised.value)


def test_zero_and_numeric_text_labels_pass_the_label_check(own, tmp_path):
    spine = _own_spine(own).astype({"label": object})
    spine.loc[0, "label"], spine.loc[1, "label"] = "0", "12.5"
    frame = ingest.retrieve(_with_spine(own, spine, tmp_path))
    examples = ingest.to_examples(frame, own)
    assert list(examples[0].features.feature["label"].float_list.value) == [0.0]
    assert list(examples[1].features.feature["label"].float_list.value) == [12.5]


def test_duplicate_rows_are_named_as_duplicates(own, tmp_path):
    spine = _own_spine(own)
    spine = pd.concat([spine, spine.iloc[[7]]], ignore_index=True)
    with pytest.raises(ingest.IngestionError, match=r"2 spine rows share their \(customer_id\) and "
                                                     r"'prediction_time' with another row \(e\.g\. customer_id=8 at "):
        ingest.retrieve(_with_spine(own, spine, tmp_path))


def _shifted(spec, row, **change):
    spine = _own_spine(spec)
    for column, value in change.items():
        spine.loc[row, column] = value(spine.loc[row, column]) if callable(value) else value
    return spine


UNKNOWN_ENTITY = dict(customer_id=10_000)
ONLY_LATER = dict(prediction_time=lambda t: t - pd.Timedelta(days=2))  # before the sign-up row
BEYOND_TTL = dict(prediction_time=lambda t: t + pd.Timedelta(days=45))  # later row is 34 days old


@pytest.mark.parametrize("change, cause", [
    (UNKNOWN_ENTITY, r"1 row whose entity is not in the feature store \(e\.g\. customer_id=10000 at "),
    (ONLY_LATER, r"1 row whose feature rows all lie after its prediction time \(e\.g\. customer_id=4 at "
                 r"2024-01-0\d.*; first feature row at 2024-01-02 00:00"),
    (BEYOND_TTL, r"1 row whose latest feature row is older than the view's TTL of 30 days \(e\.g\. customer_id=4 "
                 r"at 2024-02-1\d.*; latest feature row at 2024-01-12 00:00"),
])
def test_rows_without_features_stop_ingestion_naming_the_cause(own, tmp_path, change, cause):
    spec = _with_spine(own, _shifted(own, 3, **change), tmp_path)
    with pytest.raises(ingest.IngestionError) as raised:
        ingest.retrieve(spec)
    message = str(raised.value)
    assert re.search(r"1 of 60 spine rows \(1\.7%\) have no feature row", message), message
    assert "data.max_missing_feature_share=0" in message and "nothing was trained or pushed" in message
    assert re.search(rf"feature view 'profile': {cause}", message), message
    assert "with another row" not in message and "collapse" not in message  # not blamed on duplicates


def test_within_the_allowed_share_rows_without_features_are_kept_with_features_missing(own, tmp_path):
    spine = _shifted(own, 3, **UNKNOWN_ENTITY)
    spec = _with_spine(own, spine, tmp_path, max_missing_feature_share=0.02)
    retrieval = ingest.retrieval(spec)
    assert retrieval.rows_without_features == 1
    frame = retrieval.frame
    np.testing.assert_array_equal(frame.customer_id.values, spine.customer_id.values)
    assert frame.loc[3, ["spend", "tier", "channel"]].isna().all()
    assert frame.drop(index=3)[["spend", "tier", "channel"]].notna().all().all()
    with pytest.raises(ingest.IngestionError, match=r"more than data\.max_missing_feature_share=0\.01 allows"):
        ingest.retrieve(dataclasses.replace(spec, max_missing_feature_share=0.01))


def test_integer_categories_keep_their_identity_next_to_a_row_without_features(own, tmp_path):
    """An Int64 category is written "3", never "3.0", whatever else is missing; serving must be sent b"3"."""
    spec = _with_spine(own, _shifted(own, 3, **UNKNOWN_ENTITY), tmp_path, max_missing_feature_share=0.02)
    examples = ingest.to_examples(ingest.retrieve(spec), spec)
    tiers = {e.features.feature["tier"].bytes_list.value[0] for e in examples if "tier" in e.features.feature}
    assert tiers == {b"1", b"2", b"3"}
    assert "tier" not in examples[3].features.feature


def test_a_row_without_one_views_features_keeps_the_other_views(tmp_path):
    data = datasets.prepare("watch_time", str(tmp_path / "wt"), rows=200)
    spec = ingest.IngestionSpec.from_data_config(data)
    spine = pd.read_parquet(spec.spine)
    spine.loc[5, "item_id"] = 999_999
    spec = _with_spine(spec, spine, tmp_path, max_missing_feature_share=0.01)
    frame = ingest.retrieve(spec)
    assert len(frame) == len(spine)
    assert frame.loc[5, ["video_duration", "item_category"]].isna().all()
    assert frame.loc[5, ["user_activity", "user_favorite_category"]].notna().all()
