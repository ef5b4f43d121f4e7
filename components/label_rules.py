"""What a label must be — present, a number, finite, not negative — checked on the spine and written into a schema.

The pipeline checks every spine row itself before retrieving features (`label_faults`, used by
FeatureStoreExampleGen), whatever schema the run validates against. A schema inferred by SchemaGen
knows none of this, so the `LabelRules` component adds the same rules to it before ExampleValidator,
Transform and the Trainer read it: the label is a float, present once in every example, in
[0, inf), never NaN. Zero is a valid label.
"""

import os
from typing import Dict

import numpy as np
import pandas as pd
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import v1 as tfx
from tfx.types import standard_artifacts
from tfx.utils import io_utils

SCHEMA_FILE = "schema.pbtxt"

# Each fault a label can have, in the order they are reported.
MISSING = "no label (empty or NaN)"
NOT_A_NUMBER = "a label that is not a number"
INFINITE = "an infinite label"
NEGATIVE = "a negative label"
FAULTS = (MISSING, NOT_A_NUMBER, INFINITE, NEGATIVE)


def label_faults(values: pd.Series) -> Dict[str, np.ndarray]:
    """Boolean masks (one per entry of FAULTS that occurs) of the rows whose label has that fault.

    A text that parses as a number ("1.5", as read from a CSV) is a number.
    """
    numbers = pd.to_numeric(values, errors="coerce").astype("float64").to_numpy()
    missing = values.isna().to_numpy()
    infinite = np.isinf(numbers)
    masks = {
        MISSING: missing,
        NOT_A_NUMBER: ~missing & np.isnan(numbers),
        INFINITE: infinite,
        NEGATIVE: ~infinite & (numbers < 0),
    }
    return {fault: mask for fault, mask in masks.items() if mask.any()}


def amend_schema(schema: schema_pb2.Schema, label: str) -> schema_pb2.Schema:
    """A copy of `schema` in which `label` is a float present once in every example, in [0, inf), never NaN.

    Other features are left as they are. A label the schema lacks is added.
    """
    amended = schema_pb2.Schema()
    amended.CopyFrom(schema)
    feature = next((f for f in amended.feature if f.name == label), None)
    if feature is None:
        feature = amended.feature.add(name=label)
    feature.type = schema_pb2.FLOAT
    feature.ClearField("domain_info")
    feature.float_domain.min = 0.0
    feature.float_domain.disallow_nan = True
    feature.float_domain.disallow_inf = True
    feature.presence.min_fraction = 1.0
    feature.presence.min_count = 1
    if not feature.HasField("shape"):
        feature.value_count.min = 1
        feature.value_count.max = 1
    return amended


@tfx.dsl.components.component
def LabelRules(
    inferred_schema: tfx.dsl.components.InputArtifact[standard_artifacts.Schema],
    schema: tfx.dsl.components.OutputArtifact[standard_artifacts.Schema],
    label: tfx.dsl.components.Parameter[str],
) -> None:
    """TFX component: SchemaGen's schema with the label's rules added (`amend_schema`)."""
    inferred = io_utils.SchemaReader().read(os.path.join(inferred_schema.uri, SCHEMA_FILE))
    io_utils.write_pbtxt_file(os.path.join(schema.uri, SCHEMA_FILE), amend_schema(inferred, label))
