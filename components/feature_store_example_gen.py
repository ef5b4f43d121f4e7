"""FeatureStoreExampleGen: point-in-time feature retrieval from Feast for a spine, written as tf.Examples.

The spine has one row per example: entity column(s), the prediction time and the label. Features
come from Feast's `get_historical_features`, which joins, for each row, the latest feature values
whose event timestamp is at or before the prediction time (and within the feature view's TTL),
so nothing from after the prediction time can leak into an example.

Before any feature is read, the pipeline checks the spine itself, whatever schema the run
validates against: every label present, a number, finite and not negative (zero is a valid
label; `components/label_rules.py`), and each (entity, prediction time) once. A spine row that
finds no feature row of some feature view in its window is told apart by cause (entity unknown
to the store, feature rows only after the prediction time, or all older than the view's TTL;
`components/feature_presence.py`); the run stops unless such rows are at most
`max_missing_feature_share` of the spine, in which case they are kept with that view's features
missing and counted. Each feature view is retrieved on its own, so a row missing one view keeps
the features of the others. Any stop names the split or feature view, the column, how many rows
and one example entity.

Examples are written directly with `tf.train.Example` (TFX's dict/Parquet conversion turns 0, 0.0
and "" into missing values, and zero is the most common label here). Encoding: entity columns
-> bytes; the prediction time -> int64 epoch seconds; the label and numeric features -> float;
categorical features -> bytes of their text, integer categories (Feast Int32/Int64) as digits
("3", never "3.0", whatever else is missing); a missing value (None/NaN) -> the feature is absent.
Rows are split by a hash of the entity key into train, valid (the Trainer's early stopping) and
eval (TFMA's evaluation only), so an entity never sits in two splits.

Privileged features (distillation): with `privileged_json`, the rows of the train and valid splits
also get features read from the window after their prediction time, by the one forward-looking
retrieval of `components/privileged_retrieval.py`; eval rows never do. `components/privileged_schema.py`
then keeps them out of the SERVING environment and checks the splits.

Spans: with `span_days > 0` one run ingests one window of prediction times, [first day, first day +
span_days), and the Examples artifact carries its number (the first day as YYYYMMDD) as `span`;
resolvers downstream assemble the rolling window of the latest spans. With `span_days = 0` the
whole spine is span 0.
"""

import dataclasses
import hashlib
import json
import logging
import os
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pandas as pd
import tensorflow as tf
from tfx import v1 as tfx
from tfx.types import artifact_utils, standard_artifacts

from components import feature_presence, label_rules, point_in_time, privileged_retrieval
from schemas import features

SPLITS = ("train", "valid", "eval")
_NOTHING_KEPT = "nothing was trained or pushed"


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
    max_missing_feature_share: float = 0.0

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


def _rows(count: int) -> str:
    return f"{count} row{'s' if count != 1 else ''}"


def _example(spine: pd.DataFrame, row, spec: IngestionSpec) -> str:
    entity = ", ".join(f"{c}={feature_presence.entity_keys(spine.loc[[row]], [c]).iat[0]}"
                       for c in spec.entity_columns)
    return f"{entity} at {spine.at[row, spec.timestamp_column]}"


def check_labels(spine: pd.DataFrame, spec: IngestionSpec) -> None:
    """Raises IngestionError naming, per split and fault, how many spine rows have a label that is
    missing, not a number, infinite or negative, with one example each."""
    faults = label_rules.label_faults(spine[spec.label])
    if not faults:
        return
    splits = entity_keys_of(spine, spec).map(lambda k: split_of(k, spec.eval_fraction, spec.validation_fraction))
    lines = []
    for fault, mask in faults.items():
        for split in SPLITS:
            rows = spine.index[mask & (splits == split).to_numpy()]
            if len(rows):
                example = f"{_example(spine, rows[0], spec)}: {spine.at[rows[0], spec.label]!r}"
                lines.append(f"split {split!r}: {_rows(len(rows))} with {fault} (e.g. {example})")
    raise IngestionError(f"data.label {spec.label!r}: labels must be present, numeric, finite and not negative "
                         f"(zero is a valid label); {_NOTHING_KEPT}:\n  " + "\n  ".join(lines))


def check_unique_rows(spine: pd.DataFrame, spec: IngestionSpec) -> None:
    """Raises IngestionError when spine rows repeat an (entity, prediction time), with the count and an example."""
    repeated = spine.duplicated([*spec.entity_columns, spec.timestamp_column], keep=False)
    if repeated.any():
        example = _example(spine, spine.index[repeated][0], spec)
        raise IngestionError(f"data.spine: {int(repeated.sum())} spine rows share their "
                             f"({', '.join(spec.entity_columns)}) and {spec.timestamp_column!r} with another row "
                             f"(e.g. {example}); make each (entity, prediction time) unique; {_NOTHING_KEPT}")


