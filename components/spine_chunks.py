"""The spine, read a bounded number of rows at a time: its columns checked, its timestamps made UTC.

The training ingestion (`components/feature_store_example_gen.py`) reads the spine twice: once to
check it whole (`survey`: the checks that need every row keep counts and one example, not rows),
then to retrieve, encode and write it chunk by chunk (`chunks`). Each pass holds one chunk of
`rows` rows; only the duplicate check keeps 8 bytes per row (a hash of its entity and time).

Rows keep their position among the rows of the span read (0, 1, ...) as their index, so every
chunk and every message names rows as the whole spine did.
"""

import os
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from components import feature_presence


def columns_of(path: str) -> List[str]:
    """The column names of a Parquet (file or folder) or CSV spine, without reading its rows."""
    if path.endswith(".csv"):
        return list(pd.read_csv(path, nrows=0).columns)
    import pyarrow.dataset as ds

    return list(ds.dataset(path, format="parquet").schema.names)


def raw_chunks(path: str, columns: Sequence[str], rows: int) -> Iterator[pd.DataFrame]:
    """The spine's `columns`, at most `rows` rows at a time, in file order."""
    if path.endswith(".csv"):
        yield from pd.read_csv(path, usecols=list(columns), chunksize=rows)
        return
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    if os.path.isdir(path):
        batches = ds.dataset(path, format="parquet").to_batches(columns=list(columns), batch_size=rows,
                                                              use_threads=False)
    else:
        batches = pq.ParquetFile(path).iter_batches(batch_size=rows, columns=list(columns))
    for batch in batches:
        yield pa.Table.from_batches([batch]).to_pandas()[list(columns)]


def rebatched(pieces: Iterator[pd.DataFrame], rows: int) -> Iterator[pd.DataFrame]:
    """The rows of `pieces`, in order, in chunks of exactly `rows` (the last one: what is left)."""
    held: List[pd.DataFrame] = []
    count = 0
    for piece in pieces:
        while len(piece):
            take = piece.iloc[:rows - count]
            piece = piece.iloc[len(take):]
            held.append(take)
            count += len(take)
            if count == rows:
                yield pd.concat(held) if len(held) > 1 else held[0]
                held, count = [], 0
    if count:
        yield pd.concat(held) if len(held) > 1 else held[0]


def pair_hashes(chunk: pd.DataFrame, entity_columns: Sequence[str], timestamp_column: str) -> np.ndarray:
    """A 64-bit hash of each row's (entity, prediction time): equal pairs hash equal (4 and 4.0 as one id)."""
    keys = feature_presence.entity_keys(chunk, entity_columns)
    times = chunk[timestamp_column].astype("int64")
    return pd.util.hash_pandas_object(pd.DataFrame({"key": keys.to_numpy(), "time": times.to_numpy()}),
                                      index=False).to_numpy()


class FaultCounter:
    """Counts of (kind, group) across chunks, with the first example of each, reported in a fixed order."""

    def __init__(self):
        self.found: Dict[Tuple[str, str], List] = {}

    def add(self, kind: str, group: str, count: int, example: Callable[[], str]) -> None:
        if not count:
            return
        if (kind, group) in self.found:
            self.found[(kind, group)][0] += count
        else:
            self.found[(kind, group)] = [count, example()]

    def lines(self, kinds: Sequence[str], groups: Sequence[str],
              line: Callable[[str, str, int, str], str]) -> List[str]:
        return [line(kind, group, *self.found[(kind, group)])
                for kind in kinds for group in groups if (kind, group) in self.found]


def duplicated_positions(hashes: np.ndarray) -> np.ndarray:
    """Positions whose hash another position shares (candidates: compare the rows themselves to be sure)."""
    order = np.argsort(hashes, kind="stable")
    ordered = hashes[order]
    same = np.zeros(len(hashes), dtype=bool)
    if len(hashes) > 1:
        repeat = ordered[1:] == ordered[:-1]
        same[1:] |= repeat
        same[:-1] |= repeat
    return np.sort(order[same])


def rows_at(chunks: Iterator[pd.DataFrame], positions: np.ndarray) -> Optional[pd.DataFrame]:
    """The rows of `chunks` (indexed by position) at `positions`, which must be sorted."""
    found = [chunk.loc[chunk.index.intersection(positions)] for chunk in chunks]
    found = [rows for rows in found if len(rows)]
    return pd.concat(found) if found else None
