"""ValidationGate: stops the run when ExampleValidator found anomalies, naming each feature and problem.

ExampleValidator records anomalies but never fails; Transform and everything after it depend on
this gate, so bad data stops the run before anything is trained or pushed.
"""

import os
from typing import List

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import v1 as tfx
from tfx.types import artifact_utils, standard_artifacts

_ANOMALIES_FILE = "SchemaDiff.pb"


class DataValidationError(RuntimeError):
    """The examples do not match the schema."""


def describe_anomalies(anomalies_uri: str, splits: List[str]) -> List[str]:
    """One line per anomalous feature: split, feature, and what is wrong."""
    problems = []
    for split in splits:
        path = os.path.join(anomalies_uri, f"Split-{split}", _ANOMALIES_FILE)
        if not os.path.exists(path):
            continue
        anomalies = anomalies_pb2.Anomalies()
        with open(path, "rb") as f:
            anomalies.ParseFromString(f.read())
        for feature, info in sorted(anomalies.anomaly_info.items()):
            reasons = "; ".join(r.description or r.short_description for r in info.reason)
            problems.append(f"split {split!r}, feature {feature!r}: {reasons or info.description}")
        if anomalies.HasField("dataset_anomaly_info"):
            reasons = "; ".join(r.description for r in anomalies.dataset_anomaly_info.reason)
            problems.append(f"split {split!r}, whole data set: {reasons}")
    return problems


@tfx.dsl.components.component
def ValidationGate(anomalies: tfx.dsl.components.InputArtifact[standard_artifacts.ExampleAnomalies]) -> None:
    """TFX component: raises DataValidationError listing every anomaly; passes silently otherwise."""
    splits = artifact_utils.decode_split_names(anomalies.split_names)
    problems = describe_anomalies(anomalies.uri, splits)
    if problems:
        raise DataValidationError("data validation failed; nothing was trained or pushed:\n  "
                                  + "\n  ".join(problems))