@dataclasses.dataclass(frozen=True)
class Retrieval:
    """Spine rows joined with their features (`frame`), and how many rows lack some feature view's features."""

    frame: pd.DataFrame
    rows_without_features: int


def retrieval(spec: IngestionSpec, span: int = 0) -> Retrieval:
    """Spine rows (of span `span`) joined point-in-time with their features, in spine order.

    Raises:
      IngestionError: a label fails `check_labels`, rows repeat, Feast fails, or more than
        `spec.max_missing_feature_share` of the rows have no feature row of some view (by cause).
    """
    from feast import FeatureStore  # heavy import, only where retrieval happens

    spine = select_span(read_spine(spec), spec, span).reset_index(drop=True)
    check_labels(spine, spec)
    check_unique_rows(spine, spec)
    store = FeatureStore(repo_path=spec.feast_repo)
    frame = spine[[*spec.entity_columns, spec.timestamp_column, spec.label]].copy()
    lacking = np.zeros(len(spine), dtype=bool)
    causes: List[str] = []
    for view_name, refs in _refs_by_view(spec.feature_refs).items():
        view = _feature_view(store, view_name, spec)
        values, returned = _retrieve_view(store, view, refs, spine, spec)
        suspects = values.isna().all(axis=1).to_numpy()
        if suspects.any():
            without, lines = _rows_without_features(store, view, spine[suspects], returned[suspects], spec)
            lacking[without] = True
            causes += lines
        dtypes = {field.name: field.dtype for field in view.features}
        for name in values.columns:
            frame[name] = _keep_type(values[name], dtypes.get(name))
    _check_share(int(lacking.sum()), len(spine), causes, spec)
    feature_names = [ref.split(":", 1)[1] for ref in spec.feature_refs]
    return Retrieval(frame[[*spec.entity_columns, spec.timestamp_column, spec.label, *feature_names]],
                     int(lacking.sum()))


def retrieve(spec: IngestionSpec, span: int = 0) -> pd.DataFrame:
    """The joined rows of `retrieval(spec, span)`."""
    return retrieval(spec, span).frame


def _rows_without_features(store, view, rows: pd.DataFrame, returned: np.ndarray,
                           spec: IngestionSpec) -> Tuple[pd.Index, List[str]]:
    """Of `rows` (all of the view's features missing), those with no feature row in their window, and
    one line per cause; the others hold a feature row whose values are missing.

    Raises IngestionError if Feast left out a row that has a feature row in its window.
    """
    keys = [column.name for column in view.entity_columns]
    found = feature_presence.absence(rows, feature_presence.feature_times(store, view), keys,
                                     spec.timestamp_column, view.ttl)
    unexplained = rows.index[(found["cause"] == "").to_numpy() & ~returned]
    if len(unexplained):
        example = _example(rows, unexplained[0], spec)
        raise IngestionError(f"feature view {view.name!r}: Feast returned no features for {_rows(len(unexplained))} "
                             f"whose entity has a feature row in the window (e.g. {example}); check that the "
                             f"spine's entity columns have the type of the view's join keys {keys}")
    lines = feature_presence.describe(rows, found, view.name, spec.entity_columns, spec.timestamp_column, view.ttl)
    return found.index[found["cause"] != ""], lines


def _refs_by_view(refs: Sequence[str]) -> Dict[str, List[str]]:
    views: Dict[str, List[str]] = {}
    for ref in refs:
        views.setdefault(ref.split(":", 1)[0], []).append(ref)
    return views


def _feature_view(store, name: str, spec: IngestionSpec):
    try:
        return store.get_feature_view(name)
    except Exception as e:  # Feast raises its own not-found types
        raise IngestionError(f"data.feature_refs: feature view {name!r} is not in the Feast "
                             f"repo {spec.feast_repo!r}: {e}") from None


def _retrieve_view(store, view, refs: Sequence[str], spine: pd.DataFrame,
                   spec: IngestionSpec) -> Tuple[pd.DataFrame, np.ndarray]:
    """(the view's features for every spine row, NaN where Feast gave none; whether Feast returned the row).

    Each distinct (join keys, prediction time) is asked for once: Feast's file store merges rows
    that share them, and drops a row that finds no feature row in its window.
    """
    keys = [column.name for column in view.entity_columns]
    asked = spine[[*keys, spec.timestamp_column]].rename(columns={spec.timestamp_column: features.EVENT_TIMESTAMP_KEY})
    return point_in_time.retrieve_per_row(
        store, asked, refs, lambda e: IngestionError(f"feature retrieval from Feast repo {spec.feast_repo!r} failed "
                                                     f"for data.feature_refs={list(refs)}: {e}"))


def _keep_type(values: pd.Series, dtype) -> pd.Series:
    """Feast integer and boolean features stay integers and booleans where other rows are missing."""
    from feast import types

    if dtype in (types.Int32, types.Int64):
        return values.astype("Int64")
    if dtype == types.Bool:
        return values.astype("boolean")
    return values


