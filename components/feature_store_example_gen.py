"""FeatureStoreExampleGen: point-in-time feature retrieval from Feast for a spine, written as tf.Examples.

The spine has one row per example: entity column(s), the prediction time and the label. Features
come from Feast's `get_historical_features`, which joins, for each row, the latest feature values
whose event timestamp is at or before the prediction time (and within the feature view's TTL),
so nothing from after the prediction time can leak into an example.

Examples are written directly with `tf.train.Example` (TFX's dict/Parquet conversion turns 0, 0.0
and "" into missing values, and zero is the most common label here). Encoding: entity columns
-> bytes; the prediction time -> int64 epoch seconds; the label and numeric features -> float;
categorical features -> bytes; a missing value (None/NaN) -> the feature is absent. A label
column that is not numeric is written as bytes, so data validation reports the wrong type.
Rows are split by a hash of the entity key into train, valid (the Trainer's early stopping) and
eval (TFMA's evaluation only), so an entity never sits in two splits.

Spans: with `span_days > 0` one run ingests one window of prediction times, [first day, first day +
span_days), and the Examples artifact carries its number (the first day as YYYYMMDD) as `span`;
resolvers downstream assemble the rolling window of the latest spans. With `span_days = 0` the
whole spine is span 0.
"""

import dataclasses
import hashlib
import json
import os
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pandas as pd
import tensorflow as tf
from tfx import v1 as tfx
from tfx.types import artifact_utils, standard_artifacts

from schemas import features

SPLITS = ("train", "valid", "eval")
_ROW_ID = "__rqvalue_row_id"


class IngestionError(ValueError):
    """The spine or the feature store cannot produce examples; the message names the field."""


@dataclasses.dataclass(frozen=True)
class IngestionSpec:
    """What to retrieve: mirrors `pipeline.config.DataConfig` (kept plain so it serialises to JSON)."""

    feast_repo: str
    spine: str
    entity_columns: Sequence[str]
    feature_refs: Sequence[str]
    numeric_features: Sequence[str]
    categorical_features: Sequence[str]
    timestamp_column: str
    label: str
    eval_fraction: float
    validation_fraction: float = 0.0
    span_days: int = 0
    span_origin: str = "1970-01-05"

    @classmethod
    def from_data_config(cls, data) -> "IngestionSpec":
        return cls(**{f.name: getattr(data, f.name) for f in dataclasses.fields(cls)})

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "IngestionSpec":
        return cls(**json.loads(text))


def read_spine(spec: IngestionSpec) -> pd.DataFrame:
    """Reads and checks the spine; timestamps become tz-aware UTC."""
    if not os.path.exists(spec.spine):
        raise IngestionError(f"data.spine: file {spec.spine!r} does not exist")
    if spec.spine.endswith(".csv"):
        spine = pd.read_csv(spec.spine)
    else:
        spine = pd.read_parquet(spec.spine)
    for column in [*spec.entity_columns, spec.timestamp_column, spec.label]:
        if column not in spine.columns:
            raise IngestionError(f"spine column {column!r} is missing from {spec.spine!r} "
                                 f"(columns: {list(spine.columns)})")
    for column in spec.entity_columns:
        if spine[column].isna().any():
            raise IngestionError(f"spine column {column!r}: {int(spine[column].isna().sum())} rows have no entity id")
    try:
        spine[spec.timestamp_column] = pd.to_datetime(spine[spec.timestamp_column], utc=True)
    except (ValueError, TypeError) as e:
        raise IngestionError(f"spine column {spec.timestamp_column!r}: not a timestamp ({e})") from None
    if spine[spec.timestamp_column].isna().any():
        raise IngestionError(f"spine column {spec.timestamp_column!r}: some rows have no prediction time")
    if spine.empty:
        raise IngestionError(f"data.spine: {spec.spine!r} has no rows")
    return spine


def span_numbers(timestamps: pd.Series, span_days: int, span_origin: str) -> np.ndarray:
    """The span (first day of its window, as the integer YYYYMMDD) of each UTC timestamp."""
    origin = pd.Timestamp(span_origin, tz="UTC")
    length = pd.Timedelta(days=span_days)
    index = np.floor((timestamps - origin) / length).astype("int64")
    starts = origin + pd.to_timedelta(index * span_days, unit="D")
    return pd.DatetimeIndex(starts).strftime("%Y%m%d").astype("int64").to_numpy()


