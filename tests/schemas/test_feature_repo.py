"""Tests of the Feast repo template and definitions, and of point-in-time retrieval from a prepared repo."""

import os

import numpy as np
import pandas as pd
import pytest
import yaml
from feast import FeatureService, FeatureStore, FeatureView, FileSource

from pipeline import datasets
from pipeline.datasets import cdnow, feature_repo
from schemas import features
from schemas.feature_repo import definitions


def _historical(cfg):
    """Point-in-time features for every spine row, keyed by the spine's entity columns and prediction time."""
    spine = pd.read_parquet(cfg.spine).rename(columns={features.TIMESTAMP_KEY: features.EVENT_TIMESTAMP_KEY})
    store = FeatureStore(repo_path=cfg.feast_repo)
    retrieved = store.get_historical_features(entity_df=spine, features=list(cfg.feature_refs)).to_df()
    assert len(retrieved) == len(spine)
    return retrieved.set_index(list(cfg.entity_columns)).sort_index()


def test_template_config():
    with open(feature_repo.TEMPLATE) as f:
        config = yaml.safe_load(f)
    assert config == {
        "project": "rqvalue",
        "registry": "data/registry.db",
        "provider": "local",
        "online_store": {"type": "sqlite", "path": "data/online_store.db"},
        "offline_store": {"type": "file"},
        "entity_key_serialization_version": 2,
    }


@pytest.mark.parametrize("name", sorted(definitions.OBJECTS))
def test_definitions_are_typed_documented_and_unique(tmp_path, name):
    objects = definitions.OBJECTS[name](str(tmp_path))
    views = [o for o in objects if isinstance(o, FeatureView)]
    assert views and all(v.ttl and v.ttl.total_seconds() > 0 for v in views)
    names = [f.name for v in views for f in v.features]
    assert len(names) == len(set(names))
    assert all(f.description for v in views for f in v.features)
    for source in (o for o in objects if isinstance(o, FileSource)):
        assert os.path.isabs(source.path) and source.path.startswith(str(tmp_path))
        assert source.timestamp_field == features.EVENT_TIMESTAMP_KEY
    assert len([o for o in objects if isinstance(o, FeatureService)]) == 1


def test_cdnow_retrieval_returns_first_day_values_only(tmp_path):
    cfg = datasets.prepare("cdnow", str(tmp_path), rows=300)
    got = _historical(cfg)

    transactions = cdnow.load_transactions()
    transactions = transactions[transactions["customer_id"] <= 300]
    first_day = transactions.groupby("customer_id")["date"].transform("min")
    on_first_day = transactions[transactions["date"] == first_day]
    expected = on_first_day.groupby("customer_id").agg(
        total_spend=("dollar_value", "sum"),
        total_cds=("number_of_cds", "sum"),
        num_purchases=("dollar_value", "size"),
        first_date=("date", "min"),
    )
    assert list(got.index) == list(expected.index) == list(range(1, 301))
    np.testing.assert_allclose(got["total_spend"], expected["total_spend"], atol=1e-6)
    np.testing.assert_array_equal(got["total_cds"], expected["total_cds"])
    np.testing.assert_array_equal(got["num_purchases"], expected["num_purchases"])
    assert (got["days_active"] == 1).all()
    np.testing.assert_array_equal(got["first_purchase_month"], expected["first_date"].dt.strftime("%Y-%m"))
    weekdays = np.asarray(features.WEEKDAYS)[expected["first_date"].dt.dayofweek]
    np.testing.assert_array_equal(got["first_purchase_weekday"], weekdays)

    # The table does hold later values, which a leaky (latest-row) join would have returned.
    lifetime = transactions.groupby("customer_id")["dollar_value"].sum()
    assert (lifetime > expected["total_spend"] + 1e-6).sum() > 50


def test_watch_time_retrieval_returns_user_features_as_of_each_impression(tmp_path):
    cfg = datasets.prepare("watch_time", str(tmp_path), rows=1500, seed=4)
    got = _historical(cfg).reset_index().set_index(["user_id", features.EVENT_TIMESTAMP_KEY]).sort_index()

    spine = pd.read_parquet(cfg.spine)
    users = pd.read_parquet(definitions.table_path(feature_repo.data_path(str(tmp_path)), "user_features"))
    items = pd.read_parquet(definitions.table_path(feature_repo.data_path(str(tmp_path)), "item_features"))
    start = users[features.EVENT_TIMESTAMP_KEY].min() + pd.Timedelta(days=1)  # the profile row is the day before
    week = pd.Timedelta(days=7)
    profile = users.groupby("user_id").head(1).set_index("user_id")
    times = spine[features.TIMESTAMP_KEY]
    expected = []
    for user, at in zip(spine["user_id"], times):
        weeks_done = (at - start) // week
        if weeks_done == 0:
            expected.append(profile.loc[user, "user_activity"])
        else:
            begin = start + (weeks_done - 1) * week
            seen = ((spine["user_id"] == user) & (times >= begin) & (times < begin + week)).sum()
            expected.append(round(seen / 7, 4))
    want = pd.Series(expected, index=pd.MultiIndex.from_arrays([spine["user_id"], times])).sort_index()
    np.testing.assert_allclose(got["user_activity"].to_numpy(), want.to_numpy(), atol=1e-9)
    assert (got["user_favorite_category"] == got.index.get_level_values(0).map(profile["user_favorite_category"])).all()
    duration = items.set_index("item_id")["video_duration"]
    assert (got["video_duration"].to_numpy() == got["item_id"].map(duration).to_numpy()).all()

    # The latest user row (after every impression) differs for many users: a leaky join would be visible.
    latest = users.groupby("user_id").tail(1).set_index("user_id")["user_activity"]
    assert (got["user_activity"].to_numpy() != got.index.get_level_values(0).map(latest).to_numpy()).mean() > 0.5
