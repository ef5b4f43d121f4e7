"""Predictions from BulkInferrer's logs: one Parquet partition per as-of time, replaced whole on re-scoring; the latest time online."""

import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from feast import FeatureStore
from tensorflow_serving.apis import prediction_log_pb2

from components import predictions_writer as writer
from pipeline import datasets

KEYS = ("codes", "lower", "median", "prediction", "upper")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return datasets.prepare("synthetic_ltv", str(tmp_path_factory.mktemp("ltv")), rows=60).feast_repo


def _scored(directory, ids, offset, packed=False):
    """BulkInferrer's inference result: one PredictionLog per example, as tfx_bsl writes it for a
    predict signature (each output of the row as a [1, ...] tensor); `packed`: of the packed signature
    (one output `scores`: the four values, then the codes)."""
    os.makedirs(directory, exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(directory, "prediction_logs-00000-of-00001.gz"), options="GZIP") as out:
        for i in ids:
            example = tf.train.Example()
            example.features.feature["customer_id"].bytes_list.value.append(str(i).encode())
            example.features.feature["channel"].bytes_list.value.append(b"email")
            log = prediction_log_pb2.PredictionLog()
            request = log.predict_log.request.inputs["examples"]
            request.dtype = tf.string.as_datatype_enum
            request.string_val.append(example.SerializeToString())
            outputs = {key: np.float32(i + offset) for key in ("prediction", "median", "lower", "upper")}
            outputs["codes"] = np.array([i % 4, 1, 0], dtype=np.int64)
            if packed:
                outputs = {"scores": np.concatenate([np.float32([outputs.pop(key) for key in writer.VALUE_COLUMNS]),
                                                     outputs.pop("codes").astype(np.float32)])}
            for key, value in outputs.items():
                log.predict_log.response.outputs[key].CopyFrom(
                    tf.make_tensor_proto(value, shape=np.expand_dims(value, 0).shape))
            out.write(log.SerializeToString())
    return directory


def _spec(repo, tmp_path, as_of, version="7"):
    return writer.WriterSpec(feast_repo=repo, entity_columns=("customer_id",), view_name="predicted_label",
                             predictions_dir=str(tmp_path / "predictions"), as_of=as_of, model_version=version,
                             output_keys=KEYS, batch_rows=16)


def _online(repo, ids):
    values = FeatureStore(repo_path=repo).get_online_features(
        ["predicted_label:prediction", "predicted_label:rq_codes", "predicted_label:model_version"],
        [{"customer_id": int(i)} for i in ids]).to_dict()
    return values["prediction"], values["rq_codes"], values["model_version"]


def test_scoring_again_replaces_rows_and_only_the_latest_time_goes_online(repo, tmp_path):
    ids = np.arange(1, 41)
    june = _spec(repo, tmp_path, "2024-06-01T00:00:00+00:00")
    first = writer.write_predictions(june, _scored(str(tmp_path / "a"), ids, 0.5), "run-1")
    assert (first["rows"], first["online_rows"], first["replaced"]) == (40, 40, False)
    table = pd.read_parquet(june.view_dir)
    assert list(table.columns) == ["customer_id", "as_of", "prediction", "median", "lower", "upper", "rq_codes",
                                   "model_version", "run_id"]
    assert table.customer_id.dtype == np.int64 and set(table.run_id) == {"run-1"}
    assert table.as_of.unique().tolist() == [pd.Timestamp("2024-06-01", tz="UTC")]
    prediction, codes, version = _online(repo, [3, 4])
    assert prediction == pytest.approx([3.5, 4.5]) and codes == [[3, 1, 0], [0, 1, 0]] and version == ["7", "7"]

    again = writer.write_predictions(_spec(repo, tmp_path, june.as_of, "8"),
                                     _scored(str(tmp_path / "b"), ids, 0.25), "run-2")
    assert again["replaced"] and again["rows"] == 40
    table = pd.read_parquet(june.view_dir)
    assert len(table) == 40 and set(table.run_id) == {"run-2"}, "re-scoring replaces, never duplicates"
    assert [p for p in os.listdir(june.view_dir) if p.startswith(".")] == []
    assert _online(repo, [3])[0] == pytest.approx([3.25])

    backfill = writer.write_predictions(_spec(repo, tmp_path, "2024-05-01T00:00:00+00:00", "6"),
                                        _scored(str(tmp_path / "c"), ids[:10], 100.0), "run-3")
    assert backfill["online_rows"] == 0 and backfill["latest_as_of"] == "2024-06-01T00:00:00+00:00"
    assert _online(repo, [3])[0] == pytest.approx([3.25]), "an earlier as-of time leaves the online values alone"
    assert len(pd.read_parquet(june.view_dir)) == 50
    view = FeatureStore(repo_path=repo).get_feature_view("predicted_label")
    assert [e for e in view.entities] == ["customer"] and view.batch_source.timestamp_field == "as_of"


def test_packed_logs_give_the_same_rows_as_logs_of_serving_default(repo, tmp_path):
    spec = _spec(repo, tmp_path, "2024-06-01T00:00:00+00:00")
    entities = writer.entity_types(FeatureStore(repo_path=repo), spec.entity_columns)
    ids = np.arange(1, 21)

    def rows(packed):
        folder = _scored(str(tmp_path / f"packed-{packed}"), ids, 0.5, packed=packed)
        return pd.concat(list(writer.scored_batches(folder, spec, entities, "run-1")), ignore_index=True)

    expected, got = rows(False), rows(True)
    assert len(got) == 20 and got.rq_codes[2].tolist() == [3, 1, 0]
    pd.testing.assert_frame_equal(got, expected)


def test_partition_names_are_not_hive_partitions():
    name = writer.partition_name(pd.Timestamp("2024-06-01T12:30:00+02:00"))
    assert name == "asof-20240601T103000Z" and "=" not in name
