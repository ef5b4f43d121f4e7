"""Seeded synthetic data sets with a known generating process: customer lifetime value and short-video watch time.

synthetic_ltv (one example per customer, `rows` customers, default 20,000)
  - channel ~ Categorical(search .35, social .20, email .15, direct .20, affiliate .10);
    country ~ Categorical(US .40, GB .20, DE .15, FR .15, BR .10); device ~ Categorical(ios .35, android .35, web .30).
  - First order day: uniform over 2023; the first order value v0 ~ LogNormal(3.6 + c_country, 0.7), rounded to cents,
    with c = (US .2, GB .1, DE .1, FR 0, BR -.4); items = 1 + Poisson(v0 / 50); discounted fraction d ~ Beta(1.5, 4).
    A Poisson(0.15) number of further orders on the same day, each LogNormal(0.7 log v0 + 1.0 + c_country, 0.9),
    add to the first day's totals. Every order has its own discounted fraction ~ Beta(1.5, 4); discount_share is
    discounted spend to date / spend to date.
  - Repeat buyer with P = sigmoid(-0.3 + a_channel + a_device + 0.5 (log v0 - 3.6) - 1.6 (d - 0.27)), where
    a_channel = (search .2, social -.3, email .5, direct .3, affiliate -.6), a_device = (ios .25, android -.1, web 0).
  - A repeat buyer places 1 + Poisson(exp(0.3 + 0.5 a_channel)) orders at uniform times in the 365 days after the
    first day; each order is worth m * LogNormal(0.7 log v0 + 1.0 + c_country, 0.9), with a customer multiplier
    m ~ LogNormal(0, 0.6) (a heavy tail).
  - Label = total repeat spend in the 365 days after the first day (53% zeros, mean 101.5 at seed 0 and 20,000
    rows). Prediction time = end of the first order day (23:59:59 UTC).
  - Feature table `customer_profile`: a row at the prediction time holding the first-day values, then one row per
    repeat order with the updated totals (`orders_to_date`, `spend_to_date`, `discount_share`): reading any of them
    at the prediction time is leakage.

watch_time (one example per impression, `rows` impressions, default 50,000; rows // 25 users, rows // 50 items)
  - Items: category ~ uniform over 8 categories; duration ~ LogNormal(log 45 s, 1.0) clipped to [3 s, 1 h];
    latent quality q ~ N(0, 0.5); Zipf(0.8) popularity; uploaded up to a year before the 28-day impression window.
  - Users: favourite category ~ uniform; latent rate r ~ Gamma(1.5, 1); user bias b ~ N(0, 0.5).
  - Impressions at distinct seconds of 2024-01-01 .. 2024-01-28 (UTC); user drawn with probability ~ r, item with
    probability ~ popularity.
  - Affinity a = sigmoid(1.2 [category = favourite] + q + b + 0.3 log r - 0.3 log(duration / 45) - 0.2).
  - Skip with probability 0.05 + 0.55 (1 - a): watch time ~ Uniform(0, min(3 s, duration)). Otherwise watch time =
    duration * Beta(1 + 4a, 1 + 3(1 - a)), and with probability 0.08 a a replay: duration * (1 + Beta(1, 3)) (< 2x).
  - Feature tables: `item_features` (one row per item at upload time); `user_features` (a row the day before the
    window with activity r * LogNormal(0, 0.3) and the favourite category, then weekly recomputations at days 7, 14,
    21 and 28 with user_activity = impressions of the past 7 days / 7): rows after an impression are leakage.

Ids are int64 and start at 1. Timestamps are tz-aware UTC.
"""

from typing import Dict, Tuple

import numpy as np
import pandas as pd

from schemas import features
from schemas.feature_repo import definitions

LTV_DEFAULT_ROWS = 20_000
WATCH_TIME_DEFAULT_ROWS = 50_000

_LTV_YEAR_START = pd.Timestamp("2023-01-01", tz="UTC")
_CHANNEL_P = (0.35, 0.20, 0.15, 0.20, 0.10)
_CHANNEL_EFFECT = (0.2, -0.3, 0.5, 0.3, -0.6)
_COUNTRY_P = (0.40, 0.20, 0.15, 0.15, 0.10)
_COUNTRY_EFFECT = (0.2, 0.1, 0.1, 0.0, -0.4)
_DEVICE_P = (0.35, 0.35, 0.30)
_DEVICE_EFFECT = (0.25, -0.1, 0.0)
_DAY_S = 86_400
_YEAR_S = 365 * _DAY_S

_WINDOW_START = pd.Timestamp("2024-01-01", tz="UTC")
_WINDOW_DAYS = 28
_RECOMPUTE_EVERY_DAYS = 7


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _check_rows(rows: int, at_least: int) -> None:
    if not isinstance(rows, (int, np.integer)) or rows < at_least:
        raise ValueError(f"rows: {rows!r} must be an integer of at least {at_least}")


