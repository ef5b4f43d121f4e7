"""PrivilegedSchema: privileged features are training-only in the schema, and the splits are checked to honour it.

With distillation, the train and valid examples carry privileged features read from after the
prediction time (`components/privileged_retrieval.py`); the eval examples and every serving
request must not. This component takes the run's schema (curated, or inferred plus the label's
rules) and the statistics of every split, and
  - adds each privileged feature as a float, at most once per example, allowed to be absent
    (`presence.min_fraction: 0`, since the eval split has none) and `not_in_environment: "SERVING"`,
    so TFDV flags it in data validated for serving. The schema gets the TRAINING and SERVING
    default environments, and the label is kept out of SERVING as the curated schemas have it;
  - stops the run, naming the feature and split, if an eval example carries a privileged feature
    or a training split has none of them (the forward retrieval did not reach it).
ExampleValidator, Transform and both Trainers then read the amended schema.
"""

import json
import os
from typing import List, Sequence

from tensorflow_data_validation import FeaturePath
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import v1 as tfx
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils

SCHEMA_FILE = "schema.pbtxt"
TRAINING = "TRAINING"
SERVING = "SERVING"


class PrivilegedSplitError(RuntimeError):
    """Privileged features are where they must not be (eval), or missing where the teacher needs them."""


def amend_schema(schema: schema_pb2.Schema, names: Sequence[str], label: str) -> schema_pb2.Schema:
    """A copy of `schema` in which each of `names` is a training-only float (module docstring)."""
    amended = schema_pb2.Schema()
    amended.CopyFrom(schema)
    for environment in (TRAINING, SERVING):
        if environment not in amended.default_environment:
            amended.default_environment.append(environment)
    for name in [label, *names]:
        feature = next((f for f in amended.feature if f.name == name), None)
        if feature is None:
            feature = amended.feature.add(name=name)
        if SERVING not in feature.not_in_environment:
            feature.not_in_environment.append(SERVING)
        if name == label:
            continue
        feature.type = schema_pb2.FLOAT
        feature.ClearField("domain_info")
        feature.ClearField("shape")  # parsed as a variable-length feature: absent is allowed
        feature.value_count.min = 1
        feature.value_count.max = 1
        feature.presence.min_fraction = 0.0
        feature.presence.min_count = 0
    return amended


def present_counts(statistics, split: str, names: Sequence[str]) -> dict:
    """Examples of `split` that carry each of `names`, from a StatisticsGen artifact."""
    view = stats_artifact_utils.load_statistics(statistics, split).get_default_slice_or_die()
    counts = {}
    for name in names:
        feature = view.get_feature(FeaturePath([name]))
        common = feature.common_statistics() if feature is not None else None
        counts[name] = int(common.num_non_missing) if common is not None else 0
    return counts


def check_splits(statistics, names: Sequence[str], training_splits: Sequence[str]) -> None:
    """Raises PrivilegedSplitError if any example outside `training_splits` carries a privileged feature, or a
    training split carries none of them."""
    problems: List[str] = []
    for split in artifact_utils.decode_split_names(statistics.split_names):
        counts = present_counts(statistics, split, names)
        if split in training_splits:
            if not any(counts.values()):
                problems.append(f"split {split!r} has no privileged feature, though the teacher trains on it")
        else:
            problems += [f"split {split!r}: {count} examples carry the privileged feature {name!r}"
                         for name, count in counts.items() if count]
    if problems:
        raise PrivilegedSplitError("privileged features must be in the training splits "
                                   f"({', '.join(training_splits)}) and nowhere else; nothing was trained or "
                                   "pushed:\n  " + "\n  ".join(problems))


@tfx.dsl.components.component
def PrivilegedSchema(
    schema: tfx.dsl.components.InputArtifact[standard_artifacts.Schema],
    statistics: tfx.dsl.components.InputArtifact[standard_artifacts.ExampleStatistics],
    privileged_schema: tfx.dsl.components.OutputArtifact[standard_artifacts.Schema],
    names_json: tfx.dsl.components.Parameter[str],
    training_splits_json: tfx.dsl.components.Parameter[str],
    label: tfx.dsl.components.Parameter[str],
) -> None:
    """TFX component: checks the splits (`check_splits`), then writes `amend_schema` of the run's schema."""
    names, training_splits = json.loads(names_json), json.loads(training_splits_json)
    check_splits(statistics, names, training_splits)
    source = io_utils.SchemaReader().read(os.path.join(schema.uri, SCHEMA_FILE))
    io_utils.write_pbtxt_file(os.path.join(privileged_schema.uri, SCHEMA_FILE),
                              amend_schema(source, names, label))
