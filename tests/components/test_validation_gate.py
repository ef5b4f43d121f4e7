"""Validation gate: anomalies become one readable line per feature, and the component fails on them."""

import os

import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.types import artifact_utils, standard_artifacts

from components import validation_gate


def _write(uri, split, anomalies):
    os.makedirs(os.path.join(uri, f"Split-{split}"))
    with open(os.path.join(uri, f"Split-{split}", "SchemaDiff.pb"), "wb") as f:
        f.write(anomalies.SerializeToString())


def _anomalies(**features):
    anomalies = anomalies_pb2.Anomalies()
    for name, description in features.items():
        info = anomalies.anomaly_info[name]
        info.reason.add(description=description)
    return anomalies


def _artifact(uri):
    artifact = standard_artifacts.ExampleAnomalies()
    artifact.uri = str(uri)
    artifact.split_names = artifact_utils.encode_split_names(["train", "eval"])
    return artifact


def test_describe_names_split_feature_and_problem(tmp_path):
    _write(tmp_path, "train", _anomalies(label="Unexpectedly low value: -3<0"))
    _write(tmp_path, "eval", _anomalies())
    problems = validation_gate.describe_anomalies(str(tmp_path), ["train", "eval"])
    assert problems == ["split 'train', feature 'label': Unexpectedly low value: -3<0"]


def test_gate_raises_with_every_problem(tmp_path):
    _write(tmp_path, "train", _anomalies(label="Column dropped", channel="Unexpected string values: tv"))
    _write(tmp_path, "eval", _anomalies())
    with pytest.raises(validation_gate.DataValidationError, match="(?s)channel.*tv.*label.*dropped"):
        validation_gate.ValidationGate.test_call(anomalies=_artifact(tmp_path))


def test_gate_passes_clean_data(tmp_path):
    _write(tmp_path, "train", _anomalies())
    _write(tmp_path, "eval", _anomalies())
    validation_gate.ValidationGate.test_call(anomalies=_artifact(tmp_path))