def _seconds_after(start: pd.Timestamp, seconds: np.ndarray) -> pd.Series:
    return pd.Series(start + pd.to_timedelta(np.asarray(seconds, dtype="int64"), unit="s"))


def ltv(rows: int = LTV_DEFAULT_ROWS, seed: int = 0) -> Tuple[Dict[str, pd.DataFrame], pd.DataFrame]:
    """Generates the synthetic LTV feature table and spine (process in the module docstring).

    Args:
      rows: number of customers.
      seed: seed of `numpy.random.default_rng`.

    Returns:
      ({"customer_profile": feature table}, spine with customer_id, prediction_time, label).
    """
    _check_rows(rows, 1)
    rng = np.random.default_rng(seed)
    n = int(rows)
    ids = np.arange(1, n + 1, dtype="int64")
    channel = rng.choice(len(features.CHANNELS), size=n, p=_CHANNEL_P)
    country = rng.choice(len(features.COUNTRIES), size=n, p=_COUNTRY_P)
    device = rng.choice(len(features.DEVICES), size=n, p=_DEVICE_P)
    first_day = rng.integers(0, 365, size=n)
    country_effect = np.asarray(_COUNTRY_EFFECT)[country]
    channel_effect = np.asarray(_CHANNEL_EFFECT)[channel]
    first_value = np.round(rng.lognormal(3.6 + country_effect, 0.7), 2)
    first_items = 1 + rng.poisson(first_value / 50.0)
    first_discount = rng.beta(1.5, 4.0, size=n)

    # Further orders on the first day, then repeat orders in the following 365 days.
    extra = rng.poisson(0.15, size=n)
    logit = (
        -0.3
        + channel_effect
        + np.asarray(_DEVICE_EFFECT)[device]
        + 0.5 * (np.log(first_value) - 3.6)
        - 1.6 * (first_discount - 0.27)
    )
    repeat_buyer = rng.random(n) < _sigmoid(logit)
    repeats = np.where(repeat_buyer, 1 + rng.poisson(np.exp(0.3 + 0.5 * channel_effect)), 0)
    multiplier = rng.lognormal(0.0, 0.6, size=n)

    owner = np.concatenate([np.arange(n), np.repeat(np.arange(n), extra), np.repeat(np.arange(n), repeats)])
    n_extra, n_repeat = int(extra.sum()), int(repeats.sum())
    later_values = rng.lognormal(0.7 * np.log(first_value[owner[n:]]) + 1.0 + country_effect[owner[n:]], 0.9)
    later_values[n_extra:] *= multiplier[owner[n + n_extra :]]
    value = np.concatenate([first_value, np.round(later_values, 2)])
    discount = np.concatenate([first_discount, rng.beta(1.5, 4.0, size=n_extra + n_repeat)])
    offset_s = np.concatenate([np.zeros(n + n_extra, dtype="int64"), rng.integers(1, _YEAR_S + 1, size=n_repeat)])

    day_end_s = (first_day.astype("int64") + 1) * _DAY_S - 1
    orders = pd.DataFrame(
        {
            "owner": owner,
            "seconds": day_end_s[owner] + offset_s,
            "value": value,
            "discounted": value * discount,
            "is_repeat": offset_s > 0,
        }
    ).sort_values(["owner", "seconds"], kind="stable", ignore_index=True)
    by_owner = orders.groupby("owner", sort=False)
    orders["orders_to_date"] = by_owner.cumcount() + 1
    orders["spend_to_date"] = by_owner["value"].cumsum()
    orders["discounted_to_date"] = by_owner["discounted"].cumsum()
    rows_at = orders.drop_duplicates(["owner", "seconds"], keep="last", ignore_index=True)
    owner_of_row = rows_at["owner"].to_numpy()
    table = pd.DataFrame(
        {
            "customer_id": ids[owner_of_row],
            features.EVENT_TIMESTAMP_KEY: _seconds_after(_LTV_YEAR_START, rows_at["seconds"]),
            "first_order_value": first_value[owner_of_row],
            "first_order_items": first_items[owner_of_row].astype("int64"),
            "discount_share": np.round(rows_at["discounted_to_date"] / rows_at["spend_to_date"], 4).to_numpy(),
            "orders_to_date": rows_at["orders_to_date"].to_numpy(dtype="int64"),
            "spend_to_date": np.round(rows_at["spend_to_date"], 2).to_numpy(),
            "channel": np.asarray(features.CHANNELS)[channel[owner_of_row]],
            "country": np.asarray(features.COUNTRIES)[country[owner_of_row]],
            "device": np.asarray(features.DEVICES)[device[owner_of_row]],
        }
    )
    repeat_orders = orders[orders["is_repeat"]]
    label = np.zeros(n)
    np.add.at(label, repeat_orders["owner"].to_numpy(), repeat_orders["value"].to_numpy())
    spine = pd.DataFrame(
        {
            "customer_id": ids,
            features.TIMESTAMP_KEY: _seconds_after(_LTV_YEAR_START, day_end_s),
            features.LABEL_KEY: np.round(label, 2),
        }
    )
    return {definitions.SYNTHETIC_LTV_VIEW: table}, spine


