"""A tiny data set of a user's own: a Feast repo with one feature view and a spine, as the README describes.

The view `profile` (TTL 30 days) has a Float64 `spend`, an Int64 `tier` used as a category and a
String `channel`. Each customer has a row at sign-up and one ten days later; the spine predicts
one day after sign-up, so the later row must never be used. Labels are zero-inflated.
"""

import datetime
import os
from typing import Tuple

import numpy as np
import pandas as pd
from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, String

from pipeline.config import DataConfig
from pipeline.datasets import feature_repo
from schemas import features

VIEW = "profile"
TTL = datetime.timedelta(days=30)
START = pd.Timestamp("2024-01-01", tz="UTC")
LATER_ROW = pd.Timedelta(days=10)


def _objects(data_dir: str):
    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
    source = FileSource(name=f"{VIEW}_source", path=os.path.join(os.path.abspath(data_dir), f"{VIEW}.parquet"),
                        timestamp_field=features.EVENT_TIMESTAMP_KEY)
    view = FeatureView(name=VIEW, entities=[customer], ttl=TTL, source=source, schema=[
        Field(name="customer_id", dtype=Int64),
        Field(name="spend", dtype=Float64),
        Field(name="tier", dtype=Int64),
        Field(name="channel", dtype=String),
    ])
    return [customer, source, view, FeatureService(name="own_v1", features=[view])]


def tables(customers: int, seed: int = 0) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """(feature table of `profile`, spine) for customer ids 1..customers."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, customers + 1)
    signup = START + pd.to_timedelta(ids * 6, unit="h")
    spend = rng.lognormal(3.0, 1.0, customers).round(2)
    tier = rng.integers(1, 4, customers)
    channel = rng.choice(["web", "app"], customers)
    first = pd.DataFrame({"customer_id": ids, features.EVENT_TIMESTAMP_KEY: signup, "spend": spend,
                          "tier": tier, "channel": channel})
    later = first.assign(**{features.EVENT_TIMESTAMP_KEY: signup + LATER_ROW, "spend": spend * 5})
    table = pd.concat([first, later], ignore_index=True)
    buys = rng.random(customers) < 0.3 + 0.15 * tier
    label = np.where(buys, (spend * tier * rng.lognormal(0.0, 0.5, customers)).round(2), 0.0)
    spine = pd.DataFrame({"customer_id": ids, features.TIMESTAMP_KEY: signup + pd.Timedelta(days=1),
                          features.LABEL_KEY: label})
    return table, spine


def prepare(out_dir: str, customers: int = 60, seed: int = 0, spine: pd.DataFrame = None,
            **data_changes) -> DataConfig:
    """Writes the Feast repo (and spine.parquet) under `out_dir`; returns the DataConfig of an inferred schema.

    `spine`, when given, replaces the generated spine; `data_changes` override DataConfig fields.
    """
    objects = _objects(feature_repo.data_path(out_dir))
    table, generated = tables(customers, seed)
    feature_repo.write(out_dir, {"own": customers, "seed": seed}, {VIEW: table},
                       generated if spine is None else spine, objects)
    values = dict(
        feast_repo=feature_repo.repo_path(out_dir),
        spine=feature_repo.spine_path(out_dir),
        entity_columns=("customer_id",),
        feature_refs=feature_repo.feature_refs(objects),
        numeric_features=("spend",),
        categorical_features=("tier", "channel"),
        schema="",
    )
    values.update(data_changes)
    return DataConfig(**values)
