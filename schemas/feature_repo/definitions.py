"""Feast entities, sources, feature views and feature services of the embedded data sets, built for a data folder.

Nothing is created at import time: each `*_objects(data_dir)` function returns the objects to pass to
`FeatureStore.apply`, with `FileSource` paths made absolute under `data_dir` (one Parquet file per feature view,
named `<view>.parquet`, with an `event_timestamp` column in UTC). Join keys are Int64.
"""

import os
from datetime import timedelta
from typing import Callable, Dict, List

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, String

from schemas import features

CDNOW_VIEW = "customer_history"
CDNOW_SNAPSHOTS_VIEW = "customer_snapshots"
SYNTHETIC_LTV_VIEW = "customer_profile"
WATCH_TIME_USER_VIEW = "user_features"
WATCH_TIME_ITEM_VIEW = "item_features"


def table_path(data_dir: str, view_name: str) -> str:
    """Returns the absolute path of the Parquet file that feeds feature view `view_name`."""
    return os.path.join(os.path.abspath(data_dir), view_name + ".parquet")


def _source(data_dir: str, view_name: str) -> FileSource:
    return FileSource(
        name=f"{view_name}_source",
        path=table_path(data_dir, view_name),
        timestamp_field=features.EVENT_TIMESTAMP_KEY,
    )


def _entity(name: str, join_key: str, description: str) -> Entity:
    return Entity(name=name, join_keys=[join_key], value_type=ValueType.INT64, description=description)


def _customer_view(data_dir: str, view_name: str, service_name: str, *, dataset: str, customer: str,
                   fields: List[Field], description: str, service_description: str) -> List:
    """[customer entity, source, one feature view keyed by customer_id, its feature service]: a one-view data set.

    Args:
      data_dir: folder that holds `<view_name>.parquet`.
      view_name, service_name: names of the feature view and the feature service.
      dataset: the data set's name (the view's `dataset` tag).
      customer: description of the customer entity.
      fields: the view's features (the customer_id join key is added first).
      description, service_description: descriptions of the view and the service.
    """
    entity = _entity("customer", "customer_id", customer)
    source = _source(data_dir, view_name)
    view = FeatureView(
        name=view_name,
        entities=[entity],
        ttl=timedelta(days=730),
        schema=[Field(name="customer_id", dtype=Int64, description="Customer id, the join key."), *fields],
        source=source,
        description=description,
        tags={"dataset": dataset},
    )
    service = FeatureService(name=service_name, features=[view], description=service_description)
    return [entity, source, view, service]


def cdnow_objects(data_dir: str) -> List:
    """Feast objects of the CDNOW customer history.

    Args:
      data_dir: folder that holds `customer_history.parquet`.

    Returns:
      [customer entity, source, `customer_history` feature view, `cdnow_ltv_v1` feature service].
    """
    fields = [
        Field(name="total_spend", dtype=Float64, description="Dollars spent to date (cumulative)."),
        Field(name="total_cds", dtype=Int64, description="CDs bought to date (cumulative)."),
        Field(name="num_purchases", dtype=Int64, description="Transactions to date (cumulative)."),
        Field(name="days_active", dtype=Int64, description="Distinct purchase days to date (cumulative)."),
        Field(name="first_purchase_month", dtype=String, description="Month of the first purchase, 'YYYY-MM'."),
        Field(name="first_purchase_weekday", dtype=String, description="Weekday of the first purchase, Mon..Sun."),
    ]
    return _customer_view(
        data_dir, CDNOW_VIEW, "cdnow_ltv_v1", dataset="cdnow", customer="CDNOW customer id (int64).", fields=fields,
        description="One row per customer and purchase day, stamped at the end of that day (23:59:59 UTC).",
        service_description="Features of the CDNOW LTV model.")