def watch_time(rows: int = WATCH_TIME_DEFAULT_ROWS, seed: int = 0) -> Tuple[Dict[str, pd.DataFrame], pd.DataFrame]:
    """Generates the synthetic watch-time feature tables and spine (process in the module docstring).

    Args:
      rows: number of impressions (at most one per second of the 28-day window).
      seed: seed of `numpy.random.default_rng`.

    Returns:
      ({"user_features": table, "item_features": table}, spine with user_id, item_id, prediction_time (impression
      time), label (watch time in seconds)), the spine sorted by prediction_time.
    """
    _check_rows(rows, 1)
    window_s = _WINDOW_DAYS * _DAY_S
    if rows > window_s:
        raise ValueError(f"rows: {rows} exceeds the {window_s} distinct impression seconds of the window")
    rng = np.random.default_rng(seed)
    n = int(rows)
    n_users, n_items = max(n // 25, 20), max(n // 50, 20)
    n_categories = len(features.VIDEO_CATEGORIES)
    categories = np.asarray(features.VIDEO_CATEGORIES)

    item_category = rng.integers(0, n_categories, size=n_items)
    duration = np.round(np.clip(rng.lognormal(np.log(45.0), 1.0, size=n_items), 3.0, 3600.0), 1)
    quality = rng.normal(0.0, 0.5, size=n_items)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    popularity = rng.permutation(popularity / popularity.sum())
    upload_s = rng.integers(1, 365 * _DAY_S, size=n_items)

    favorite = rng.integers(0, n_categories, size=n_users)
    rate = rng.gamma(1.5, 1.0, size=n_users)
    bias = rng.normal(0.0, 0.5, size=n_users)
    profile_activity = rate * rng.lognormal(0.0, 0.3, size=n_users)

    seconds = np.sort(rng.choice(window_s, size=n, replace=False))
    user = rng.choice(n_users, size=n, p=rate / rate.sum())
    item = rng.choice(n_items, size=n, p=popularity)
    match = (item_category[item] == favorite[user]).astype(float)
    affinity = _sigmoid(
        1.2 * match + quality[item] + bias[user] + 0.3 * np.log(rate[user]) - 0.3 * np.log(duration[item] / 45.0) - 0.2
    )
    skip = rng.random(n) < 0.05 + 0.55 * (1.0 - affinity)
    skip_time = rng.uniform(0.0, np.minimum(3.0, duration[item]))
    ratio = rng.beta(1.0 + 4.0 * affinity, 1.0 + 3.0 * (1.0 - affinity))
    replay = rng.random(n) < 0.08 * affinity
    ratio = np.where(replay, 1.0 + rng.beta(1.0, 3.0, size=n), ratio)
    watch = np.round(np.where(skip, skip_time, duration[item] * ratio), 2)

    item_table = pd.DataFrame(
        {
            "item_id": np.arange(1, n_items + 1, dtype="int64"),
            features.EVENT_TIMESTAMP_KEY: _seconds_after(_WINDOW_START, -upload_s),
            "video_duration": duration,
            "item_category": categories[item_category],
        }
    )
    user_ids = np.arange(1, n_users + 1, dtype="int64")
    user_rows = [
        pd.DataFrame(
            {
                "user_id": user_ids,
                features.EVENT_TIMESTAMP_KEY: _WINDOW_START - pd.Timedelta(days=1),
                "user_activity": np.round(profile_activity, 4),
                "user_favorite_category": categories[favorite],
            }
        )
    ]
    week_s = _RECOMPUTE_EVERY_DAYS * _DAY_S
    for end_s in range(week_s, window_s + 1, week_s):
        in_week = (seconds >= end_s - week_s) & (seconds < end_s)
        counts = np.bincount(user[in_week], minlength=n_users)
        user_rows.append(
            pd.DataFrame(
                {
                    "user_id": user_ids,
                    features.EVENT_TIMESTAMP_KEY: _WINDOW_START + pd.Timedelta(seconds=end_s),
                    "user_activity": np.round(counts / _RECOMPUTE_EVERY_DAYS, 4),
                    "user_favorite_category": categories[favorite],
                }
            )
        )
    user_table = pd.concat(user_rows, ignore_index=True)
    spine = pd.DataFrame(
        {
            "user_id": user_ids[user],
            "item_id": (item + 1).astype("int64"),
            features.TIMESTAMP_KEY: _seconds_after(_WINDOW_START, seconds),
            features.LABEL_KEY: watch.astype("float64"),
        }
    )
    return {definitions.WATCH_TIME_USER_VIEW: user_table, definitions.WATCH_TIME_ITEM_VIEW: item_table}, spine
