"""Retrieved spine rows -> tf.Examples, split by entity into train/valid/eval and written as gzipped TFRecords.

Examples are written directly with `tf.train.Example` (TFX's dict/Parquet conversion turns 0, 0.0
and "" into missing values, and zero is the most common label here). Encoding: entity columns
-> bytes; the prediction time -> int64 epoch seconds; the label and numeric features -> float;
categorical features -> bytes of their text, integer categories (Feast Int32/Int64) as digits
("3", never "3.0", whatever else is missing); a missing value (None/NaN) -> the feature is absent.
Rows are split by a hash of the entity key into train, valid (the Trainer's early stopping) and
eval (TFMA's evaluation only), so an entity never sits in two splits.

`ExampleWriter` takes the rows a chunk at a time, so the ingestion writes as it retrieves, and
writes each chunk's rows of a split to a file of their own (`data_tfrecord-<n>.gz`, n counting up
per split): the examples, in spine order across the files, are the same whatever the chunks, and
a split of many chunks is many files, which Beam (Transform, StatisticsGen) reads in parallel where
one gzip file would be read by one worker.
"""

import hashlib
import os
from typing import Dict, List

import numpy as np
import pandas as pd
import tensorflow as tf

from components import example_encoding, feature_presence
from components.ingestion_spec import IngestionError, IngestionSpec

SPLITS = ("train", "valid", "eval")
# Fewest rows sharing a pattern of missing values for the column-wise encoder: below it, encoding the
# rows one by one (~0.1 ms a row) costs less than one more call of the encoder (~1 ms).
MIN_PATTERN_ROWS = 16


def entity_keys_of(frame: pd.DataFrame, spec: IngestionSpec) -> pd.Series:
    """The text key of each row's entity ("|"-joined entity columns), which decides its split."""
    return feature_presence.entity_keys(frame, spec.entity_columns)


def _is_missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and np.isnan(value))


def to_examples(frame: pd.DataFrame, spec: IngestionSpec) -> List[tf.train.Example]:
    """Encodes retrieved rows as tf.Examples (see the module docstring for the encoding)."""
    labels = pd.to_numeric(frame[spec.label]).tolist()  # checked before: every label is a number
    timestamps = epoch_seconds(frame[spec.timestamp_column]).tolist()
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


def epoch_seconds(times: pd.Series) -> np.ndarray:
    """int(t.timestamp()) of each time (naive ones read as UTC), vectorized for datetime columns."""
    if not pd.api.types.is_datetime64_any_dtype(times):
        return times.map(lambda t: int(t.timestamp())).to_numpy(dtype=np.int64)
    if getattr(times.dt, "tz", None) is not None:
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    nanos = times.to_numpy(dtype="datetime64[ns]").view(np.int64)
    seconds = nanos // 1_000_000_000
    return seconds + ((nanos < 0) & (nanos % 1_000_000_000 != 0))  # int() truncates toward zero


