"""PredictionsWriter: BulkInferrer's PredictionLogs -> Parquet and a Feast feature view in the online store.

Parquet: one folder per as-of time, `<predictions_dir>/<view>/asof-<YYYYmmddTHHMMSSZ>/part-00000.parquet`,
with the entity column(s) (the Feast join keys, in their Feast type), `as_of`, `prediction`,
`median`, `lower`, `upper` (float32, label units), `rq_codes` (RQ-Reg: the greedy codes, coarse to
fine), `model_version` and `run_id`. The folder of an as-of time is written aside and swapped in
whole, so scoring the same as-of time again replaces its rows: they are never duplicated, and a
reader never sees half a partition. PredictionLogs are read, and Parquet written, `batch_rows` at a
time.

Feast: the feature view `<view>` over `<predictions_dir>/<view>/` (timestamp field `as_of`, no TTL:
the latest scoring at or before a time counts, however old) is applied to the user's Feast repo
with the same entities as the features, and the partition's rows are written to its online store
(`FeatureStore.write_to_online_store`, in batches), so `get_online_features(["<view>:prediction"],
...)` returns an entity's predicted value. Only the latest as-of time scored goes online: scoring
an earlier time (a backfill) rewrites its Parquet and leaves the online values alone. Feast's
`materialize` would give the same values but re-reads and sorts every partition ever written on
each call (its file offline store sorts the whole source), so its cost would grow with the history.
"""

import dataclasses
import glob
import json
import os
import shutil
import uuid
from datetime import timedelta
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf
from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components import prediction_logs
from components.scoring_example_gen import MISSING_FILE
from schemas import features

AS_OF = "as_of"
VALUE_COLUMNS = features.SERVING_VALUE_KEYS
CODES_OUTPUT = features.SERVING_CODES_KEY
CODES_COLUMN = "rq_codes"
MODEL_VERSION = "model_version"
RUN_ID = "run_id"
PARTITION_PREFIX = "asof-"
PART_FILE = "part-00000.parquet"


class Predictions(types.Artifact):
    """The predictions of one scoring run: its folder holds nothing; the Parquet partition and the Feast
    view are named by its custom properties (as_of, rows, parquet, feature_view, model_version, ...)."""

    TYPE_NAME = "Predictions"


@dataclasses.dataclass(frozen=True)
class WriterSpec:
    """Where and how to write (plain, so it serialises to JSON as a component parameter)."""

    feast_repo: str
    entity_columns: Sequence[str]
    view_name: str
    predictions_dir: str
    as_of: str
    model_version: str
    output_keys: Sequence[str]
    batch_rows: int = 100_000

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "WriterSpec":
        return cls(**json.loads(text))

    @property
    def view_dir(self) -> str:
        return os.path.join(self.predictions_dir, self.view_name)

    @property
    def as_of_time(self) -> pd.Timestamp:
        return pd.Timestamp(self.as_of).tz_convert("UTC")


def partition_name(as_of: pd.Timestamp) -> str:
    """The folder of one as-of time (no '=' in it: readers would take it for a Hive partition column)."""
    return PARTITION_PREFIX + as_of.tz_convert("UTC").strftime("%Y%m%dT%H%M%SZ")


def partitions(view_dir: str) -> Dict[pd.Timestamp, str]:
    """The partitions already written: as-of time -> folder."""
    found = {}
    for path in glob.glob(os.path.join(view_dir, PARTITION_PREFIX + "*")):
        try:
            found[pd.Timestamp(os.path.basename(path)[len(PARTITION_PREFIX):])] = path
        except ValueError:
            continue
    return found


def entity_types(store, entity_columns: Sequence[str]) -> Dict[str, Any]:
    """Join key -> its Feast entity (the registered one whose join key it is)."""
    entities = {}
    for entity in store.list_entities():
        entities.setdefault(entity.join_key, entity)
    missing = [c for c in entity_columns if c not in entities]
    if missing:
        raise ValueError(f"data.entity_columns: {missing} is not the join key of an entity in the Feast repo")
    return {c: entities[c] for c in entity_columns}


