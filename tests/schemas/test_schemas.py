"""Tests of the curated TFDV schemas against tf.Examples built from the embedded data sets."""

import math

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from feast import FeatureStore
from google.protobuf import text_format
from tensorflow_data_validation.statistics import stats_impl
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx_bsl.coders import example_coder

from pipeline import datasets
from schemas import features

ROWS = {"cdnow": None, "cdnow_snapshots": 1000, "synthetic_ltv": 2000, "watch_time": 2000}
VOCABULARIES = {
    "first_purchase_month": features.CDNOW_FIRST_PURCHASE_MONTHS,
    "first_purchase_weekday": features.WEEKDAYS,
    "cohort": features.CDNOW_FIRST_PURCHASE_MONTHS,
    "channel": features.CHANNELS,
    "country": features.COUNTRIES,
    "device": features.DEVICES,
    "user_favorite_category": features.VIDEO_CATEGORIES,
    "item_category": features.VIDEO_CATEGORIES,
}


def _missing(value):
    return value is None or (isinstance(value, float) and math.isnan(value))


def _example(row, cfg, with_label=True):
    """Encodes one retrieved row the way the ingestion component does (missing value -> absent feature)."""
    feature = {}
    for name in cfg.entity_columns:
        feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(int(row[name])).encode()]))
    feature[cfg.timestamp_column] = tf.train.Feature(
        int64_list=tf.train.Int64List(value=[int(row[cfg.timestamp_column].timestamp())])
    )
    floats = list(cfg.numeric_features) + ([cfg.label] if with_label else [])
    for name in floats:
        if not _missing(row[name]):
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(row[name])]))
    for name in cfg.categorical_features:
        if not _missing(row[name]):
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(row[name]).encode()]))
    return tf.train.Example(features=tf.train.Features(feature=feature))


def _stats(examples):
    batch = example_coder.ExamplesToRecordBatchDecoder().DecodeBatch([e.SerializeToString() for e in examples])
    return stats_impl.generate_statistics_in_memory(batch)


def _load_schema(path):
    with open(path) as f:
        return text_format.Parse(f.read(), schema_pb2.Schema())


@pytest.fixture(scope="module", params=sorted(ROWS))
def prepared(request, tmp_path_factory):
    """(DataConfig, retrieved point-in-time rows) of one embedded data set."""
    name = request.param
    cfg = datasets.prepare(name, str(tmp_path_factory.mktemp(name)), rows=ROWS[name], seed=0)
    spine = pd.read_parquet(cfg.spine).rename(columns={cfg.timestamp_column: features.EVENT_TIMESTAMP_KEY})
    rows = FeatureStore(repo_path=cfg.feast_repo).get_historical_features(spine, list(cfg.feature_refs)).to_df()
    return cfg, rows.rename(columns={features.EVENT_TIMESTAMP_KEY: cfg.timestamp_column})


def test_schema_lists_exactly_the_example_features(prepared):
    cfg, _ = prepared
    schema = _load_schema(cfg.schema)
    by_name = {f.name: f for f in schema.feature}
    expected = list(cfg.entity_columns) + [cfg.timestamp_column, cfg.label]
    expected += list(cfg.numeric_features) + list(cfg.categorical_features)
    assert sorted(by_name) == sorted(expected)
    assert list(schema.default_environment) == ["TRAINING", "SERVING"]

    label = by_name[features.LABEL_KEY]
    assert label.type == schema_pb2.FLOAT and list(label.not_in_environment) == ["SERVING"]
    assert [d.size for d in label.shape.dim] == [1] and label.float_domain.min == 0.0
    assert label.presence.min_fraction == 1.0
    for name in cfg.entity_columns:
        assert by_name[name].type == schema_pb2.BYTES
    assert by_name[features.TIMESTAMP_KEY].type == schema_pb2.INT
    for name in cfg.numeric_features:
        assert by_name[name].type == schema_pb2.FLOAT and not by_name[name].HasField("shape")
        assert (by_name[name].value_count.min, by_name[name].value_count.max) == (1, 1)
    domains = {d.name: list(d.value) for d in schema.string_domain}
    for name in cfg.categorical_features:
        assert by_name[name].type == schema_pb2.BYTES
        assert domains[by_name[name].domain] == list(VOCABULARIES[name])


def test_embedded_data_has_no_anomalies(prepared):
    cfg, rows = prepared
    schema = _load_schema(cfg.schema)
    training = [_example(r, cfg) for r in rows.to_dict("records")]
    anomalies = tfdv.validate_statistics(_stats(training), schema, environment="TRAINING")
    assert dict(anomalies.anomaly_info) == {}

    serving = [_example(r, cfg, with_label=False) for r in rows.head(200).to_dict("records")]
    anomalies = tfdv.validate_statistics(_stats(serving), schema, environment="SERVING")
    assert dict(anomalies.anomaly_info) == {}


def test_negative_label_and_unseen_category_are_anomalies(prepared):
    cfg, rows = prepared
    schema = _load_schema(cfg.schema)
    records = rows.head(200).to_dict("records")
    records[0][cfg.label] = -1.0
    category = cfg.categorical_features[0]
    records[1][category] = "never-seen"
    anomalies = tfdv.validate_statistics(_stats([_example(r, cfg) for r in records]), schema, environment="TRAINING")
    assert set(anomalies.anomaly_info) == {cfg.label, category}
    assert "never-seen" in anomalies.anomaly_info[category].description


def test_missing_numeric_value_is_an_anomaly(prepared):
    cfg, rows = prepared
    records = rows.head(50).to_dict("records")
    records[0][cfg.numeric_features[0]] = np.nan
    anomalies = tfdv.validate_statistics(
        _stats([_example(r, cfg) for r in records]), _load_schema(cfg.schema), environment="TRAINING"
    )
    assert set(anomalies.anomaly_info) == {cfg.numeric_features[0]}
