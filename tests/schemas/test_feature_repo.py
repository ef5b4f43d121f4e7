"""Tests of the Feast repo template and definitions, and of point-in-time retrieval from a prepared repo."""

import os

import numpy as np
import pandas as pd
import pytest
import yaml
from feast import FeatureService, FeatureStore, FeatureView, FileSource

from pipeline import datasets
from pipeline.datasets import cdnow, cdnow_snapshots, feature_repo
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


def _snapshot_features_from_the_log(transactions, customer, cutoff_day):
    """The cdnow_snapshots features of one customer, recomputed from the raw log with a strict cut-off."""
    seen = transactions[(transactions["customer_id"] == customer) & (transactions["date"] <= cutoff_day)]
    by_day = seen.groupby("date").agg(spend=("dollar_value", "sum"), cds=("number_of_cds", "sum"))
    first, last = by_day.index.min(), by_day.index.max()
    expected = {
        "frequency": len(by_day) - 1,
        "recency_days": (last - first).days,
        "customer_age_days": (cutoff_day - first).days,
        "days_since_last_purchase": (cutoff_day - last).days,
        "monetary_value": by_day["spend"].iloc[1:].mean() if len(by_day) > 1 else 0.0,
        "avg_order_value": seen["dollar_value"].sum() / len(seen),
        "first_order_value": by_day["spend"].iloc[0],
        "total_spend": seen["dollar_value"].sum(),
        "total_cds": seen["number_of_cds"].sum(),
        "num_purchases": len(seen),
        "cohort": first.strftime("%Y-%m"),
    }
    for window in features.CDNOW_SNAPSHOT_WINDOWS_DAYS:
        recent = seen[seen["date"] > cutoff_day - pd.Timedelta(days=window)]
        expected[f"spend_{window}d"] = recent["dollar_value"].sum()
        expected[f"cds_{window}d"] = recent["number_of_cds"].sum()
        expected[f"purchases_{window}d"] = len(recent)
    return expected


def test_cdnow_snapshots_retrieval_equals_features_recomputed_from_the_log_up_to_each_cutoff(tmp_path):
    cfg = datasets.prepare("cdnow_snapshots", str(tmp_path), rows=300)
    got = _historical(cfg).reset_index()
    assert len(got) == 4 * 300
    assert set(cfg.feature_refs) == {f"customer_snapshots:{f}" for f in
                                     features.CDNOW_SNAPSHOTS_NUMERIC_FEATURES
                                     + features.CDNOW_SNAPSHOTS_CATEGORICAL_FEATURES}

    transactions = cdnow.first_customers(cdnow.load_transactions(), 300)
    sample = got.sample(120, random_state=0)
    for row in sample.to_dict("records"):
        cutoff_day = row[features.EVENT_TIMESTAMP_KEY].tz_convert(None).normalize()
        expected = _snapshot_features_from_the_log(transactions, row["customer_id"], cutoff_day)
        for name, value in expected.items():
            assert row[name] == (value if name == "cohort" else pytest.approx(value, abs=1e-6)), (row, name)

    # Later rows exist for every customer (purchase days and month ends up to the end of the log): a join
    # that read the latest row would see them.
    table = pd.read_parquet(definitions.table_path(feature_repo.data_path(str(tmp_path)), "customer_snapshots"))
    last_row = table.groupby("customer_id")[features.EVENT_TIMESTAMP_KEY].max()
    assert (last_row == pd.Timestamp("1998-06-30 23:59:59", tz="UTC")).all()
    latest = table.groupby("customer_id").tail(1).set_index("customer_id")
    assert (got["total_spend"].to_numpy() != got["customer_id"].map(latest["total_spend"]).to_numpy()).sum() > 100


def test_cdnow_snapshots_features_do_not_change_when_the_log_after_the_cutoff_changes(tmp_path):
    transactions = cdnow.first_customers(cdnow.load_transactions(), 200)
    cutoff = pd.Timestamp(cdnow_snapshots.CUTOFF_DAYS[1])  # the second cut-off: the first two must not move
    later = transactions["date"] > cutoff
    changed = transactions[~later | (transactions.index % 3 != 0)].copy()  # drop a third of the later purchases
    changed.loc[changed["date"] > cutoff, "dollar_value"] *= 10
    extra = changed.groupby("customer_id").head(1).assign(date=cutoff + pd.Timedelta(days=1), dollar_value=500.0)
    changed = pd.concat([changed, extra], ignore_index=True)  # a large purchase the day after the cut-off

    frames = {}
    for name, log in (("original", transactions), ("changed", changed)):
        out_dir = str(tmp_path / name)
        objects = definitions.OBJECTS["cdnow_snapshots"](feature_repo.data_path(out_dir))
        tables = {definitions.CDNOW_SNAPSHOTS_VIEW: cdnow_snapshots.history_table(log)}
        feature_repo.write(out_dir, {"log": name}, tables, cdnow_snapshots.spine_table(log), objects)
        spine = pd.read_parquet(feature_repo.spine_path(out_dir))
        entity_df = spine.rename(columns={features.TIMESTAMP_KEY: features.EVENT_TIMESTAMP_KEY})
        refs = list(feature_repo.feature_refs(objects))
        retrieved = FeatureStore(repo_path=feature_repo.repo_path(out_dir)).get_historical_features(
            entity_df=entity_df, features=refs).to_df()
        frames[name] = retrieved.sort_values(["customer_id", features.EVENT_TIMESTAMP_KEY]).reset_index(drop=True)

    original, after = frames["original"], frames["changed"]
    names = list(features.CDNOW_SNAPSHOTS_NUMERIC_FEATURES + features.CDNOW_SNAPSHOTS_CATEGORICAL_FEATURES)
    up_to = original[features.EVENT_TIMESTAMP_KEY] <= pd.Timestamp(f"{cutoff.date()} 23:59:59", tz="UTC")
    assert up_to.sum() == 2 * 200
    pd.testing.assert_frame_equal(original.loc[up_to, names], after.loc[up_to, names])
    # The change bites: every label at those cut-offs and the features of the later cut-offs move.
    assert (original.loc[up_to, features.LABEL_KEY] != after.loc[up_to, features.LABEL_KEY]).all()
    assert (original.loc[~up_to, "total_spend"] != after.loc[~up_to, "total_spend"]).all()
