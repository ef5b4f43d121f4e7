"""ScoringExampleGen: the entities to score as of one time, their features point-in-time from Feast, as tf.Examples.

Which entities: every entity of the feature views' sources with a feature row at or before the
as-of time (a single entity column; read through Feast's offline store, so any store Feast
supports), or the ids of an entity list (Parquet or CSV holding the entity columns; a spine's other
columns are ignored).

Features: Feast's `get_historical_features` with every entity at the as-of time, as in training
(`components/feature_store_example_gen.py`): the latest row at or before that time and within the
feature view's TTL, never a later one. Entities are retrieved in chunks of `chunk_rows` and each
chunk is written as its own TFRecord shard, so memory holds one chunk (plus what the offline store
reads for it), and Beam reads the shards in parallel.

An entity with no feature row in its window, or with every feature missing, is not scored: it is
counted (`entities_without_features`) and listed in `entities_without_features.csv` in the
artifact folder. An entity missing only some features is scored with those features missing, as
in training. Encoding: `components/example_encoding.py`.
"""

import dataclasses
import json
import os
from typing import Dict, Iterator, Sequence, Tuple

import numpy as np
import pandas as pd
import tensorflow as tf
from tfx import v1 as tfx
from tfx.types import artifact_utils, standard_artifacts

from components import example_encoding
from components.feature_store_example_gen import IngestionError
from schemas import features

SCORE_SPLIT = "score"
MISSING_FILE = "entities_without_features.csv"
_ROW_ID = "__rqvalue_row_id"


@dataclasses.dataclass(frozen=True)
class ScoringSpec:
    """What to score (plain, so it serialises to JSON as a component parameter).

    Attributes:
      feast_repo, entity_columns, feature_refs, numeric_features, categorical_features,
        timestamp_column: as in `pipeline.config.DataConfig`.
      as_of: the time features are read as of, ISO 8601 (naive = UTC).
      entities: a Parquet or CSV file with the entity columns; empty: every entity in the store.
      chunk_rows: entities retrieved and written at a time.
    """

    feast_repo: str
    entity_columns: Sequence[str]
    feature_refs: Sequence[str]
    numeric_features: Sequence[str]
    categorical_features: Sequence[str]
    timestamp_column: str
    as_of: str
    entities: str = ""
    chunk_rows: int = 250_000

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ScoringSpec":
        return cls(**json.loads(text))

    @property
    def as_of_time(self) -> pd.Timestamp:
        return utc_time(self.as_of, "--as-of")


def utc_time(text: str, what: str) -> pd.Timestamp:
    """A time as a tz-aware UTC timestamp (naive times are UTC); IngestionError naming `what` if it is not one."""
    try:
        time = pd.Timestamp(text)
    except (ValueError, TypeError):
        raise IngestionError(f"{what}: {text!r} is not a time (e.g. 2024-06-01 or 2024-06-01T12:00:00Z)") from None
    return time.tz_localize("UTC") if time.tzinfo is None else time.tz_convert("UTC")


def _views(store, spec: ScoringSpec) -> Dict[str, object]:
    views = {}
    for ref in spec.feature_refs:
        name = ref.split(":", 1)[0]
        if name not in views:
            try:
                views[name] = store.get_feature_view(name)
            except Exception as e:  # Feast raises its own not-found types
                raise IngestionError(f"data.feature_refs: feature view {name!r} is not in the Feast repo "
                                     f"{spec.feast_repo!r}: {e}") from None
    return views


def listed_entities(spec: ScoringSpec) -> pd.DataFrame:
    """The distinct entity ids of the entity list `spec.entities`."""
    path = spec.entities
    if not os.path.isfile(path):
        raise IngestionError(f"--entities: file {path!r} does not exist")
    frame = pd.read_csv(path) if path.lower().endswith(".csv") else pd.read_parquet(path)
    for column in spec.entity_columns:
        if column not in frame.columns:
            raise IngestionError(f"--entities: column {column!r} is missing from {path!r} "
                                 f"(columns: {list(frame.columns)})")
        if frame[column].isna().any():
            raise IngestionError(f"--entities column {column!r}: {int(frame[column].isna().sum())} rows have no id")
    return frame[list(spec.entity_columns)].drop_duplicates().reset_index(drop=True)


def stored_entities(store, spec: ScoringSpec) -> pd.DataFrame:
    """Every entity id with a feature row at or before the as-of time in any of the feature views' sources."""
    from feast.infra.offline_stores.offline_utils import get_offline_store_from_config

    if len(spec.entity_columns) != 1:
        raise IngestionError(f"data.entity_columns: {list(spec.entity_columns)}: scoring every entity needs a single "
                             "entity column; with a compound key, list the entities to score (--entities FILE)")
    column = spec.entity_columns[0]
    offline = get_offline_store_from_config(store.config.offline_store)
    end = spec.as_of_time + pd.Timedelta(microseconds=1)  # the stores read [start, end)
    found = []
    for view in _views(store, spec).values():
        join_key = view.projection.join_key_map.get(column, column)
        if join_key not in [c.name for c in view.entity_columns]:
            continue
        source = view.batch_source
        rows = offline.pull_all_from_table_or_query(
            config=store.config, data_source=source, join_key_columns=[join_key], feature_name_columns=[],
            timestamp_field=source.timestamp_field, start_date=pd.Timestamp(0, tz="UTC").to_pydatetime(),
            end_date=end.to_pydatetime()).to_df()
        found.append(rows[[join_key]].drop_duplicates().rename(columns={join_key: column}))
    if not found:
        raise IngestionError(f"data.feature_refs: no feature view is keyed by entity column {column!r}")
    return pd.concat(found, ignore_index=True).drop_duplicates().sort_values(column).reset_index(drop=True)


