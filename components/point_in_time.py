"""One point-in-time retrieval from Feast for many rows, each distinct (join keys, time) asked once.

Feast's file offline store merges entity rows that share their keys and timestamp, and drops a
row that finds no feature row in its window; asking for each distinct pair once and mapping the
answers back keeps one answer per input row, NaN where Feast gave none.
"""

from typing import Callable, Sequence, Tuple

import numpy as np
import pandas as pd

_ROW_ID = "__rqvalue_pair_id"


def retrieve_per_row(store, asked: pd.DataFrame, refs: Sequence[str],
                     failed: Callable[[Exception], Exception]) -> Tuple[pd.DataFrame, np.ndarray]:
    """The features `refs` of one feature view for every row of `asked`.

    Args:
      store: a feast.FeatureStore.
      asked: the view's join keys and `event_timestamp`, one row per input row.
      refs: "view:feature" references of that view.
      failed: builds the error to raise (naming the caller's setting) from Feast's exception.

    Returns:
      (a frame of the features by name, one row per row of `asked` in order, NaN where Feast gave
      none; whether Feast returned the row's pair at all).
    """
    asked = asked.reset_index(drop=True)
    pairs = asked.drop_duplicates().reset_index(drop=True)
    pairs[_ROW_ID] = np.arange(len(pairs))
    pair_of_row = asked.merge(pairs, how="left")[_ROW_ID].to_numpy()
    try:
        retrieved = store.get_historical_features(entity_df=pairs, features=list(refs)).to_df()
    except Exception as e:  # Feast raises many types; the caller names the inputs that caused it
        raise failed(e) from e
    names = [ref.split(":", 1)[1] for ref in refs]
    by_pair = retrieved.set_index(_ROW_ID)[names].reindex(np.arange(len(pairs)))
    values = by_pair.iloc[pair_of_row].reset_index(drop=True)
    returned = np.isin(pair_of_row, retrieved[_ROW_ID].to_numpy())
    return values, returned