def _entity_values(text: np.ndarray, entity) -> np.ndarray:
    from feast import ValueType

    values = np.char.decode(text.astype(bytes), "utf-8")
    if entity.value_type in (ValueType.INT64, ValueType.INT32):
        return values.astype(np.int64)
    return values.astype(object)


def scored_batches(result_dir: str, spec: WriterSpec, entities: Mapping[str, Any],
                   run_id: str) -> Iterator[pd.DataFrame]:
    """BulkInferrer's PredictionLogs in `result_dir` as prediction rows, `spec.batch_rows` at a time.

    Each log holds the scored example (its entity columns are read back from it) and the serving
    signature's outputs for it (`components/prediction_logs.py`).
    """
    files = sorted(tf.io.gfile.glob(os.path.join(result_dir, "prediction_logs*")))
    if not files:
        raise ValueError(f"no prediction logs in {result_dir}")
    parse = {c: tf.io.FixedLenFeature([], tf.string) for c in spec.entity_columns}
    keys = [key for key in VALUE_COLUMNS if key in spec.output_keys]
    codes = CODES_OUTPUT if CODES_OUTPUT in spec.output_keys else None
    as_of = spec.as_of_time
    for batch in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(spec.batch_rows):
        decoded = prediction_logs.decode(batch, keys, codes)
        parsed = tf.io.parse_example(decoded.examples, parse)
        frame = pd.DataFrame({c: _entity_values(parsed[c].numpy(), entities[c]) for c in spec.entity_columns})
        frame[AS_OF] = as_of
        for key in keys:
            frame[key] = decoded.values[key]
        if codes:
            frame[CODES_COLUMN] = list(decoded.codes)
        frame[MODEL_VERSION] = spec.model_version
        frame[RUN_ID] = run_id
        yield frame


def write_partition(batches: Iterator[pd.DataFrame], spec: WriterSpec) -> Dict[str, Any]:
    """Writes the batches as the partition of `spec.as_of`, replacing an earlier one whole.

    Returns:
      `rows` written, `path` of the partition folder, `replaced` (whether one was there before).
    """
    os.makedirs(spec.view_dir, exist_ok=True)
    staging = os.path.join(spec.view_dir, f".staging-{uuid.uuid4().hex}")  # readers skip '.' folders
    os.makedirs(staging)
    rows, writer = 0, None
    try:
        for frame in batches:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(os.path.join(staging, PART_FILE), table.schema)
            writer.write_table(table)
            rows += len(frame)
        if writer is not None:
            writer.close()
            writer = None
        target = os.path.join(spec.view_dir, partition_name(spec.as_of_time))
        replaced = os.path.exists(target)
        retired = os.path.join(spec.view_dir, f".retired-{uuid.uuid4().hex}")
        if replaced:
            os.rename(target, retired)
        os.rename(staging, target)
        if replaced:
            shutil.rmtree(retired)
    finally:
        if writer is not None:
            writer.close()
        shutil.rmtree(staging, ignore_errors=True)
    return {"rows": rows, "path": target, "replaced": replaced}


def predictions_view(spec: WriterSpec, entities: Mapping[str, Any]):
    """(FileSource, FeatureView) of the predictions: the partitions' folder, keyed by the features' entities."""
    from feast import FeatureView, Field, FileSource
    from feast.types import Array, Float32, Int64, String

    schema = [Field(name=key, dtype=Float32, description=f"served {key} (label units)")
              for key in VALUE_COLUMNS if key in spec.output_keys]
    if CODES_OUTPUT in spec.output_keys:
        schema.append(Field(name=CODES_COLUMN, dtype=Array(Int64), description="RQ codes, coarse to fine"))
    schema += [Field(name=MODEL_VERSION, dtype=String, description="pushed model version that scored the row"),
               Field(name=RUN_ID, dtype=String, description="scoring pipeline run")]
    source = FileSource(name=f"{spec.view_name}_source", path=os.path.abspath(spec.view_dir), timestamp_field=AS_OF)
    view = FeatureView(
        name=spec.view_name,
        entities=list({e.name: e for e in entities.values()}.values()),
        ttl=timedelta(0),
        schema=schema,
        source=source,
        online=True,
        description="Predictions of rqvalue, one partition per as-of time (written by `rqvalue predict`).",
        tags={"written_by": "rqvalue predict"},
    )
    return source, view


