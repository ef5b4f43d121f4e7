"""Tests of the embedded data sets: CDNOW facts, seeded generators, idempotent prepare, DataConfig values."""

import os

import numpy as np
import pandas as pd
import pytest

from pipeline import datasets
from pipeline.datasets import cdnow, cdnow_snapshots, synthetic
from schemas import features
from schemas.feature_repo import definitions


def _snapshot(folder):
    """{relative path: (mtime_ns, bytes)} of every file under folder."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, folder)] = (os.stat(path).st_mtime_ns, f.read())
    return found


@pytest.fixture(scope="module")
def cdnow_full(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("cdnow")
    return datasets.prepare("cdnow", str(out_dir))


def test_cdnow_spine_matches_the_ziln_recipe(cdnow_full):
    spine = pd.read_parquet(cdnow_full.spine)
    assert len(spine) == 23_570
    assert spine["customer_id"].is_unique and spine["customer_id"].dtype == np.int64
    assert str(spine[features.TIMESTAMP_KEY].dtype) == "datetime64[ns, UTC]"
    assert (spine[features.LABEL_KEY] >= 0).all()
    zero_share = (spine[features.LABEL_KEY] == 0).mean()
    assert 0.50 <= zero_share <= 0.58
    assert spine[features.LABEL_KEY].mean() == pytest.approx(57.57, abs=0.01)

    transactions = cdnow.load_transactions()
    assert len(transactions) == 69_659
    first_day = transactions.groupby("customer_id")["date"].min()
    expected_time = (first_day + pd.Timedelta(hours=23, minutes=59, seconds=59)).dt.tz_localize("UTC")
    got_time = spine.set_index("customer_id")[features.TIMESTAMP_KEY]
    pd.testing.assert_series_equal(got_time, expected_time, check_names=False)


def test_cdnow_data_config(cdnow_full):
    assert cdnow_full.entity_columns == ("customer_id",)
    assert cdnow_full.feature_refs == (
        "customer_history:total_spend",
        "customer_history:total_cds",
        "customer_history:num_purchases",
        "customer_history:days_active",
        "customer_history:first_purchase_month",
        "customer_history:first_purchase_weekday",
    )
    assert cdnow_full.numeric_features == features.CDNOW_NUMERIC_FEATURES
    assert cdnow_full.categorical_features == features.CDNOW_CATEGORICAL_FEATURES
    assert cdnow_full.schema.endswith("schemas/cdnow.pbtxt")


def test_cdnow_label_counts_only_the_following_365_days():
    transactions = pd.DataFrame(
        {
            "customer_id": [7, 7, 7, 7, 8],
            "date": pd.to_datetime(["1997-01-01", "1997-01-01", "1997-01-02", "1998-01-02", "1997-02-01"]),
            "number_of_cds": [1, 2, 1, 1, 1],
            "dollar_value": [10.0, 5.0, 3.0, 100.0, 4.0],
        }
    )
    spine = cdnow.spine_table(transactions).set_index("customer_id")
    # The first day itself is excluded, day +1 counts, 1998-01-02 is day +366 and is excluded.
    assert spine.loc[7, features.LABEL_KEY] == 3.0
    assert spine.loc[8, features.LABEL_KEY] == 0.0

    transactions.loc[3, "date"] = pd.Timestamp("1998-01-01")  # day +365: included
    assert cdnow.spine_table(transactions).set_index("customer_id").loc[7, features.LABEL_KEY] == 103.0


def test_cdnow_history_is_cumulative_with_first_day_rows_at_prediction_time():
    tables, spine = cdnow.build(rows=200)
    table = tables[definitions.CDNOW_VIEW]
    assert sorted(spine["customer_id"]) == list(range(1, 201))
    first_rows = table.groupby("customer_id").head(1).set_index("customer_id")
    pd.testing.assert_series_equal(
        first_rows[features.EVENT_TIMESTAMP_KEY],
        spine.set_index("customer_id")[features.TIMESTAMP_KEY],
        check_names=False,
    )
    assert (first_rows["days_active"] == 1).all()
    steps = table.groupby("customer_id")[list(features.CDNOW_NUMERIC_FEATURES)].diff().dropna()
    assert (steps >= 0).all().all()
    assert (steps["days_active"] == 1).all() and (steps["num_purchases"] >= 1).all()
    assert table.groupby("customer_id").size().max() > 1  # later rows exist, so leakage is testable
    assert set(table["first_purchase_weekday"]) <= set(features.WEEKDAYS)
    assert set(table["first_purchase_month"]) <= set(features.CDNOW_FIRST_PURCHASE_MONTHS)


def _log(rows):
    """A hand-written purchase log: (customer_id, date, number_of_cds, dollar_value) per transaction."""
    frame = pd.DataFrame(rows, columns=["customer_id", "date", "number_of_cds", "dollar_value"])
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


def test_snapshots_score_every_customer_at_every_cutoff_without_censoring():
    transactions = cdnow.load_transactions()
    assert transactions["date"].max() == pd.Timestamp(cdnow_snapshots.LOG_END)
    assert transactions["date"].min() == pd.Timestamp("1997-01-01")
    last_cutoff = pd.Timestamp(cdnow_snapshots.CUTOFF_DAYS[-1])
    assert last_cutoff + pd.Timedelta(days=cdnow_snapshots.HORIZON_DAYS) <= transactions["date"].max()
    first_day = transactions.groupby("customer_id")["date"].min()
    assert first_day.max() <= pd.Timestamp(cdnow_snapshots.CUTOFF_DAYS[0])  # all acquired by the first cut-off

    spine = cdnow_snapshots.spine_table(transactions)
    assert len(spine) == 4 * 23_570 == 94_280
    assert not spine.duplicated(["customer_id", features.TIMESTAMP_KEY]).any()
    assert spine.groupby("customer_id").size().eq(4).all()
    expected_times = pd.DatetimeIndex(cdnow_snapshots.CUTOFF_DAYS) + pd.Timedelta(hours=23, minutes=59, seconds=59)
    assert sorted(spine[features.TIMESTAMP_KEY].unique()) == list(expected_times.tz_localize("UTC"))
    label = spine[features.LABEL_KEY]
    assert label.dtype == np.float64 and (label >= 0).all()
    assert (label == 0).mean() == pytest.approx(0.6233, abs=1e-4)
    assert label.mean() == pytest.approx(47.99, abs=0.01)


def test_snapshot_label_counts_the_days_after_the_cutoff_up_to_the_horizon():
    transactions = _log(
        [
            (1, "1997-01-05", 1, 10.0),
            (1, "1997-03-31", 2, 20.0),  # the first cut-off day itself: a feature, not label, of that cut-off
            (1, "1997-04-01", 1, 4.0),  # day +1
            (1, "1998-03-31", 1, 8.0),  # day +365: in the window of 1997-03-31
            (1, "1998-04-01", 1, 16.0),  # day +366: out of it, in the window of 1997-04-30
            (2, "1997-02-10", 1, 5.0),
        ]
    )
    spine = cdnow_snapshots.spine_table(transactions).set_index(["customer_id", features.TIMESTAMP_KEY])
    label = spine[features.LABEL_KEY]
    at = {day: pd.Timestamp(day + " 23:59:59", tz="UTC") for day in cdnow_snapshots.CUTOFF_DAYS}
    assert label[(1, at["1997-03-31"])] == 12.0
    assert label[(1, at["1997-04-30"])] == 24.0
    assert label[(1, at["1997-06-30"])] == 24.0
    assert (label.loc[2] == 0).all() and len(label.loc[2]) == 4


def test_snapshot_features_on_a_hand_written_log():
    transactions = _log(
        [
            (1, "1997-01-05", 1, 10.0),
            (1, "1997-01-05", 2, 5.5),  # two transactions on the first day
            (1, "1997-02-01", 1, 20.0),
            (1, "1997-03-20", 3, 30.0),
            (1, "1997-04-10", 1, 99.0),  # after the first cut-off
        ]
    )
    days = cdnow_snapshots.daily_purchases(transactions)
    got = cdnow_snapshots.features_as_of(days, np.array([1]), pd.Series([pd.Timestamp("1997-03-31")])).iloc[0]
    assert got[features.EVENT_TIMESTAMP_KEY] == pd.Timestamp("1997-03-31 23:59:59", tz="UTC")
    assert got["frequency"] == 2 and got["num_purchases"] == 4 and got["total_cds"] == 7
    assert got["recency_days"] == 74 and got["customer_age_days"] == 85 and got["days_since_last_purchase"] == 11
    assert got["total_spend"] == pytest.approx(65.5) and got["first_order_value"] == pytest.approx(15.5)
    assert got["monetary_value"] == pytest.approx(25.0) and got["avg_order_value"] == pytest.approx(65.5 / 4)
    assert got["spend_30d"] == pytest.approx(30.0) and got["purchases_30d"] == 1 and got["cds_30d"] == 3
    # 90 days back from 1997-03-31 is 1997-01-01 (excluded), so the window holds every purchase.
    assert got["spend_90d"] == pytest.approx(65.5) and got["purchases_90d"] == 4
    assert got["cohort"] == "1997-01"
    with pytest.raises(ValueError, match="customer 1 has no purchase on or before 1997-01-04"):
        cdnow_snapshots.features_as_of(days, np.array([1]), pd.Series([pd.Timestamp("1997-01-04")]))


def test_snapshot_rfm_features_are_those_of_lifetimes_at_each_cutoff():
    from lifetimes.utils import summary_data_from_transaction_data

    transactions = cdnow.first_customers(cdnow.load_transactions(), 500)
    days = cdnow_snapshots.daily_purchases(transactions)
    for cutoff in cdnow_snapshots.CUTOFF_DAYS[::3]:
        want = summary_data_from_transaction_data(
            transactions, "customer_id", "date", monetary_value_col="dollar_value", observation_period_end=cutoff)
        at = pd.Series([pd.Timestamp(cutoff)] * len(want))
        got = cdnow_snapshots.features_as_of(days, want.index.to_numpy(), at)
        for theirs, ours in (("frequency", "frequency"), ("recency", "recency_days"), ("T", "customer_age_days"),
                             ("monetary_value", "monetary_value")):
            np.testing.assert_allclose(got[ours].to_numpy(), want[theirs].to_numpy(), atol=1e-9, err_msg=ours)


def test_snapshot_table_has_rows_on_purchase_days_and_every_month_end():
    transactions = _log([(3, "1997-03-31", 1, 7.0), (3, "1997-05-02", 1, 3.0), (3, "1998-06-30", 1, 1.0)])
    table = cdnow_snapshots.history_table(transactions)
    dates = table[features.EVENT_TIMESTAMP_KEY].dt.strftime("%Y-%m-%d").tolist()
    month_ends = pd.date_range("1997-03-31", "1998-06-30", freq="M").strftime("%Y-%m-%d").tolist()
    assert dates == sorted(set(month_ends) | {"1997-05-02"})  # one row per day, month-end purchase included
    may = table.set_index(features.EVENT_TIMESTAMP_KEY).loc[pd.Timestamp("1997-05-31 23:59:59", tz="UTC")]
    assert may["spend_30d"] == pytest.approx(3.0) and may["spend_90d"] == pytest.approx(10.0)
    assert may["days_since_last_purchase"] == 29 and may["frequency"] == 1
    assert list(table.columns) == (
        ["customer_id", features.EVENT_TIMESTAMP_KEY]
        + list(features.CDNOW_SNAPSHOTS_NUMERIC_FEATURES)
        + list(features.CDNOW_SNAPSHOTS_CATEGORICAL_FEATURES)
    )


@pytest.mark.parametrize("generate", [synthetic.ltv, synthetic.watch_time])
def test_generators_are_deterministic_per_seed(generate):
    tables_a, spine_a = generate(500, seed=1)
    tables_b, spine_b = generate(500, seed=1)
    tables_c, spine_c = generate(500, seed=2)
    pd.testing.assert_frame_equal(spine_a, spine_b)
    for view in tables_a:
        pd.testing.assert_frame_equal(tables_a[view], tables_b[view])
    assert not spine_a[features.LABEL_KEY].equals(spine_c[features.LABEL_KEY])


def test_synthetic_ltv_is_zero_inflated_heavy_tailed_with_later_rows():
    tables, spine = synthetic.ltv(5000, seed=0)
    table = tables[definitions.SYNTHETIC_LTV_VIEW]
    label = spine[features.LABEL_KEY]
    assert (label >= 0).all()
    assert 0.45 <= (label == 0).mean() <= 0.65
    positive = label[label > 0]
    assert positive.max() > 10 * positive.median()
    first_rows = table.groupby("customer_id").head(1).set_index("customer_id")
    at_prediction = spine.set_index("customer_id")[features.TIMESTAMP_KEY]
    assert (first_rows[features.EVENT_TIMESTAMP_KEY] == at_prediction).all()
    later = table.merge(spine, on="customer_id")
    later = later[later[features.EVENT_TIMESTAMP_KEY] > later[features.TIMESTAMP_KEY]]
    assert later["customer_id"].nunique() == (label > 0).sum()
    last = table.groupby("customer_id").tail(1).set_index("customer_id")
    spent_later = last["spend_to_date"] - first_rows["spend_to_date"]
    np.testing.assert_allclose(spent_later.to_numpy(), spine.set_index("customer_id")[features.LABEL_KEY], atol=0.05)


def test_watch_time_has_skips_replays_and_later_user_rows():
    tables, spine = synthetic.watch_time(5000, seed=0)
    users, items = tables[definitions.WATCH_TIME_USER_VIEW], tables[definitions.WATCH_TIME_ITEM_VIEW]
    assert len(spine) == 5000 and spine[features.TIMESTAMP_KEY].is_unique
    assert spine[features.TIMESTAMP_KEY].is_monotonic_increasing
    label = spine[features.LABEL_KEY]
    duration = spine["item_id"].map(items.set_index("item_id")["video_duration"])
    assert (label >= 0).all() and (label <= 2 * duration).all()
    assert 0.15 <= (label <= 3).mean() <= 0.6
    assert (label > duration).any()  # replays
    assert items[features.EVENT_TIMESTAMP_KEY].max() < spine[features.TIMESTAMP_KEY].min()
    assert users[features.EVENT_TIMESTAMP_KEY].max() > spine[features.TIMESTAMP_KEY].max()
    assert set(items["item_category"]) <= set(features.VIDEO_CATEGORIES)


@pytest.mark.parametrize(
    "name,rows,entities,refs",
    [
        (
            "synthetic_ltv",
            300,
            ("customer_id",),
            tuple(
                f"customer_profile:{f}"
                for f in features.SYNTHETIC_LTV_NUMERIC_FEATURES + features.SYNTHETIC_LTV_CATEGORICAL_FEATURES
            ),
        ),
        (
            "watch_time",
            500,
            ("user_id", "item_id"),
            (
                "user_features:user_activity",
                "user_features:user_favorite_category",
                "item_features:video_duration",
                "item_features:item_category",
            ),
        ),
    ],
)
def test_prepare_returns_the_data_config(tmp_path, name, rows, entities, refs):
    cfg = datasets.prepare(name, str(tmp_path), rows=rows, seed=3)
    assert cfg.feast_repo == str(tmp_path / "feature_repo")
    assert os.path.exists(os.path.join(cfg.feast_repo, "feature_store.yaml"))
    assert os.path.exists(os.path.join(cfg.feast_repo, "data", "registry.db"))
    assert cfg.spine == str(tmp_path / "spine.parquet")
    assert cfg.entity_columns == entities
    assert cfg.feature_refs == refs
    assert cfg.label == features.LABEL_KEY and cfg.timestamp_column == features.TIMESTAMP_KEY
    assert cfg.schema.endswith(f"schemas/{name}.pbtxt") and os.path.exists(cfg.schema)
    spine = pd.read_parquet(cfg.spine)
    assert list(spine.columns) == list(entities) + [features.TIMESTAMP_KEY, features.LABEL_KEY]
    assert all(spine[e].dtype == np.int64 for e in entities)
    assert spine[features.LABEL_KEY].dtype == np.float64


def test_prepare_is_idempotent_and_deterministic(tmp_path):
    first = datasets.prepare("synthetic_ltv", str(tmp_path / "a"), rows=300, seed=5)
    before = _snapshot(tmp_path / "a")
    again = datasets.prepare("synthetic_ltv", str(tmp_path / "a"), rows=300, seed=5)
    assert again == first
    assert _snapshot(tmp_path / "a") == before

    datasets.prepare("synthetic_ltv", str(tmp_path / "b"), rows=300, seed=5)
    other = _snapshot(tmp_path / "b")
    for path in ("spine.parquet", "feature_repo/feature_store.yaml", "feature_repo/data/customer_profile.parquet"):
        assert other[path][1] == before[path][1], path

    table = tmp_path / "a" / "feature_repo" / "data" / "customer_profile.parquet"
    table.unlink()
    datasets.prepare("synthetic_ltv", str(tmp_path / "a"), rows=300, seed=5)
    assert table.read_bytes() == before["feature_repo/data/customer_profile.parquet"][1]

    datasets.prepare("synthetic_ltv", str(tmp_path / "a"), rows=300, seed=6)
    assert _snapshot(tmp_path / "a")["spine.parquet"][1] != before["spine.parquet"][1]


def test_prepare_rejects_unknown_names_and_bad_rows(tmp_path):
    with pytest.raises(ValueError, match="'nope'.*known: cdnow, cdnow_snapshots, synthetic_ltv, watch_time"):
        datasets.prepare("nope", str(tmp_path))
    with pytest.raises(ValueError, match="rows"):
        datasets.prepare("synthetic_ltv", str(tmp_path), rows=0)
    assert not os.listdir(tmp_path)
