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

Rows are split by a hash of the entity key into train, valid and eval, and written as tf.Examples
(`components/training_examples.py`: the encoding, zero labels kept).

Memory: the spine is read twice, a chunk of `chunk_rows` rows at a time (`components/spine_chunks.py`).
The first pass checks it whole, keeping counts and one example per fault, not rows (and an 8-byte
hash per row to find repeated rows). The second retrieves each chunk from Feast, encodes it and
appends it to the split files; rows without features are counted by view and cause across chunks,
and their share is checked after the last chunk. So memory holds one chunk, plus what Feast's
offline store reads to answer it, whatever the number of rows; the examples do not depend on
`chunk_rows`.

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
import logging
import os
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from tfx import v1 as tfx
from tfx.types import artifact_utils, standard_artifacts

from components import (
    feature_presence,
    label_rules,
    point_in_time,
    privileged_retrieval,
    spine_chunks,
)
from components.ingestion_spec import NOTHING_KEPT, IngestionError, IngestionSpec
from components.training_examples import (  # noqa: F401 (to_examples, write_examples: this module's interface)
    SPLITS,
    ExampleWriter,
    entity_keys_of,
    split_of,
    splits_of,
    to_examples,
    write_examples,
)
from schemas import features


def _raw_spine(spec: IngestionSpec) -> Iterator[pd.DataFrame]:
    """The spine's columns in chunks of `spec.chunk_rows` rows, as read (columns checked first)."""
    if not os.path.exists(spec.spine):
        raise IngestionError(f"data.spine: file {spec.spine!r} does not exist")
    columns = spine_chunks.columns_of(spec.spine)
    for column in [*spec.entity_columns, spec.timestamp_column, spec.label]:
        if column not in columns:
            raise IngestionError(f"spine column {column!r} is missing from {spec.spine!r} (columns: {columns})")
    return spine_chunks.raw_chunks(spec.spine, columns, spec.chunk_rows)


def _with_utc_times(chunk: pd.DataFrame, spec: IngestionSpec) -> pd.DataFrame:
    try:
        chunk[spec.timestamp_column] = pd.to_datetime(chunk[spec.timestamp_column], utc=True)
    except (ValueError, TypeError) as e:
        raise IngestionError(f"spine column {spec.timestamp_column!r}: not a timestamp ({e})") from None
    return chunk


def _spine_pieces(spec: IngestionSpec, span: Optional[int]) -> Iterator[pd.DataFrame]:
    """The rows of span `span` (all rows with None or without spans) as read, times UTC, indexed by position."""
    window = span_window(span, spec) if spec.span_days and span is not None else None
    position = 0
    for chunk in _raw_spine(spec):
        chunk = _with_utc_times(chunk, spec)
        if window is not None:
            times = chunk[spec.timestamp_column]
            chunk = chunk[(times >= window[0]) & (times < window[1])]
        chunk.index = pd.RangeIndex(position, position + len(chunk))
        position += len(chunk)
        yield chunk


def spine_in_chunks(spec: IngestionSpec, span: Optional[int] = None) -> Iterator[pd.DataFrame]:
    """The spine rows of span `span` in chunks of exactly `spec.chunk_rows` (the last: the rest), in spine
    order, indexed by their position among those rows. Call `survey` first: this does not check rows."""
    return spine_chunks.rebatched(_spine_pieces(spec, span), spec.chunk_rows)


def read_spine(spec: IngestionSpec) -> pd.DataFrame:
    """Reads and checks the whole spine; timestamps become tz-aware UTC."""
    survey(spec)
    return pd.concat(list(_spine_pieces(spec, None)))


@dataclasses.dataclass(frozen=True)
class Survey:
    """What the checks of the whole spine found: its rows (of the span surveyed) and its latest span."""

    rows: int
    latest_span: int