def split_of(entity_key: str, eval_fraction: float, validation_fraction: float = 0.0) -> str:
    """Deterministic split of an entity: 'eval' for a hash-chosen `eval_fraction` of keys, 'valid'
    for the next `validation_fraction`, 'train' for the rest."""
    bucket = int(hashlib.sha256(entity_key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    if bucket < eval_fraction:
        return "eval"
    if bucket < eval_fraction + validation_fraction:
        return "valid"
    return "train"


def serialized_examples(frame: pd.DataFrame, spec: IngestionSpec) -> List[bytes]:
    """`to_examples(frame, spec)` serialized, the same examples, faster.

    Rows are grouped by which of their values are present, and each group of at least
    MIN_PATTERN_ROWS rows goes through the column-wise encoder of `components.example_encoding` with
    only its present columns (the encoder writes a missing value as an empty feature, where
    `to_examples` leaves the feature out: within a group nothing is missing, so the two agree). Rows
    whose pattern is rarer take `to_examples` one by one, where one more encoder call would cost more.
    """
    if not len(frame):
        return []
    written = [spec.label, *spec.numeric_features, *spec.categorical_features]
    present = frame[written].notna().to_numpy()
    encoded = np.empty(len(frame), dtype=object)
    # One key per row from its presence bits (np.unique over the rows of a bool matrix sorts far slower).
    packed = np.ascontiguousarray(np.packbits(present, axis=1))
    _, first, group = np.unique(packed.view(f"V{packed.shape[1]}").ravel(), return_index=True,
                                return_inverse=True)
    patterns, group = present[first], group.reshape(-1)
    sizes = np.bincount(group, minlength=len(patterns))
    rare = sizes[group] < MIN_PATTERN_ROWS
    if rare.any():
        encoded[rare] = [example.SerializeToString() for example in to_examples(frame[rare], spec)]
    for index, pattern in enumerate(patterns):
        if sizes[index] < MIN_PATTERN_ROWS:
            continue
        rows = group == index
        kept = {name for name, here in zip(written, pattern) if here}
        encoded[rows] = _encode_present(frame[rows], spec, kept)
    return list(encoded)


def _encode_present(rows: pd.DataFrame, spec: IngestionSpec, kept) -> np.ndarray:
    """The rows' serialized examples through the column-wise encoder, writing only the `kept` columns
    (every row holds a value in each)."""
    columns = {name: feature_presence.entity_keys(rows, [name]) for name in spec.entity_columns}
    label = (spec.label,) if spec.label in kept else ()
    if label:
        columns[spec.label] = pd.to_numeric(rows[spec.label])
    numeric = tuple(name for name in spec.numeric_features if name in kept)
    categorical = tuple(name for name in spec.categorical_features if name in kept)
    columns.update({name: rows[name] for name in (*numeric, *categorical)})
    timestamps = epoch_seconds(rows[spec.timestamp_column])
    encoded = np.empty(len(rows), dtype=object)
    encoded[:] = example_encoding.encode(pd.DataFrame(columns, index=rows.index), spec.entity_columns,
                                         spec.timestamp_column, timestamps, (*label, *numeric), categorical)
    return encoded


class ExampleWriter:
    """Gzipped TFRecord files under Split-<split>/: each `write` (a chunk of rows) adds one file to each
    split it has rows of, `data_tfrecord-00000.gz`, `-00001`, ... in the order written."""

    def __init__(self, spec: IngestionSpec, output_uri: str):
        self.spec = spec
        self.counts = {split: 0 for split in SPLITS}
        self.files = {split: 0 for split in SPLITS}
        self._directories = {split: os.path.join(output_uri, f"Split-{split}") for split in SPLITS}
        for directory in self._directories.values():
            tf.io.gfile.makedirs(directory)

    def write(self, frame: pd.DataFrame, splits: np.ndarray) -> None:
        """Writes the rows of `frame` (encoded with `self.spec`) to a new file of each of their splits, in order."""
        encoded = np.asarray(serialized_examples(frame, self.spec), dtype=object)
        for split in SPLITS:
            rows = encoded[splits == split]
            if not rows.size:
                continue
            path = os.path.join(self._directories[split], f"data_tfrecord-{self.files[split]:05d}.gz")
            with tf.io.TFRecordWriter(path, options="GZIP") as writer:
                for example in rows:
                    writer.write(example)
            self.files[split] += 1
            self.counts[split] += int(rows.size)

    def checked_counts(self) -> Dict[str, int]:
        """The counts per split. Raises IngestionError if a split is empty."""
        for split, count in self.counts.items():
            if count == 0:
                raise IngestionError(f"split {split!r} is empty: {sum(self.counts.values())} spine rows are too "
                                     f"few for data.eval_fraction={self.spec.eval_fraction} and "
                                     f"data.validation_fraction={self.spec.validation_fraction}")
        return self.counts


def splits_of(frame: pd.DataFrame, spec: IngestionSpec) -> np.ndarray:
    """The split of each row, by the hash of its entity key (`split_of`)."""
    return entity_keys_of(frame, spec).map(
        lambda key: split_of(key, spec.eval_fraction, spec.validation_fraction)).to_numpy()


def write_examples(frame: pd.DataFrame, spec: IngestionSpec, output_uri: str) -> Dict[str, int]:
    """Writes Split-<split>/ gzipped TFRecords under output_uri for every split; returns counts per split."""
    writer = ExampleWriter(spec, output_uri)
    writer.write(frame, splits_of(frame, spec))
    return writer.checked_counts()
