"""Label rules: faults found on the spine, and an inferred schema amended so validation enforces them too."""

import os

import numpy as np
import pandas as pd
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.types import standard_artifacts
from tfx.utils import io_utils

from components import label_rules


def test_each_fault_is_found_and_zero_is_not_one():
    values = pd.Series([0.0, 2.5, -1.0, None, "abc", "inf", "7", float("nan"), "-inf"], dtype=object)
    faults = label_rules.label_faults(values)
    rows = {fault: list(np.flatnonzero(mask)) for fault, mask in faults.items()}
    assert rows == {label_rules.MISSING: [3, 7], label_rules.NOT_A_NUMBER: [4],
                    label_rules.INFINITE: [5, 8], label_rules.NEGATIVE: [2]}
    assert label_rules.label_faults(pd.Series([0.0, 0.0, 3.0])) == {}


def _inferred(frame):
    """The schema TFDV infers from `frame`, as SchemaGen does (no domains on floats)."""
    return tfdv.infer_schema(tfdv.generate_statistics_from_dataframe(frame))


def _anomalies(frame, schema):
    anomalies = tfdv.validate_statistics(tfdv.generate_statistics_from_dataframe(frame), schema)
    return {name: " ".join(r.description for r in info.reason) for name, info in anomalies.anomaly_info.items()}


def test_an_inferred_schema_lets_bad_labels_through_and_the_amended_one_does_not():
    good = pd.DataFrame({"label": [0.0, 0.0, 3.5, 12.0], "spend": [1.0, 2.0, 3.0, 4.0]})
    negative = pd.DataFrame({"label": [0.0, -1.0, 3.5, 12.0], "spend": [1.0, 2.0, 3.0, 4.0]})
    inferred = _inferred(good)
    assert _anomalies(negative, inferred) == {}
    amended = label_rules.amend_schema(inferred, "label")
    assert _anomalies(good, amended) == {}
    assert "low value" in _anomalies(negative, amended)["label"]
    nan = pd.DataFrame({"label": [0.0, np.nan, 3.5, 12.0], "spend": [1.0, 2.0, 3.0, 4.0]})
    assert "label" in _anomalies(nan, amended)


def test_amending_adds_the_label_rules_and_leaves_other_features_alone():
    schema = _inferred(pd.DataFrame({"label": ["a", "b"], "spend": [1.0, 2.0]}))
    amended = label_rules.amend_schema(schema, "label")
    label = tfdv.get_feature(amended, "label")
    assert label.type == schema_pb2.FLOAT
    assert label.float_domain.min == 0.0 and label.float_domain.disallow_nan and label.float_domain.disallow_inf
    assert label.presence.min_fraction == 1.0
    assert tfdv.get_feature(amended, "spend") == tfdv.get_feature(schema, "spend")
    assert tfdv.get_feature(schema, "label").type == schema_pb2.BYTES  # the input is not changed
    missing = label_rules.amend_schema(schema_pb2.Schema(), "label")
    assert [f.name for f in missing.feature] == ["label"]


def test_the_component_writes_the_amended_schema(tmp_path):
    inferred = _inferred(pd.DataFrame({"label": [0.0, 1.0], "spend": [1.0, 2.0]}))
    source, output = standard_artifacts.Schema(), standard_artifacts.Schema()
    source.uri, output.uri = str(tmp_path / "in"), str(tmp_path / "out")
    io_utils.write_pbtxt_file(os.path.join(source.uri, "schema.pbtxt"), inferred)
    os.makedirs(output.uri)
    label_rules.LabelRules.test_call(inferred_schema=source, schema=output, label="label")
    written = io_utils.SchemaReader().read(os.path.join(output.uri, "schema.pbtxt"))
    assert written == label_rules.amend_schema(inferred, "label")
