"""Why a spine row gets no features from a feature view, as Feast's point-in-time join sees it.

For a spine row at prediction time t, Feast reads the entity's latest feature row whose event time
lies in [t - ttl, t] (only `<= t` when the view has no TTL). A row that finds none has one of
three causes, which `absence` tells apart:

  - UNKNOWN: the feature view has no row of that entity at all;
  - ONLY_LATER: every feature row of the entity lies after t (using one would leak the future);
  - EXPIRED: the entity's latest feature row at or before t is older than the view's TTL.

`feature_times` reads the entity keys and event times of a view's source through Feast's offline
store interface, so this works for any offline store.
"""

import datetime
from typing import List, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

FEATURE_TIME = "__feature_time"
UNKNOWN = "unknown"
ONLY_LATER = "only later"
EXPIRED = "expired"

# The widest range of event times asked of an offline store when reading a source's keys.
_EARLIEST = datetime.datetime(1900, 1, 1, tzinfo=datetime.timezone.utc)
_LATEST = datetime.datetime(2200, 1, 1, tzinfo=datetime.timezone.utc)


def _entity_text(value) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def entity_keys(frame: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """One text key per row of `frame` from its entity columns ("4" for both 4 and 4.0), same index."""
    if not columns:
        return pd.Series("", index=frame.index)
    parts = [frame[c].map(_entity_text) for c in columns]
    keys = parts[0]
    for part in parts[1:]:
        keys = keys + "|" + part
    return keys


def absence(rows: pd.DataFrame, feature_times: pd.DataFrame, keys: Sequence[str], time_column: str,
            ttl: Optional[datetime.timedelta]) -> pd.DataFrame:
    """Whether each spine row has a feature row in its window, and if not, why.

    Args:
      rows: spine rows with the entity columns `keys` and the UTC prediction time `time_column`.
      feature_times: one row per feature row of the view: the columns `keys` and FEATURE_TIME (UTC).
      keys: the view's join keys.
      time_column: the prediction time column of `rows`.
      ttl: the view's TTL; None or zero means no lower bound.

    Returns:
      A frame with the index of `rows`: `cause` ("" when a feature row is in the window, else
      UNKNOWN, ONLY_LATER or EXPIRED), `first_feature_time` (the entity's earliest feature row)
      and `latest_feature_time` (its latest feature row at or before the prediction time).
    """
    times = pd.DataFrame({"key": entity_keys(feature_times, keys),
                          FEATURE_TIME: pd.to_datetime(feature_times[FEATURE_TIME], utc=True)}).reset_index(drop=True)
    first = times.groupby("key")[FEATURE_TIME].min()
    spine = pd.DataFrame({"key": entity_keys(rows, keys), "t": pd.to_datetime(rows[time_column], utc=True)})
    spine = spine.reset_index(drop=True).rename_axis("position").reset_index()
    latest = pd.merge_asof(spine.sort_values("t"), times.sort_values(FEATURE_TIME), left_on="t",
                           right_on=FEATURE_TIME, by="key", direction="backward").sort_values("position")
    first_time = latest["key"].map(first)
    latest_time = latest[FEATURE_TIME]
    expired = latest_time < latest["t"] - ttl if ttl else pd.Series(False, index=latest.index)
    cause = np.select([first_time.isna().to_numpy(), latest_time.isna().to_numpy(), expired.to_numpy()],
                      [UNKNOWN, ONLY_LATER, EXPIRED], "")
    return pd.DataFrame({"cause": cause, "first_feature_time": first_time.to_numpy(),
                         "latest_feature_time": latest_time.to_numpy()}, index=rows.index)


def _duration(ttl: datetime.timedelta) -> str:
    if ttl % datetime.timedelta(days=1) == datetime.timedelta(0):
        days = ttl // datetime.timedelta(days=1)
        return f"{days} day{'s' if days != 1 else ''}"
    return str(ttl)


def describe(rows: pd.DataFrame, found: pd.DataFrame, view: str, entity_columns: Sequence[str],
             time_column: str, ttl: Optional[datetime.timedelta],
             counts: Optional[Mapping[str, int]] = None) -> List[str]:
    """One line per cause found in `found` (from `absence` on `rows`): the count and the first row as example.

    `counts` (cause -> rows) replaces the counts of `found` when it holds only the examples of rows
    counted elsewhere (the ingestion, which reads the spine in chunks).
    """
    lines = []
    for cause in (UNKNOWN, ONLY_LATER, EXPIRED):
        hit = found.index[found["cause"] == cause]
        if hit.empty:
            continue
        example = rows.loc[hit[0]]
        entity = ", ".join(f"{c}={_entity_text(example[c])}" for c in entity_columns)
        where = f"{entity} at {example[time_column]}"
        rows_hit = counts[cause] if counts else len(hit)
        count = f"{rows_hit} row{'s' if rows_hit != 1 else ''}"
        if cause == UNKNOWN:
            text = f"{count} whose entity is not in the feature store (e.g. {where})"
        elif cause == ONLY_LATER:
            text = (f"{count} whose feature rows all lie after its prediction time (e.g. {where}; "
                    f"first feature row at {found.loc[hit[0], 'first_feature_time']})")
        else:
            text = (f"{count} whose latest feature row is older than the view's TTL of {_duration(ttl)} "
                    f"(e.g. {where}; latest feature row at {found.loc[hit[0], 'latest_feature_time']})")
        lines.append(f"feature view {view!r}: {text}")
    return lines


def feature_times(store, view) -> pd.DataFrame:
    """The join keys and event time (FEATURE_TIME, UTC) of every row of a Feast feature view's source.

    Args:
      store: a `feast.FeatureStore`.
      view: one of its `feast.FeatureView`s.
    """
    from feast.infra.offline_stores.offline_utils import get_offline_store_from_config

    source = view.batch_source
    keys = [column.name for column in view.entity_columns]
    source_name = {feature: column for column, feature in (source.field_mapping or {}).items()}
    source_keys = [source_name.get(key, key) for key in keys]
    job = get_offline_store_from_config(store.config.offline_store).pull_all_from_table_or_query(
        config=store.config, data_source=source, join_key_columns=source_keys, feature_name_columns=[],
        timestamp_field=source.timestamp_field, start_date=_EARLIEST, end_date=_LATEST)
    frame = job.to_df().rename(columns={**dict(zip(source_keys, keys)), source.timestamp_field: FEATURE_TIME})
    frame[FEATURE_TIME] = pd.to_datetime(frame[FEATURE_TIME], utc=True)
    return frame[[*keys, FEATURE_TIME]]