def cdnow_snapshots_objects(data_dir: str) -> List:
    """Feast objects of CDNOW scored at monthly cut-offs: what a daily feature job writes.

    Args:
      data_dir: folder that holds `customer_snapshots.parquet`.

    Returns:
      [customer entity, source, `customer_snapshots` feature view, `cdnow_snapshots_ltv_v1` feature service].
    """
    fields = [
        Field(name="frequency", dtype=Int64, description="Repeat purchase days to date (purchase days - 1)."),
        Field(name="recency_days", dtype=Int64, description="Days from the first to the last purchase day."),
        Field(name="customer_age_days", dtype=Int64, description="Days since the first purchase day (T)."),
        Field(name="days_since_last_purchase", dtype=Int64, description="Days since the last purchase day."),
        Field(name="monetary_value", dtype=Float64,
              description="Mean spend of the repeat purchase days (0 without one)."),
        Field(name="avg_order_value", dtype=Float64, description="Dollars per transaction to date."),
        Field(name="first_order_value", dtype=Float64, description="Dollars spent on the first purchase day."),
        Field(name="total_spend", dtype=Float64, description="Dollars spent to date (cumulative)."),
        Field(name="total_cds", dtype=Int64, description="CDs bought to date (cumulative)."),
        Field(name="num_purchases", dtype=Int64, description="Transactions to date (cumulative)."),
    ]
    for days in features.CDNOW_SNAPSHOT_WINDOWS_DAYS:
        fields += [
            Field(name=f"spend_{days}d", dtype=Float64, description=f"Dollars spent in the last {days} days."),
            Field(name=f"cds_{days}d", dtype=Int64, description=f"CDs bought in the last {days} days."),
            Field(name=f"purchases_{days}d", dtype=Int64, description=f"Transactions in the last {days} days."),
        ]
    fields.append(Field(name="cohort", dtype=String, description="Month of the first purchase, 'YYYY-MM'."))
    return _customer_view(
        data_dir, CDNOW_SNAPSHOTS_VIEW, "cdnow_snapshots_ltv_v1", dataset="cdnow_snapshots",
        customer="CDNOW customer id (int64).", fields=fields,
        description="One row per customer on each purchase day and each month end from the first purchase on, "
                    "stamped at the end of that day (23:59:59 UTC) with the values at that time.",
        service_description="Features of the CDNOW LTV model scored at month ends.")


def synthetic_ltv_objects(data_dir: str) -> List:
    """Feast objects of the seeded synthetic customer lifetime value data.

    Args:
      data_dir: folder that holds `customer_profile.parquet`.

    Returns:
      [customer entity, source, `customer_profile` feature view, `synthetic_ltv_v1` feature service].
    """
    fields = [
        Field(name="first_order_value", dtype=Float64, description="Value of the first order."),
        Field(name="first_order_items", dtype=Int64, description="Items in the first order."),
        Field(name="discount_share", dtype=Float64, description="Share of spend to date bought at a discount."),
        Field(name="orders_to_date", dtype=Int64, description="Orders to date (cumulative)."),
        Field(name="spend_to_date", dtype=Float64, description="Spend to date (cumulative)."),
        Field(name="channel", dtype=String, description="Acquisition channel."),
        Field(name="country", dtype=String, description="Country code."),
        Field(name="device", dtype=String, description="Device of the first order: ios, android or web."),
    ]
    return _customer_view(
        data_dir, SYNTHETIC_LTV_VIEW, "synthetic_ltv_v1", dataset="synthetic_ltv",
        customer="Synthetic customer id (int64).", fields=fields,
        description="One row at the end of the first order day, then one per repeat order with updated totals.",
        service_description="Features of the synthetic LTV model.")


def watch_time_objects(data_dir: str) -> List:
    """Feast objects of the seeded synthetic watch-time data.

    Args:
      data_dir: folder that holds `user_features.parquet` and `item_features.parquet`.

    Returns:
      [user and item entities, their sources, the `user_features` and `item_features` views,
      the `watch_time_v1` feature service].
    """
    user = _entity("user", "user_id", "Viewer id (int64).")
    item = _entity("item", "item_id", "Video id (int64).")
    user_source = _source(data_dir, WATCH_TIME_USER_VIEW)
    item_source = _source(data_dir, WATCH_TIME_ITEM_VIEW)
    user_view = FeatureView(
        name=WATCH_TIME_USER_VIEW,
        entities=[user],
        ttl=timedelta(days=30),
        schema=[
            Field(name="user_id", dtype=Int64, description="Viewer id, the join key."),
            Field(name="user_activity", dtype=Float64, description="Impressions per day, recomputed weekly."),
            Field(name="user_favorite_category", dtype=String, description="Category the user watches most."),
        ],
        source=user_source,
        description="A profile row before the impression window, then weekly recomputed activity.",
        tags={"dataset": "watch_time"},
    )
    item_view = FeatureView(
        name=WATCH_TIME_ITEM_VIEW,
        entities=[item],
        ttl=timedelta(days=3650),
        schema=[
            Field(name="item_id", dtype=Int64, description="Video id, the join key."),
            Field(name="video_duration", dtype=Float64, description="Video length in seconds."),
            Field(name="item_category", dtype=String, description="Video category."),
        ],
        source=item_source,
        description="One row per video at its upload time, before any impression.",
        tags={"dataset": "watch_time"},
    )
    service = FeatureService(
        name="watch_time_v1", features=[user_view, item_view], description="Features of the watch-time model."
    )
    return [user, item, user_source, item_source, user_view, item_view, service]


OBJECTS: Dict[str, Callable[[str], List]] = {
    "cdnow": cdnow_objects,
    "cdnow_snapshots": cdnow_snapshots_objects,
    "synthetic_ltv": synthetic_ltv_objects,
    "watch_time": watch_time_objects,
}
