"""The files `rqvalue init` writes, as text: feature_store.yaml, the Feast definitions, the starter TFDV
schema and the run config. Plain functions of what `rqvalue.init` found in the data; no I/O."""

import dataclasses
import os
import re
from typing import Dict, Sequence

NUMERIC = "numeric"
CATEGORICAL = "categorical"
DATA_DIR = "data"


@dataclasses.dataclass(frozen=True)
class FeatureColumn:
    """One feature: its column, Feast type name (feast.types) and role (numeric | categorical)."""

    name: str
    feast_type: str
    role: str
    why: str


@dataclasses.dataclass(frozen=True)
class TtlChoice:
    """The feature view's TTL, why, and how many spine rows find no feature row at or before their time."""

    days: int
    why: str
    rows_without_features: int
    rows_older_than_ttl: int


def identifier(text: str) -> str:
    """A lower-case Python identifier and Feast name made of `text`."""
    name = re.sub(r"[^0-9a-zA-Z_]+", "_", text).strip("_").lower() or "features"
    return "_" + name if name[0].isdigit() else name


def feature_store_yaml(project: str) -> str:
    """feature_store.yaml of the local provider; its paths are relative to the repo folder."""
    return (f"project: {project}\n"
            "# Written by `rqvalue init`. Paths are relative to this folder.\n"
            f"registry: {DATA_DIR}/registry.db\n"
            "provider: local\n"
            "online_store:\n"
            "  type: sqlite\n"
            f"  path: {DATA_DIR}/online_store.db\n"
            "offline_store:\n"
            "  type: file\n"
            "entity_key_serialization_version: 2\n")


def definitions_text(view: str, entity_columns: Sequence[str], entity_types: Dict[str, str], source_path: str,
                     event_time: str, columns: Sequence[FeatureColumn], ttl: TtlChoice) -> str:
    """The Feast definitions file: one entity per entity column, the FileSource, the FeatureView, a FeatureService.

    Args:
      view: the feature view's name (an identifier).
      entity_columns: the join keys.
      entity_types: join key -> "INT64" or "STRING" (feast.ValueType).
      source_path: the Parquet file, relative to the definitions file's folder (or absolute).
      event_time: the source's timestamp column.
      columns: the features.
      ttl: the view's TTL and why.
    """
    types = sorted({c.feast_type for c in columns})
    entities = [identifier(c) + "_entity" for c in entity_columns]
    lines = [
        f'"""Feast definitions of `{view}`, written by `rqvalue init`: `feast apply` in this folder registers them."""',
        "",
        "from datetime import timedelta",
        "from pathlib import Path",
        "",
        "from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType",
        f"from feast.types import {', '.join(types)}",
        "",
        "_HERE = Path(__file__).resolve().parent",
        "",
    ]
    for variable, column in zip(entities, entity_columns):
        lines += [f"{variable} = Entity(name={column!r}, join_keys=[{column!r}], "
                  f"value_type=ValueType.{entity_types[column]})", ""]
    path = repr(source_path) if os.path.isabs(source_path) else f"str((_HERE / {source_path!r}).resolve())"
    lines += [
        f"{view}_source = FileSource(",
        f"    name={view + '_source'!r},",
        f"    path={path},",
        f"    timestamp_field={event_time!r},",
        ")",
        "",
        f"{view} = FeatureView(",
        f"    name={view!r},",
        f"    entities=[{', '.join(entities)}],",
        "    # A feature row counts at a prediction time if it is at most this old (the time to live);",
        f"    # {ttl.why}.",
        f"    ttl=timedelta(days={ttl.days}),",
        "    schema=[",
    ]
    for c in columns:
        lines.append(f"        Field(name={c.name!r}, dtype={c.feast_type}, description={c.role + ': ' + c.why!r}),")
    lines += [
        "    ],",
        f"    source={view}_source,",
        ")",
        "",
        f"{view}_v1 = FeatureService(name={view + '_v1'!r}, features=[{view}])",
        "",
    ]
    return "\n".join(lines)


def starter_schema(entity_columns: Sequence[str], prediction_time: str, label: str,
                   columns: Sequence[FeatureColumn]) -> str:
    """A TFDV schema (text proto) for the examples the pipeline writes: entities as bytes, the prediction
    time as int, the label a float in every training example with min 0 (absent when serving),
    numeric features float and categories bytes, each at most one value and allowed to be missing."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = schema_pb2.Schema(default_environment=["TRAINING", "SERVING"])

    def add(name: str, kind: int, required: bool):
        feature = schema.feature.add(name=name, type=kind)
        feature.value_count.min, feature.value_count.max = 1, 1
        if required:
            feature.presence.min_fraction, feature.presence.min_count = 1.0, 1
        return feature

    for column in entity_columns:
        add(column, schema_pb2.BYTES, True)
    add(prediction_time, schema_pb2.INT, True)
    target = schema.feature.add(name=label, type=schema_pb2.FLOAT)
    target.presence.min_fraction, target.presence.min_count = 1.0, 1
    target.shape.dim.add(size=1)
    target.float_domain.min = 0.0
    target.not_in_environment.append("SERVING")
    for c in columns:
        add(c.name, schema_pb2.FLOAT if c.role == NUMERIC else schema_pb2.BYTES, False)
    header = ("# Starter schema written by `rqvalue init`: the label is a number >= 0 present in every training\n"
              "# example (zero is a valid value). Add what you know: string_domain lists for categories, ranges\n"
              "# (float_domain) for numbers, presence for features that must never be missing.\n")
    return header + text_format.MessageToString(schema)


def run_config_values(pipeline_name: str, spine: str, entity_columns: Sequence[str], prediction_time: str,
                      label: str, view: str, columns: Sequence[FeatureColumn], feast_repo: str, schema: str) -> Dict:
    """The run config in the YAML layout of pipeline/configs/own_data.yaml (paths as given: relative ones
    resolve against the config file's folder)."""
    return {
        "pipeline_name": pipeline_name,
        "data": {
            "feast_repo": feast_repo,
            "spine": spine,
            "entity_columns": list(entity_columns),
            "timestamp_column": prediction_time,
            "label": label,
            "feature_refs": [f"{view}:{c.name}" for c in columns],
            "numeric_features": [c.name for c in columns if c.role == NUMERIC],
            "categorical_features": [c.name for c in columns if c.role == CATEGORICAL],
            "schema": schema,
        },
    }