def survey(spec: IngestionSpec, span: Optional[int] = None) -> Survey:
    """Checks the spine a chunk at a time, keeping counts and first examples, not rows.

    Every spine row: entity ids present, a prediction time. With `span` given, its rows also: some
    rows in the span, each label present, a number, finite and not negative, each (entity, prediction
    time) once.

    Raises:
      IngestionError naming the column, the count and an example (per split for labels).
    """
    missing_ids = dict.fromkeys(spec.entity_columns, 0)
    time_error, times_missing, total, selected, latest = None, False, 0, 0, None
    window = span_window(span, spec) if spec.span_days and span is not None else None
    labels, hashes = spine_chunks.FaultCounter(), []
    for chunk in _raw_spine(spec):
        total += len(chunk)
        for column in spec.entity_columns:
            missing_ids[column] += int(chunk[column].isna().sum())
        if time_error or any(missing_ids.values()):
            continue
        try:
            chunk = _with_utc_times(chunk, spec)
        except IngestionError as e:
            time_error = e
            continue
        times = chunk[spec.timestamp_column]
        if times.isna().any():
            times_missing = True
            continue
        if spec.span_days and len(chunk):
            # span numbers grow with time: the latest time's span is the largest
            latest = max(latest or 0, int(span_numbers(pd.Series([times.max()]), spec.span_days, spec.span_origin)[0]))
        if span is None:
            continue
        if window is not None:
            chunk = chunk[(times >= window[0]) & (times < window[1])]
        chunk.index = pd.RangeIndex(selected, selected + len(chunk))
        selected += len(chunk)
        _count_label_faults(chunk, spec, labels)
        hashes.append(spine_chunks.pair_hashes(chunk, spec.entity_columns, spec.timestamp_column))
    for column, count in missing_ids.items():
        if count:
            raise IngestionError(f"spine column {column!r}: {count} rows have no entity id")
    if time_error:
        raise time_error
    if times_missing:
        raise IngestionError(f"spine column {spec.timestamp_column!r}: some rows have no prediction time")
    if not total:
        raise IngestionError(f"data.spine: {spec.spine!r} has no rows")
    if span is not None:
        if window is not None and not selected:
            raise IngestionError(f"span {span}: the spine has no rows with {spec.timestamp_column!r} in "
                                 f"[{window[0].date()}, {window[1].date()}) (spans: data.span_days={spec.span_days})")
        _raise_label_faults(labels, spec)
        _check_unique_rows(np.concatenate(hashes) if hashes else np.zeros(0, np.uint64), spec, span)
    return Survey(selected, latest or 0)


def _count_label_faults(chunk: pd.DataFrame, spec: IngestionSpec, counter: spine_chunks.FaultCounter) -> None:
    faults = label_rules.label_faults(chunk[spec.label])
    if not faults:
        return
    splits = splits_of(chunk, spec)
    for fault, mask in faults.items():
        for split in SPLITS:
            rows = chunk.index[mask & (splits == split)]
            counter.add(fault, split, len(rows),
                        lambda: f"{_example(chunk, rows[0], spec)}: {chunk.at[rows[0], spec.label]!r}")


def _raise_label_faults(counter: spine_chunks.FaultCounter, spec: IngestionSpec) -> None:
    """Raises IngestionError naming, per split and fault, how many spine rows have a label that is
    missing, not a number, infinite or negative, with one example each."""
    lines = counter.lines(label_rules.FAULTS, SPLITS, lambda fault, split, count, example:
                          f"split {split!r}: {_rows(count)} with {fault} (e.g. {example})")
    if lines:
        raise IngestionError(f"data.label {spec.label!r}: labels must be present, numeric, finite and not "
                             f"negative (zero is a valid label); {NOTHING_KEPT}:\n  " + "\n  ".join(lines))


