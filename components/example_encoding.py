"""Retrieved feature rows -> serialized tf.Examples, a column at a time (tfx_bsl's C++ record-batch encoder).

The encoding is the training ingestion's (`components/feature_store_example_gen.py`), so a model reads a
scored row exactly as it read a training row:
  - entity columns -> bytes of their text (whole numbers as digits: 42, never 42.0);
  - the prediction time -> int64 epoch seconds;
  - numeric features -> float (booleans 0/1);
  - categorical features -> bytes of their text; integer categories (integer columns, or a Feast
    Int32/Int64 feature that pandas turned into floats around a missing value) as digits, "3";
  - a missing value (None, NaN, NA) -> no value.
The one difference in bytes: the C++ encoder writes a missing value as a feature with an empty value,
where the ingestion leaves the feature out; `tf.io.parse_example` and TFDV read both as missing.

Building protos row by row in Python costs about 0.5 ms a row here; this encoder, about 30 µs.
"""

from typing import Iterable, List, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

INTEGER_TYPES = ("Int32", "Int64")  # Feast type names whose values are whole numbers


def _lists(values, present: np.ndarray, value_type: pa.DataType) -> pa.Array:
    """One-value lists (null where not present) from the present values, as Arrow large lists."""
    offsets = np.zeros(len(present) + 1, dtype=np.int64)
    np.cumsum(present, out=offsets[1:])
    return pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values, type=value_type),
                                         mask=pa.array(~present))


def present(values: pd.Series) -> np.ndarray:
    """Whether each value is there (not None, NaN or NA)."""
    return values.notna().to_numpy()


def text(values: pd.Series, whole_numbers: bool = False) -> np.ndarray:
    """The text of each value (present ones only, in order); numbers that are whole as digits when
    `whole_numbers` or the column is of an integer type."""
    kept = values[values.notna()]
    if pd.api.types.is_bool_dtype(kept):
        return kept.astype(str).to_numpy(dtype=object)
    if pd.api.types.is_integer_dtype(kept):
        return kept.astype("int64").astype(str).to_numpy(dtype=object)
    if pd.api.types.is_float_dtype(kept) and whole_numbers and bool((kept == np.floor(kept)).all()):
        return kept.astype("int64").astype(str).to_numpy(dtype=object)
    return kept.astype(str).to_numpy(dtype=object)


def entity_text(values: pd.Series) -> np.ndarray:
    """Entity ids as text: integers (and whole floats) as digits."""
    return text(values, whole_numbers=True)


def encode(frame: pd.DataFrame, entity_columns: Sequence[str], timestamp_column: str, timestamps: np.ndarray,
           numeric_features: Iterable[str], categorical_features: Iterable[str],
           feast_types: Mapping[str, str] = None) -> List[bytes]:
    """Serialized tf.Examples of `frame`'s rows (see the module docstring for the encoding).

    Args:
      frame: entity columns and feature columns, one row per example; entity ids present in every row.
      entity_columns: written as bytes.
      timestamp_column: the name the prediction time gets in the examples.
      timestamps: [rows] int64 epoch seconds of each row's prediction time.
      numeric_features, categorical_features: the feature columns and how to write them.
      feast_types: feature name -> Feast type name ("Int64", ...), so integer categories stay digits.

    Returns:
      One serialized tf.Example per row, in order.
    """
    from tfx_bsl.coders import example_coder

    rows = len(frame)
    everywhere = np.ones(rows, dtype=bool)
    names, arrays = [], []
    for column in entity_columns:
        names.append(column)
        arrays.append(_lists(entity_text(frame[column]), everywhere, pa.large_binary()))
    names.append(timestamp_column)
    arrays.append(_lists(np.asarray(timestamps, dtype=np.int64), everywhere, pa.int64()))
    for name in numeric_features:
        values = frame[name]
        mask = present(values)
        names.append(name)
        arrays.append(_lists(values[mask].astype("float64").to_numpy(np.float32), mask, pa.float32()))
    for name in categorical_features:
        values = frame[name]
        whole = (feast_types or {}).get(name) in INTEGER_TYPES
        names.append(name)
        arrays.append(_lists(text(values, whole_numbers=whole), present(values), pa.large_binary()))
    if not rows:
        return []
    return example_coder.RecordBatchToExamples(pa.RecordBatch.from_arrays(arrays, names))
