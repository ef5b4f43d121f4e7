"""PrivilegedSchema: privileged features are training-only in the schema, and splits that break that stop the run."""

import os

import numpy as np
import pandas as pd
import pytest
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils

from components import privileged_schema
from pipeline import datasets

NAMES = ("spend_next", "cds_next")


def _curated():
    return tfdv.load_schema_text(datasets.schema_path("cdnow_snapshots"))


def _statistics(tmp_path, frames):
    """A StatisticsGen-like artifact with one split per DataFrame."""
    artifact = standard_artifacts.ExampleStatistics()
    artifact.uri = str(tmp_path / "statistics")
    artifact.split_names = artifact_utils.encode_split_names(list(frames))
    for split, frame in frames.items():
        directory = os.path.join(artifact.uri, f"Split-{split}")
        os.makedirs(directory)
        with open(os.path.join(directory, "FeatureStats.pb"), "wb") as f:
            f.write(tfdv.generate_statistics_from_dataframe(frame).SerializeToString())
    return artifact


def _frame(with_privileged, rows=20):
    frame = pd.DataFrame({"total_spend": np.linspace(0, 100, rows), "label": np.linspace(0, 5, rows)})
    if with_privileged:
        frame = frame.assign(spend_next=np.linspace(0, 9, rows), cds_next=np.arange(rows, dtype=float))
    return frame


def test_amended_schema_keeps_privileged_features_out_of_serving():
    amended = privileged_schema.amend_schema(_curated(), NAMES, "label")
    by_name = {f.name: f for f in amended.feature}
    for name in NAMES:
        assert list(by_name[name].not_in_environment) == ["SERVING"]
        assert by_name[name].type == schema_pb2.FLOAT and by_name[name].presence.min_fraction == 0.0
    assert "SERVING" in by_name["label"].not_in_environment
    assert not by_name["total_spend"].not_in_environment  # serving features untouched
    assert list(amended.default_environment) == ["TRAINING", "SERVING"]
    assert len(_curated().feature) + len(NAMES) == len(amended.feature)


def test_tfdv_flags_a_privileged_feature_in_serving_data_and_accepts_it_in_training(tmp_path):
    amended = privileged_schema.amend_schema(_curated(), NAMES, "label")
    request = tfdv.generate_statistics_from_dataframe(_frame(True).drop(columns=["label"]))
    serving = tfdv.validate_statistics(request, amended, environment="SERVING")
    assert set(NAMES) <= set(serving.anomaly_info)
    training = tfdv.validate_statistics(tfdv.generate_statistics_from_dataframe(_frame(True)), amended,
                                        environment="TRAINING")
    assert not set(NAMES) & set(training.anomaly_info)


def test_splits_must_hold_privileged_features_in_training_and_nowhere_else(tmp_path):
    good = _statistics(tmp_path / "good", {"train": _frame(True), "valid": _frame(True), "eval": _frame(False)})
    privileged_schema.check_splits(good, NAMES, ("train", "valid"))
    leaked = _statistics(tmp_path / "leaked", {"train": _frame(True), "eval": _frame(True)})
    with pytest.raises(privileged_schema.PrivilegedSplitError,
                       match="split 'eval': 20 examples carry the privileged feature 'spend_next'"):
        privileged_schema.check_splits(leaked, NAMES, ("train",))
    missing = _statistics(tmp_path / "missing", {"train": _frame(False), "eval": _frame(False)})
    with pytest.raises(privileged_schema.PrivilegedSplitError, match="split 'train' has no privileged feature"):
        privileged_schema.check_splits(missing, NAMES, ("train",))


def test_the_component_writes_the_amended_schema(tmp_path):
    source, output = standard_artifacts.Schema(), standard_artifacts.Schema()
    source.uri, output.uri = str(tmp_path / "in"), str(tmp_path / "out")
    io_utils.write_pbtxt_file(os.path.join(source.uri, "schema.pbtxt"), _curated())
    statistics = _statistics(tmp_path, {"train": _frame(True), "eval": _frame(False)})
    privileged_schema.PrivilegedSchema.test_call(
        schema=source, statistics=statistics, privileged_schema=output, names_json='["spend_next", "cds_next"]',
        training_splits_json='["train"]', label="label")
    written = io_utils.SchemaReader().read(os.path.join(output.uri, "schema.pbtxt"))
    assert written == privileged_schema.amend_schema(_curated(), NAMES, "label")