def write_online(store, spec: WriterSpec, partition: str) -> int:
    """Writes a partition's rows to the view's online store, `batch_rows` at a time; returns the rows written."""
    rows = 0
    for batch in pq.ParquetFile(os.path.join(partition, PART_FILE)).iter_batches(batch_size=spec.batch_rows):
        frame = batch.to_pandas()
        store.write_to_online_store(spec.view_name, frame)
        rows += len(frame)
    return rows


def write_predictions(spec: WriterSpec, result_dir: str, run_id: str) -> Dict[str, Any]:
    """Parquet partition, Feast view, online store (see the module docstring).

    Returns:
      `rows`, `path` (the partition), `replaced`, `online_rows` (0 when a later as-of time is online).
    """
    from feast import FeatureStore

    store = FeatureStore(repo_path=spec.feast_repo)
    entities = entity_types(store, spec.entity_columns)
    written = write_partition(scored_batches(result_dir, spec, entities, run_id), spec)
    store.apply(list(predictions_view(spec, entities)))
    latest = max(partitions(spec.view_dir))
    written["online_rows"] = write_online(store, spec, written["path"]) if spec.as_of_time >= latest else 0
    written["latest_as_of"] = latest.isoformat()
    return written


class PredictionsWriterSpec(ComponentSpec):
    PARAMETERS = {"spec_json": ExecutionParameter(type=str)}
    INPUTS = {
        "inference_result": ChannelParameter(type=standard_artifacts.InferenceResult),
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "model": ChannelParameter(type=standard_artifacts.Model),
    }
    OUTPUTS = {"predictions": ChannelParameter(type=Predictions)}


class Executor(base_executor.BaseExecutor):
    """Runs `write_predictions` with the pipeline run's id, and records what it wrote on the artifact."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        spec = WriterSpec.from_json(exec_properties["spec_json"])
        inference = artifact_utils.get_single_instance(input_dict["inference_result"])
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        model = artifact_utils.get_single_instance(input_dict["model"])
        run_id = (self._context.pipeline_run_id if self._context else None) or "unknown"
        result = write_predictions(spec, inference.uri, run_id)
        predictions = artifact_utils.get_single_instance(output_dict["predictions"])
        record(predictions, spec, result, run_id, examples, model)


def record(predictions: types.Artifact, spec: WriterSpec, result: Mapping[str, Any], run_id: str,
           examples: types.Artifact, model: Optional[types.Artifact]) -> None:
    """The custom properties `rqvalue inspect predictions` reads."""
    strings = {"as_of": spec.as_of_time.isoformat(), "model_version": spec.model_version, "run_id": run_id,
               "feature_view": spec.view_name, "parquet": result["path"], "latest_as_of": result["latest_as_of"],
               "model_uri": model.uri if model is not None else "",
               "entities_without_features_list": os.path.join(examples.uri, MISSING_FILE)}
    for name, value in strings.items():
        predictions.set_string_custom_property(name, value)
    ints = {"rows": result["rows"], "online_rows": result["online_rows"], "replaced": int(result["replaced"])}
    for name in ("entities", "entities_without_features"):
        ints[name] = examples.get_int_custom_property(name)
    for name, value in ints.items():
        predictions.set_int_custom_property(name, int(value))


class PredictionsWriter(base_component.BaseComponent):
    """TFX component: PredictionLogs -> Parquet partition + Feast view + online store (module docstring)."""

    SPEC_CLASS = PredictionsWriterSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, inference_result, examples, model, spec: WriterSpec):
        super().__init__(spec=PredictionsWriterSpec(
            inference_result=inference_result, examples=examples, model=model, spec_json=spec.to_json(),
            predictions=types.Channel(type=Predictions)))