def span_window(span: int, spec: IngestionSpec) -> Tuple[pd.Timestamp, pd.Timestamp]:
    """[start, end) of prediction times of span `span`; an error if it is not the first day of a window."""
    try:
        start = pd.Timestamp(pd.to_datetime(str(span), format="%Y%m%d"), tz="UTC")
    except ValueError:
        raise IngestionError(f"span {span}: not a date written YYYYMMDD") from None
    if span_numbers(pd.Series([start]), spec.span_days, spec.span_origin)[0] != span:
        raise IngestionError(f"span {span}: {spec.span_days}-day spans counted from data.span_origin "
                             f"{spec.span_origin} do not start on {start.date()}")
    return start, start + pd.Timedelta(days=spec.span_days)


def latest_span(spec: IngestionSpec) -> int:
    """The span of the latest prediction time in the spine; 0 when the spine is not cut into spans."""
    if not spec.span_days:
        return 0
    spine = read_spine(spec)
    return int(span_numbers(spine[spec.timestamp_column], spec.span_days, spec.span_origin).max())


def select_span(spine: pd.DataFrame, spec: IngestionSpec, span: int) -> pd.DataFrame:
    """The spine rows of span `span` (all rows when spans are off)."""
    if not spec.span_days:
        return spine
    start, end = span_window(span, spec)
    times = spine[spec.timestamp_column]
    rows = spine[(times >= start) & (times < end)]
    if rows.empty:
        raise IngestionError(f"span {span}: the spine has no rows with {spec.timestamp_column!r} in "
                             f"[{start.date()}, {end.date()}) (spans: data.span_days={spec.span_days})")
    return rows


def retrieve(spec: IngestionSpec, span: int = 0) -> pd.DataFrame:
    """Spine rows (of span `span`) joined point-in-time with their features, in spine order."""
    from feast import FeatureStore  # heavy import, only where retrieval happens

    spine = select_span(read_spine(spec), spec, span)
    entity_df = spine[[*spec.entity_columns, spec.timestamp_column]].rename(
        columns={spec.timestamp_column: features.EVENT_TIMESTAMP_KEY})
    entity_df[_ROW_ID] = np.arange(len(spine))
    store = FeatureStore(repo_path=spec.feast_repo)
    try:
        retrieved = store.get_historical_features(entity_df=entity_df, features=list(spec.feature_refs)).to_df()
    except Exception as e:  # Feast raises many types; name the inputs that caused it
        raise IngestionError(f"feature retrieval from Feast repo {spec.feast_repo!r} failed for "
                             f"data.feature_refs={list(spec.feature_refs)}: {e}") from e
    if len(retrieved) != len(spine) or not np.array_equal(np.sort(retrieved[_ROW_ID].values), entity_df[_ROW_ID].values):
        raise IngestionError(f"Feast returned {len(retrieved)} rows for {len(spine)} spine rows: spine rows that "
                             f"share entity ({', '.join(spec.entity_columns)}) and {spec.timestamp_column!r} "
                             "collapse in the offline store; make each (entity, prediction time) unique")
    retrieved = retrieved.sort_values(_ROW_ID).reset_index(drop=True)
    feature_names = [ref.split(":", 1)[1] for ref in spec.feature_refs]
    frame = spine.reset_index(drop=True)[[*spec.entity_columns, spec.timestamp_column, spec.label]].copy()
    for name in feature_names:
        frame[name] = retrieved[name].values
    return frame


def _entity_text(value) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and np.isnan(value))


def _label_column(values: pd.Series):
    """Label values as floats, or as text if any present value is not a number."""
    numeric = pd.to_numeric(values, errors="coerce")
    if (numeric.isna() & values.notna()).any():
        return values, False
    return numeric, True


def to_examples(frame: pd.DataFrame, spec: IngestionSpec) -> List[tf.train.Example]:
    """Encodes retrieved rows as tf.Examples (see the module docstring for the encoding)."""
    label_values, label_numeric = _label_column(frame[spec.label])
    labels = label_values.tolist()
    timestamps = frame[spec.timestamp_column].map(lambda t: int(t.timestamp())).tolist()
    # Columns read once as Python lists and protos filled in place: per-cell pandas access and copying
    # sub-messages into an Example cost more than the encoding itself.
    entities = [(name, frame[name].tolist()) for name in spec.entity_columns]
    numeric = [(name, frame[name].tolist()) for name in spec.numeric_features]
    categorical = [(name, frame[name].tolist()) for name in spec.categorical_features]
    examples = []
    for i in range(len(frame)):
        example = tf.train.Example()
        feature = example.features.feature
        for name, values in entities:
            feature[name].bytes_list.value.append(_entity_text(values[i]).encode())
        feature[spec.timestamp_column].int64_list.value.append(timestamps[i])
        label = labels[i]
        if not _is_missing(label):
            if label_numeric:
                feature[spec.label].float_list.value.append(float(label))
            else:
                feature[spec.label].bytes_list.value.append(str(label).encode())
        for name, values in numeric:
            if not _is_missing(values[i]):
                feature[name].float_list.value.append(float(values[i]))
        for name, values in categorical:
            if not _is_missing(values[i]):
                feature[name].bytes_list.value.append(str(values[i]).encode())
        examples.append(example)
    return examples