def _check_share(without: int, total: int, causes: Sequence[str], spec: IngestionSpec) -> None:
    if without / total <= spec.max_missing_feature_share:
        return
    raise IngestionError(
        f"{without} of {total} spine rows ({without / total:.1%}) have no feature row in their window, more than "
        f"data.max_missing_feature_share={spec.max_missing_feature_share:g} allows; {_NOTHING_KEPT}:\n  "
        + "\n  ".join(causes)
        + "\nFix the spine or the feature data, or raise data.max_missing_feature_share to train such rows with "
          "those features missing.")


def entity_keys_of(frame: pd.DataFrame, spec: IngestionSpec) -> pd.Series:
    """The text key of each row's entity ("|"-joined entity columns), which decides its split."""
    return feature_presence.entity_keys(frame, spec.entity_columns)


def _is_missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and np.isnan(value))


def to_examples(frame: pd.DataFrame, spec: IngestionSpec) -> List[tf.train.Example]:
    """Encodes retrieved rows as tf.Examples (see the module docstring for the encoding)."""
    labels = pd.to_numeric(frame[spec.label]).tolist()  # checked before: every label is a number
    timestamps = frame[spec.timestamp_column].map(lambda t: int(t.timestamp())).tolist()
    # Columns read once as Python lists and protos filled in place: per-cell pandas access and copying
    # sub-messages into an Example cost more than the encoding itself.
    entities = [(name, feature_presence.entity_keys(frame, [name]).tolist()) for name in spec.entity_columns]
    numeric = [(name, frame[name].tolist()) for name in spec.numeric_features]
    categorical = [(name, frame[name].tolist()) for name in spec.categorical_features]
    examples = []
    for i in range(len(frame)):
        example = tf.train.Example()
        feature = example.features.feature
        for name, values in entities:
            feature[name].bytes_list.value.append(values[i].encode())
        feature[spec.timestamp_column].int64_list.value.append(timestamps[i])
        label = labels[i]
        if not _is_missing(label):
            feature[spec.label].float_list.value.append(float(label))
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
    keys = entity_keys_of(frame, spec)
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


def with_privileged(frame: pd.DataFrame, spec: IngestionSpec, privileged: "privileged_retrieval.PrivilegedSpec"
                    ) -> Tuple[pd.DataFrame, IngestionSpec, int]:
    """`frame` with the privileged features in the rows of `privileged.splits` only (the forward retrieval of
    `components.privileged_retrieval`), the spec that writes them as numbers, and the training rows lacking some."""
    splits = entity_keys_of(frame, spec).map(lambda key: split_of(key, spec.eval_fraction, spec.validation_fraction))
    training = splits.isin(list(privileged.splits)).to_numpy()
    try:
        extended, lacking = privileged_retrieval.add_privileged(
            frame, training, spec.feast_repo, spec.timestamp_column, spec.label, privileged)
    except privileged_retrieval.PrivilegedRetrievalError as e:
        raise IngestionError(f"{e}; {_NOTHING_KEPT}") from e
    write_spec = dataclasses.replace(spec, numeric_features=(*spec.numeric_features, *privileged.names))
    return extended, write_spec, lacking


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
        view = _feature_view(store, view_name, spec)
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
    privileged_json: tfx.dsl.components.Parameter[str] = "",
) -> None:
    """TFX component: spine (rows of span `span`) + Feast -> Examples (train/valid/eval).

    `fingerprint` only keys the cache; `span` is `latest_span(spec)` unless a run asks for another.
    The artifact records `<split>_examples` and `rows_without_features` (kept under
    `max_missing_feature_share`). With `privileged_json` (a `privileged_retrieval.PrivilegedSpec`),
    the train and valid rows also get privileged features from after their prediction time, by a
    second, forward-looking retrieval; eval rows never do.
    """
    del fingerprint
    spec = IngestionSpec.from_json(spec_json)
    retrieved = retrieval(spec, span)
    frame, write_spec = retrieved.frame, spec
    if privileged_json:
        privileged = privileged_retrieval.PrivilegedSpec.from_json(privileged_json)
        frame, write_spec, lacking = with_privileged(frame, spec, privileged)
        examples.set_string_custom_property("privileged_features", ",".join(privileged.names))
        examples.set_int_custom_property("rows_without_privileged_features", lacking)
    counts = write_examples(frame, write_spec, examples.uri)
    examples.split_names = artifact_utils.encode_split_names(list(SPLITS))
    examples.span = span
    for split, count in counts.items():
        examples.set_int_custom_property(f"{split}_examples", count)
    examples.set_int_custom_property("rows_without_features", retrieved.rows_without_features)
    if retrieved.rows_without_features:
        logging.warning("%d of %d spine rows have no feature row of some feature view; kept with those features "
                        "missing (data.max_missing_feature_share=%g)", retrieved.rows_without_features,
                        len(retrieved.frame), spec.max_missing_feature_share)