def _check_unique_rows(hashes: np.ndarray, spec: IngestionSpec, span: int) -> None:
    """Raises IngestionError when spine rows repeat an (entity, prediction time), with the count and an example.

    Rows whose hashes collide are read again and compared, so only true repeats count.
    """
    candidates = spine_chunks.duplicated_positions(hashes)
    if not len(candidates):
        return
    rows = spine_chunks.rows_at(spine_in_chunks(spec, span), candidates)
    keys = pd.DataFrame({"key": entity_keys_of(rows, spec), "time": rows[spec.timestamp_column]}, index=rows.index)
    repeated = keys.duplicated(keep=False)
    if repeated.any():
        example = _example(rows, rows.index[repeated][0], spec)
        raise IngestionError(f"data.spine: {int(repeated.sum())} spine rows share their "
                             f"({', '.join(spec.entity_columns)}) and {spec.timestamp_column!r} with another row "
                             f"(e.g. {example}); make each (entity, prediction time) unique; {NOTHING_KEPT}")


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
    return survey(spec).latest_span if spec.span_days else 0


def _rows(count: int) -> str:
    return f"{count} row{'s' if count != 1 else ''}"


def _example(spine: pd.DataFrame, row, spec: IngestionSpec) -> str:
    entity = ", ".join(f"{c}={feature_presence.entity_keys(spine.loc[[row]], [c]).iat[0]}"
                       for c in spec.entity_columns)
    return f"{entity} at {spine.at[row, spec.timestamp_column]}"


@dataclasses.dataclass(frozen=True)
class Retrieval:
    """Spine rows joined with their features (`frame`), and how many rows lack some feature view's features."""

    frame: pd.DataFrame
    rows_without_features: int


class _Retriever:
    """Point-in-time retrieval of one spine chunk at a time, keeping across chunks the counts (and first
    examples) of rows without features, by feature view and cause."""

    def __init__(self, spec: IngestionSpec):
        from feast import FeatureStore  # heavy import, only where retrieval happens

        self.spec = spec
        self.store = FeatureStore(repo_path=spec.feast_repo)
        self.views = [(_feature_view(self.store, name, spec), refs)
                      for name, refs in _refs_by_view(spec.feature_refs).items()]
        self.feature_names = [ref.split(":", 1)[1] for ref in spec.feature_refs]
        self.types = {field.name: field.dtype for view, _ in self.views for field in view.features}
        self.rows_without_features = 0
        self._feature_times: Dict[str, pd.DataFrame] = {}
        self._unexplained = spine_chunks.FaultCounter()
        self._absent: Dict[str, Tuple[List[pd.DataFrame], List[pd.DataFrame], Dict[str, int]]] = {}

    def features_of(self, chunk: pd.DataFrame) -> pd.DataFrame:
        """`chunk` (spine rows) joined with their features, same index and order."""
        spec = self.spec
        frame = chunk[[*spec.entity_columns, spec.timestamp_column, spec.label]].copy()
        lacking = np.zeros(len(chunk), dtype=bool)
        for view, refs in self.views:
            values, returned = _retrieve_view(self.store, view, refs, chunk, spec)
            values.index = chunk.index
            suspects = values.isna().all(axis=1).to_numpy()
            if suspects.any():
                lacking |= chunk.index.isin(self._without_features(view, chunk[suspects], returned[suspects]))
            for name in values.columns:
                frame[name] = _keep_type(values[name], self.types.get(name))
        self.rows_without_features += int(lacking.sum())
        return frame[[*spec.entity_columns, spec.timestamp_column, spec.label, *self.feature_names]]

    def _without_features(self, view, rows: pd.DataFrame, returned: np.ndarray) -> pd.Index:
        """Of `rows` (all of the view's features missing), those with no feature row in their window; counts
        them by cause, and the rows Feast left out although they have one."""
        spec = self.spec
        keys = [column.name for column in view.entity_columns]
        if view.name not in self._feature_times:
            self._feature_times[view.name] = feature_presence.feature_times(self.store, view)
        found = feature_presence.absence(rows, self._feature_times[view.name], keys, spec.timestamp_column, view.ttl)
        unexplained = rows.index[(found["cause"] == "").to_numpy() & ~returned]
        self._unexplained.add(view.name, "", len(unexplained), lambda: _example(rows, unexplained[0], spec))
        examples, causes, counts = self._absent.setdefault(view.name, ([], [], {}))
        for cause, hit in found.groupby("cause", sort=False).groups.items():
            if cause and cause not in counts:
                examples.append(rows.loc[[hit[0]]])
                causes.append(found.loc[[hit[0]]])
            if cause:
                counts[cause] = counts.get(cause, 0) + len(hit)
        return found.index[found["cause"] != ""]

    def check(self, total: int) -> None:
        """Raises IngestionError if Feast left out rows that have features, or if more than
        `max_missing_feature_share` of the `total` spine rows have no feature row of some view (by cause)."""
        spec = self.spec
        for view, _ in self.views:
            if (view.name, "") in self._unexplained.found:
                count, example = self._unexplained.found[(view.name, "")]
                keys = [column.name for column in view.entity_columns]
                raise IngestionError(f"feature view {view.name!r}: Feast returned no features for {_rows(count)} "
                                     f"whose entity has a feature row in the window (e.g. {example}); check that "
                                     f"the spine's entity columns have the type of the view's join keys {keys}")
        causes: List[str] = []
        for view, _ in self.views:
            if view.name in self._absent and self._absent[view.name][2]:
                examples, found, counts = self._absent[view.name]
                causes += feature_presence.describe(pd.concat(examples), pd.concat(found), view.name,
                                                    spec.entity_columns, spec.timestamp_column, view.ttl, counts)
        _check_share(self.rows_without_features, total, causes, spec)