def feature_types(store, spec: ScoringSpec) -> Dict[str, str]:
    """Feature name -> Feast type name (str(feast type), e.g. "Int64") of the referenced features."""
    types = {}
    for view in _views(store, spec).values():
        for field in view.features:
            types[field.name] = str(field.dtype)
    return types


def retrieve_chunk(store, spec: ScoringSpec, ids: pd.DataFrame) -> Tuple[pd.DataFrame, np.ndarray]:
    """(ids with their features as of `spec.as_of`, in order; whether each has no feature at all)."""
    entity_df = ids.reset_index(drop=True).copy()
    entity_df[features.EVENT_TIMESTAMP_KEY] = spec.as_of_time
    entity_df[_ROW_ID] = np.arange(len(entity_df))
    try:
        retrieved = store.get_historical_features(entity_df=entity_df, features=list(spec.feature_refs)).to_df()
    except Exception as e:  # Feast raises many types; name the inputs that caused it
        raise IngestionError(f"feature retrieval from Feast repo {spec.feast_repo!r} failed for "
                             f"data.feature_refs={list(spec.feature_refs)}: {e}") from e
    names = [ref.split(":", 1)[1] for ref in spec.feature_refs]
    # Feast drops an entity whose rows all lie outside its window; it comes back with every feature missing.
    values = retrieved.drop_duplicates(_ROW_ID).set_index(_ROW_ID)[names].reindex(np.arange(len(entity_df)))
    frame = pd.concat([entity_df[list(spec.entity_columns)], values.reset_index(drop=True)], axis=1)
    return frame, values.isna().all(axis=1).to_numpy()


def chunks(ids: pd.DataFrame, rows: int) -> Iterator[pd.DataFrame]:
    for start in range(0, len(ids), max(1, rows)):
        yield ids.iloc[start:start + rows]


def write_scoring_examples(spec: ScoringSpec, output_uri: str) -> Dict[str, int]:
    """Writes Split-score/ TFRecord shards (one per chunk) and the list of entities without features.

    Returns:
      Counts: `entities` asked for, `score_examples` written, `entities_without_features`.
    """
    from feast import FeatureStore

    store = FeatureStore(repo_path=spec.feast_repo)
    ids = listed_entities(spec) if spec.entities else stored_entities(store, spec)
    types = feature_types(store, spec)
    directory = os.path.join(output_uri, f"Split-{SCORE_SPLIT}")
    tf.io.gfile.makedirs(directory)
    timestamp = int(spec.as_of_time.timestamp())
    scored, missing = 0, []
    for index, chunk in enumerate(chunks(ids, spec.chunk_rows)):
        frame, without = retrieve_chunk(store, spec, chunk)
        missing.append(frame.loc[without, list(spec.entity_columns)])
        frame = frame[~without]
        examples = example_encoding.encode(frame, spec.entity_columns, spec.timestamp_column,
                                           np.full(len(frame), timestamp), spec.numeric_features,
                                           spec.categorical_features, types)
        path = os.path.join(directory, f"data_tfrecord-{index:05d}.gz")
        with tf.io.TFRecordWriter(path, options="GZIP") as writer:
            for example in examples:
                writer.write(example)
        scored += len(examples)
    unscored = pd.concat(missing, ignore_index=True) if missing else pd.DataFrame(columns=list(spec.entity_columns))
    with tf.io.gfile.GFile(os.path.join(output_uri, MISSING_FILE), "w") as f:
        unscored.to_csv(f, index=False)
    if not scored:
        source = f"the {len(ids)} entities of --entities {spec.entities!r}" if spec.entities else \
            "the feature store, which has no entity with a feature row at or before it"
        raise IngestionError(f"--as-of {spec.as_of_time.isoformat()}: nothing to score in {source}"
                             + (f"; none has a feature row within its feature view's TTL ({len(unscored)} listed "
                                f"in {os.path.join(output_uri, MISSING_FILE)})" if len(ids) else ""))
    return {"entities": len(ids), "score_examples": scored, "entities_without_features": len(unscored)}


@tfx.dsl.components.component
def ScoringExampleGen(
    examples: tfx.dsl.components.OutputArtifact[standard_artifacts.Examples],
    spec_json: tfx.dsl.components.Parameter[str],
) -> None:
    """TFX component: the entities to score with their features as of `as_of` -> Examples (split 'score').

    The artifact records the counts of `write_scoring_examples` and `as_of` as custom properties.
    """
    spec = ScoringSpec.from_json(spec_json)
    counts = write_scoring_examples(spec, examples.uri)
    examples.split_names = artifact_utils.encode_split_names([SCORE_SPLIT])
    for name, count in counts.items():
        examples.set_int_custom_property(name, count)
    examples.set_string_custom_property("as_of", spec.as_of_time.isoformat())

