"""Why a spine row has no feature row to read: unknown entity, feature rows only later, or older than the TTL."""

import datetime

import pandas as pd

from components import feature_presence as presence

T = pd.Timestamp("2024-01-10", tz="UTC")


def _times(*rows):
    return pd.DataFrame(rows, columns=["customer_id", presence.FEATURE_TIME]).astype(
        {presence.FEATURE_TIME: "datetime64[ns, UTC]"})


def _spine(*ids, at=T):
    return pd.DataFrame({"customer_id": list(ids), "prediction_time": [at] * len(ids)})


FEATURE_TIMES = _times(
    (1, T - pd.Timedelta(days=5)), (1, T + pd.Timedelta(days=5)),  # one usable row, one later
    (2, T + pd.Timedelta(days=1)),  # only after the prediction time
    (3, T - pd.Timedelta(days=40)),  # older than a 30-day TTL
)


def test_each_cause_is_told_apart():
    found = presence.absence(_spine(1, 2, 3, 4), FEATURE_TIMES, ["customer_id"], "prediction_time",
                             datetime.timedelta(days=30))
    assert list(found.cause) == ["", presence.ONLY_LATER, presence.EXPIRED, presence.UNKNOWN]
    assert found.first_feature_time[1] == T + pd.Timedelta(days=1)
    assert found.latest_feature_time[2] == T - pd.Timedelta(days=40)
    assert pd.isna(found.latest_feature_time[1]) and pd.isna(found.first_feature_time[3])


def test_without_a_ttl_old_rows_count():
    for ttl in (None, datetime.timedelta(0)):
        found = presence.absence(_spine(3), FEATURE_TIMES, ["customer_id"], "prediction_time", ttl)
        assert list(found.cause) == [""]


def test_window_bounds_are_inclusive_as_in_feast():
    times = _times((1, T), (2, T - pd.Timedelta(days=30)), (3, T - pd.Timedelta(days=30, seconds=1)))
    found = presence.absence(_spine(1, 2, 3), times, ["customer_id"], "prediction_time", datetime.timedelta(days=30))
    assert list(found.cause) == ["", "", presence.EXPIRED]


def test_rows_keep_their_index_and_entities_of_several_keys_match_on_all():
    rows = pd.DataFrame({"user_id": [1, 1], "item_id": [7, 8], "prediction_time": [T, T]}, index=[10, 20])
    times = pd.DataFrame({"user_id": [1], "item_id": [7], presence.FEATURE_TIME: [T - pd.Timedelta(hours=1)]})
    found = presence.absence(rows, times, ["user_id", "item_id"], "prediction_time", None)
    assert list(found.index) == [10, 20]
    assert list(found.cause) == ["", presence.UNKNOWN]


def test_keys_match_across_integer_and_float_columns():
    """A CSV spine with a missing value elsewhere can read ids as floats; 4.0 is entity 4."""
    rows = _spine(4.0)
    times = _times((4, T - pd.Timedelta(days=1)))
    found = presence.absence(rows, times, ["customer_id"], "prediction_time", None)
    assert list(found.cause) == [""]