def retrieved_chunks(spec: IngestionSpec, span: int = 0) -> Tuple[Survey, _Retriever, Iterator[pd.DataFrame]]:
    """The spine's checks, then its rows (of span `span`) joined point-in-time with their features, in
    spine order, `spec.chunk_rows` at a time. Call the retriever's `check(survey.rows)` after the last chunk.

    Raises:
      IngestionError: the spine fails `survey`, or a feature view is unknown; Feast fails (while iterating).
    """
    checked = survey(spec, span)
    retriever = _Retriever(spec)
    return checked, retriever, (retriever.features_of(chunk) for chunk in spine_in_chunks(spec, span))


def retrieval(spec: IngestionSpec, span: int = 0) -> Retrieval:
    """Spine rows (of span `span`) joined point-in-time with their features, in spine order, all at once.

    Raises:
      IngestionError: a label is bad, rows repeat, Feast fails, or more than
        `spec.max_missing_feature_share` of the rows have no feature row of some view (by cause).
    """
    checked, retriever, chunks = retrieved_chunks(spec, span)
    frame = pd.concat(list(chunks))
    retriever.check(checked.rows)
    return Retrieval(frame.reset_index(drop=True), retriever.rows_without_features)


def retrieve(spec: IngestionSpec, span: int = 0) -> pd.DataFrame:
    """The joined rows of `retrieval(spec, span)`."""
    return retrieval(spec, span).frame


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
        f"data.max_missing_feature_share={spec.max_missing_feature_share:g} allows; {NOTHING_KEPT}:\n  "
        + "\n  ".join(causes)
        + "\nFix the spine or the feature data, or raise data.max_missing_feature_share to train such rows with "
          "those features missing.")


def with_privileged(frame: pd.DataFrame, spec: IngestionSpec, privileged: "privileged_retrieval.PrivilegedSpec"
                    ) -> Tuple[pd.DataFrame, IngestionSpec, int]:
    """`frame` with the privileged features in the rows of `privileged.splits` only (the ingestion's forward
    retrieval, `_PrivilegedChunks`, on one chunk), the spec that writes them as numbers, and the training
    rows lacking some."""
    forward = _PrivilegedChunks(spec, privileged)
    extended = forward.add(frame, splits_of(frame, spec))
    forward.check()
    return extended, _privileged_write_spec(spec, privileged), forward.lacking


def _privileged_write_spec(spec: IngestionSpec, privileged) -> IngestionSpec:
    return dataclasses.replace(spec, numeric_features=(*spec.numeric_features, *privileged.names))


