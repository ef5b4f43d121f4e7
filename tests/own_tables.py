"""A small seeded features table and spine of the kind a user brings to `rqvalue init`.

Features (one row when a customer signs up, a second row 30 days later for half of them):
customer_id (int), event_timestamp, basket_value (float), visits (int count), store_id (int code,
a category), channel (text). Spine: customer_id, prediction_time (a day after sign-up), label
(zero-inflated, larger for higher basket values and the 'email' channel).
"""

from typing import Tuple

import numpy as np
import pandas as pd

CHANNELS = ("search", "email", "social")
START = pd.Timestamp("2024-01-01", tz="UTC")


def tables(customers: int = 300, seed: int = 0) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """(features, spine) for `customers` customers."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, customers + 1)
    signup = START + pd.to_timedelta(rng.integers(0, 60 * 86_400, customers), unit="s")
    basket = np.round(rng.lognormal(3.5, 0.8, customers), 2)
    channel = rng.choice(CHANNELS, customers)
    store = rng.integers(1, 6, customers)
    first = pd.DataFrame({"customer_id": ids, "event_timestamp": signup, "basket_value": basket,
                          "visits": rng.integers(1, 4, customers), "store_id": store, "channel": channel})
    later = first[rng.random(customers) < 0.5].copy()
    later["event_timestamp"] = later["event_timestamp"] + pd.Timedelta(days=30)
    later["visits"] = later["visits"] + rng.integers(1, 5, len(later))
    features = pd.concat([first, later], ignore_index=True).sort_values(["customer_id", "event_timestamp"])
    buys = rng.random(customers) < 0.3 + 0.3 * (channel == "email")
    label = np.where(buys, np.round(basket * rng.lognormal(0.0, 0.5, customers), 2), 0.0)
    spine = pd.DataFrame({"customer_id": ids, "prediction_time": signup + pd.Timedelta(days=1), "label": label})
    return features.reset_index(drop=True), spine


def write(directory, customers: int = 300, seed: int = 0) -> Tuple[str, str]:
    """Writes features.parquet and spine.csv into `directory`; returns their paths."""
    features, spine = tables(customers, seed)
    features_path, spine_path = str(directory / "features.parquet"), str(directory / "spine.csv")
    features.to_parquet(features_path, index=False)
    spine.to_csv(spine_path, index=False)
    return features_path, spine_path