def split_of(entity_key: str, eval_fraction: float, validation_fraction: float = 0.0) -> str:
    """Deterministic split of an entity: 'eval' for a hash-chosen `eval_fraction` of keys, 'valid'
    for the next `validation_fraction`, 'train' for the rest."""
    bucket = int(hashlib.sha256(entity_key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    if bucket < eval_fraction:
        return "eval"
    if bucket < eval_fraction + validation_fraction:
        return "valid"
    return "train"


def write_examples(frame: pd.DataFrame, spec: IngestionSpec, output_uri: str) -> Dict[str, int]:
    """Writes Split-<split>/ gzipped TFRecords under output_uri for every split; returns counts per split."""
    examples = to_examples(frame, spec)
    keys = frame[list(spec.entity_columns)].astype(object).apply(
        lambda row: "|".join(_entity_text(v) for v in row), axis=1)
    counts = {split: 0 for split in SPLITS}
    writers = {}
    for split in SPLITS:
        directory = os.path.join(output_uri, f"Split-{split}")
        tf.io.gfile.makedirs(directory)
        writers[split] = tf.io.TFRecordWriter(os.path.join(directory, "data_tfrecord-00000-of-00001.gz"),
                                              options="GZIP")
    try:
        for example, key in zip(examples, keys):
            split = split_of(key, spec.eval_fraction, spec.validation_fraction)
            writers[split].write(example.SerializeToString())
            counts[split] += 1
    finally:
        for writer in writers.values():
            writer.close()
    for split, count in counts.items():
        if count == 0:
            raise IngestionError(f"split {split!r} is empty: {len(frame)} spine rows are too few "
                                 f"for data.eval_fraction={spec.eval_fraction} and "
                                 f"data.validation_fraction={spec.validation_fraction}")
    return counts


def input_fingerprint(spec: IngestionSpec) -> str:
    """Hash of what the examples depend on: the spine file, the feature definitions and their file data.

    It is a component parameter, so the pipeline's cache re-runs ingestion exactly when an input
    changed. Feature views with non-file sources are covered by their definition only.
    """
    from feast import FeatureStore
    from feast.infra.offline_stores.file_source import FileSource

    digest = hashlib.sha256(spec.to_json().encode())
    digest.update(_file_digest(spec.spine).encode())
    store = FeatureStore(repo_path=spec.feast_repo)
    for view_name in sorted({ref.split(":", 1)[0] for ref in spec.feature_refs}):
        try:
            view = store.get_feature_view(view_name)
        except Exception as e:
            raise IngestionError(f"data.feature_refs: feature view {view_name!r} is not in the Feast "
                                 f"repo {spec.feast_repo!r}: {e}") from None
        digest.update(view.to_proto().spec.SerializeToString(deterministic=True))
        source = view.batch_source
        if isinstance(source, FileSource) and os.path.exists(source.path):
            digest.update(_file_digest(source.path).encode())
    return digest.hexdigest()


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs) if os.path.isdir(path) else [path]
    for p in paths:
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


@tfx.dsl.components.component
def FeatureStoreExampleGen(
    examples: tfx.dsl.components.OutputArtifact[standard_artifacts.Examples],
    spec_json: tfx.dsl.components.Parameter[str],
    fingerprint: tfx.dsl.components.Parameter[str],
    span: tfx.dsl.components.Parameter[int] = 0,
) -> None:
    """TFX component: spine (rows of span `span`) + Feast -> Examples (train/valid/eval).

    `fingerprint` only keys the cache; `span` is `latest_span(spec)` unless a run asks for another.
    """
    del fingerprint
    spec = IngestionSpec.from_json(spec_json)
    counts = write_examples(retrieve(spec, span), spec, examples.uri)
    examples.split_names = artifact_utils.encode_split_names(list(SPLITS))
    examples.span = span
    for split, count in counts.items():
        examples.set_int_custom_property(f"{split}_examples", count)