class _PrivilegedChunks:
    """The forward retrieval a chunk at a time; the check that no privileged feature is the label runs on
    all training rows at the end (it keeps their privileged values and labels, as floats)."""

    def __init__(self, spec: IngestionSpec, privileged, store=None):
        self.spec, self.privileged, self.store = spec, privileged, store  # store: the run's FeatureStore
        self.lacking = 0
        self._values: List[pd.DataFrame] = []
        self._labels: List[pd.Series] = []

    def add(self, frame: pd.DataFrame, splits: np.ndarray) -> pd.DataFrame:
        spec, privileged = self.spec, self.privileged
        training = np.isin(splits, list(privileged.splits))
        extended = frame.copy()
        for name in privileged.names:
            extended[name] = np.nan
        if not training.any():  # a chunk of eval rows only
            return extended
        try:
            values = privileged_retrieval.forward_values(frame[training], spec.feast_repo, spec.timestamp_column,
                                                         privileged, store=self.store)
        except privileged_retrieval.PrivilegedRetrievalError as e:
            raise IngestionError(f"{e}; {NOTHING_KEPT}") from e
        self._values.append(values.astype("float64"))
        self._labels.append(pd.to_numeric(frame.loc[training, spec.label], errors="coerce").astype("float64"))
        self.lacking += int(values.isna().any(axis=1).sum())
        for name in privileged.names:
            extended.loc[training, name] = values[name].to_numpy()
        return extended

    def check(self) -> None:
        if not self._values:
            return
        try:
            privileged_retrieval.check_not_label(pd.concat(self._values), pd.concat(self._labels), self.spec.label)
        except privileged_retrieval.PrivilegedRetrievalError as e:
            raise IngestionError(f"{e}; {NOTHING_KEPT}") from e


def ingest(spec: IngestionSpec, output_uri: str, span: int = 0, privileged=None) -> Dict[str, int]:
    """Checks the spine, then retrieves, checks, splits, encodes and writes it `spec.chunk_rows` rows at a time.

    Memory holds one chunk (and what Feast reads for it), whatever the number of rows. The whole-spine
    checks keep counts: the written files are left unpublished when one fails at the end.

    Returns:
      `<split>_examples` counts, `rows_without_features`, and with `privileged` (a
      `privileged_retrieval.PrivilegedSpec`) `rows_without_privileged_features`.
    """
    checked, retriever, chunks = retrieved_chunks(spec, span)
    forward = _PrivilegedChunks(spec, privileged, retriever.store) if privileged else None
    writer = ExampleWriter(_privileged_write_spec(spec, privileged) if privileged else spec, output_uri)
    for frame in chunks:
        splits = splits_of(frame, spec)
        writer.write(forward.add(frame, splits) if forward else frame, splits)
        logging.info("ingested %d of %d spine rows", frame.index[-1] + 1, checked.rows)
    retriever.check(checked.rows)
    if forward:
        forward.check()
    result = {f"{split}_examples": count for split, count in writer.checked_counts().items()}
    result["rows_without_features"] = retriever.rows_without_features
    if forward:
        result["rows_without_privileged_features"] = forward.lacking
    return result


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
    privileged = privileged_retrieval.PrivilegedSpec.from_json(privileged_json) if privileged_json else None
    counts = ingest(spec, examples.uri, span, privileged)
    examples.split_names = artifact_utils.encode_split_names(list(SPLITS))
    examples.span = span
    if privileged:
        examples.set_string_custom_property("privileged_features", ",".join(privileged.names))
    for name, count in counts.items():
        examples.set_int_custom_property(name, count)
    if counts["rows_without_features"]:
        logging.warning("%d of %d spine rows have no feature row of some feature view; kept with those features "
                        "missing (data.max_missing_feature_share=%g)", counts["rows_without_features"],
                        sum(counts[f"{split}_examples"] for split in SPLITS), spec.max_missing_feature_share)
