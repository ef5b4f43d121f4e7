"""CDNOW scored at monthly cut-offs: purchase-history features as of each cut-off, spend of the next 365 days.

This is how customer lifetime value is predicted in practice: the whole customer base is scored at every month end
with the features a daily batch job wrote to the feature store, and the model learns from past month ends whose
outcome is known.

Recipe, on the CDNOW purchase log of the `lifetimes` package (69,659 transactions of 23,570 customers, 1997-01-01 to
1998-06-30; every customer made a first purchase in 1997-Q1):

- Prediction times (cut-offs): the end (23:59:59 UTC) of the month-end days in `CUTOFF_DAYS`, 1997-03-31 to
  1997-06-30. Every customer is acquired by the first one, so each customer has one example per cut-off.
- Label: dollars spent strictly after the cut-off day, up to and including the cut-off day + `HORIZON_DAYS` (365).
  The last window ends on `LOG_END`, the last day of the log, so no label is censored.
- Features at the end of the cut-off day; a purchase day is a calendar day with at least one transaction:
  frequency (repeat purchase days), recency_days (last - first purchase day), customer_age_days (T: cut-off day -
  first purchase day), days_since_last_purchase, monetary_value (mean spend of the repeat purchase days, 0 without
  one), avg_order_value (spend per transaction), first_order_value (spend of the first purchase day), total_spend,
  total_cds, num_purchases (transactions), spend / CDs / transactions in the last 30, 90 and 180 days (the cut-off
  day and the days before it), and cohort (month of the first purchase, categorical).
- Feature table `customer_snapshots`: what a daily feature job keeps. A windowed feature such as spend_30d changes
  every day even without a purchase, so one row per purchase is not enough; a row per customer and day would be
  exact everywhere but is ~12M rows. The table holds a row per customer on every day something changes (a
  purchase day) and on every scoring day (each month end from the first purchase to `LOG_END`), stamped 23:59:59
  UTC with the values at the end of that day: exact at every month end, which is when the model scores. Rows after
  each cut-off exist (later purchase days and month ends); point-in-time retrieval is what keeps them out.
"""

import dataclasses
from typing import Dict, Optional, Tuple

import numpy as np
import pandas as pd

from pipeline.datasets.cdnow import end_of_day_utc, first_customers, load_transactions
from schemas import features
from schemas.feature_repo import definitions

CUTOFF_DAYS = ("1997-03-31", "1997-04-30", "1997-05-31", "1997-06-30")
HORIZON_DAYS = 365
LOG_END = "1998-06-30"  # last day of CDNOW_master.txt

# Privileged-feature distillation (`rqvalue run --dataset cdnow_snapshots --distill`): what the teacher reads besides
# the serving features, what each customer did in the PRIVILEGED_WINDOW_DAYS after the cut-off, as the change of a
# cumulative total of the feature table over that window: (name in the examples, feature of customer_snapshots).
# The label's window, (cut-off, cut-off + HORIZON_DAYS], strictly includes it.
PRIVILEGED_WINDOW_DAYS = 30
PRIVILEGED_FEATURES = (("spend_next_30d", "total_spend"), ("cds_next_30d", "total_cds"),
                       ("purchases_next_30d", "num_purchases"))

_EPOCH = pd.Timestamp("1970-01-01")
_KEY_STRIDE = 1 << 20  # larger than any day number, so customer * stride + day orders by customer, then day


def daily_purchases(transactions: pd.DataFrame) -> pd.DataFrame:
    """Sums the transactions of each customer and calendar day.

    Args:
      transactions: output of `cdnow.load_transactions` (any subset of customers).

    Returns:
      customer_id, date (midnight), cents (spend in integer cents, so sums are exact), cds, purchases
      (transactions), sorted by customer and date.
    """
    cents = np.rint(transactions["dollar_value"].to_numpy() * 100).astype("int64")
    return (
        transactions.assign(cents=cents)
        .groupby(["customer_id", "date"], sort=True)
        .agg(cents=("cents", "sum"), cds=("number_of_cds", "sum"), purchases=("cents", "size"))
        .reset_index()
    )


def _day_number(dates) -> np.ndarray:
    return ((pd.DatetimeIndex(dates) - _EPOCH) // pd.Timedelta(days=1)).to_numpy(dtype="int64")


@dataclasses.dataclass(frozen=True)
class _PurchaseIndex:
    """Purchase days of many customers in one sorted array, with running totals, for vectorized as-of lookups."""

    keys: np.ndarray  # customer * _KEY_STRIDE + day number, ascending
    day: np.ndarray  # day number of each purchase day
    totals: Dict[str, np.ndarray]  # quantity -> running total, totals[q][i] = sum of the first i purchase days

    @classmethod
    def of(cls, days: pd.DataFrame) -> "_PurchaseIndex":
        day = _day_number(days["date"])
        keys = days["customer_id"].to_numpy(dtype="int64") * _KEY_STRIDE + day
        if not (np.diff(keys) > 0).all():
            raise ValueError("days: rows must be unique per (customer_id, date) and sorted (use daily_purchases)")
        totals = {
            quantity: np.concatenate([[0], np.cumsum(days[quantity].to_numpy(dtype="int64"))])
            for quantity in ("cents", "cds", "purchases")
        }
        return cls(keys, day, totals)

    def first(self, customers: np.ndarray) -> np.ndarray:
        """Position of each customer's first purchase day."""
        return np.searchsorted(self.keys, customers * _KEY_STRIDE, side="left")

    def after(self, customers: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Position just after each customer's last purchase day on or before `day`."""
        return np.searchsorted(self.keys, customers * _KEY_STRIDE + day, side="right")

    def between(self, quantity: str, begin: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Sum of `quantity` over the purchase days at positions [begin, end)."""
        return self.totals[quantity][end] - self.totals[quantity][begin]


def features_as_of(days: pd.DataFrame, customer_ids: np.ndarray, dates: pd.Series) -> pd.DataFrame:
    """Computes the snapshot features of each (customer, date) at the end of that date.

    Args:
      days: output of `daily_purchases`.
      customer_ids: int64 customer id per query.
      dates: date (midnight, tz-naive) per query, on or after that customer's first purchase day.

    Returns:
      customer_id, event_timestamp (23:59:59 UTC of the date) and the features of
      `features.CDNOW_SNAPSHOTS_NUMERIC_FEATURES` and `..._CATEGORICAL_FEATURES`, in query order.

    Raises:
      ValueError: a date before the customer's first purchase (or a customer without purchases).
    """
    index = _PurchaseIndex.of(days)
    customers = np.asarray(customer_ids, dtype="int64")
    day = _day_number(dates)
    start, end = index.first(customers), index.after(customers, day)
    if (end <= start).any():
        bad = int(np.argmax(end <= start))
        when = pd.Timestamp(pd.Series(dates).iloc[bad]).date()
        raise ValueError(f"dates: customer {customers[bad]} has no purchase on or before {when}")
    first_day, last_day = index.day[start], index.day[end - 1]
    purchase_days = end - start
    cents = index.between("cents", start, end)
    first_cents = index.between("cents", start, start + 1)
    purchases = index.between("purchases", start, end)
    repeat_days = purchase_days - 1
    columns = {
        "customer_id": customers,
        features.EVENT_TIMESTAMP_KEY: end_of_day_utc(pd.Series(pd.DatetimeIndex(dates))),
        "frequency": repeat_days,
        "recency_days": last_day - first_day,
        "customer_age_days": day - first_day,
        "days_since_last_purchase": day - last_day,
        "monetary_value": np.where(repeat_days > 0, (cents - first_cents) / np.maximum(repeat_days, 1), 0) / 100,
        "avg_order_value": cents / purchases / 100,
        "first_order_value": first_cents / 100,
        "total_spend": cents / 100,
        "total_cds": index.between("cds", start, end),
        "num_purchases": purchases,
    }
    for window in features.CDNOW_SNAPSHOT_WINDOWS_DAYS:
        begin = np.maximum(index.after(customers, day - window), start)  # window: (day - window, day]
        columns[f"spend_{window}d"] = index.between("cents", begin, end) / 100
        columns[f"cds_{window}d"] = index.between("cds", begin, end)
        columns[f"purchases_{window}d"] = index.between("purchases", begin, end)
    first_dates = _EPOCH + pd.to_timedelta(first_day, unit="D")
    columns["cohort"] = pd.DatetimeIndex(first_dates).strftime("%Y-%m").to_numpy()
    return pd.DataFrame(columns)


def history_table(transactions: pd.DataFrame) -> pd.DataFrame:
    """Builds the `customer_snapshots` feature table (see the module docstring).

    Args:
      transactions: output of `cdnow.load_transactions` (any subset of customers).

    Returns:
      One row per customer and (purchase day or month end from the first purchase to LOG_END), sorted by
      customer and time; columns as `features_as_of`.
    """
    days = daily_purchases(transactions)
    first = days.groupby("customer_id")["date"].min()
    month_ends = pd.date_range(first.min(), LOG_END, freq="M")
    scoring = pd.DataFrame(
        {
            "customer_id": np.repeat(first.index.to_numpy(dtype="int64"), len(month_ends)),
            "date": np.tile(month_ends.to_numpy(), len(first)),
        }
    )
    scoring = scoring[scoring["date"] >= scoring["customer_id"].map(first)]
    rows = (
        pd.concat([days[["customer_id", "date"]], scoring])
        .drop_duplicates()
        .sort_values(["customer_id", "date"])
        .reset_index(drop=True)
    )
    return features_as_of(days, rows["customer_id"].to_numpy(), rows["date"])


def spine_table(transactions: pd.DataFrame) -> pd.DataFrame:
    """Builds the spine: one row per customer and cut-off with the spend of the following HORIZON_DAYS days.

    Args:
      transactions: output of `cdnow.load_transactions` (any subset of customers).

    Returns:
      customer_id (int64), prediction_time (UTC, end of the cut-off day), label (float64 dollars, >= 0), sorted
      by prediction time, then customer (a customer is scored at a cut-off once acquired by its end).

    Raises:
      ValueError: a label window would run past LOG_END (censored labels).
    """
    cutoffs = pd.DatetimeIndex(CUTOFF_DAYS)
    if cutoffs.max() + pd.Timedelta(days=HORIZON_DAYS) > pd.Timestamp(LOG_END):
        raise ValueError(f"CUTOFF_DAYS: the window of {cutoffs.max().date()} + {HORIZON_DAYS} days runs past "
                         f"the end of the log, {LOG_END}")
    days = daily_purchases(transactions)
    first = days.groupby("customer_id")["date"].min()
    customers = np.tile(first.index.to_numpy(dtype="int64"), len(cutoffs))
    at = np.repeat(cutoffs.to_numpy(), len(first))
    acquired = at >= first.reindex(customers).to_numpy()
    customers, at = customers[acquired], at[acquired]
    index = _PurchaseIndex.of(days)
    day = _day_number(at)
    cents = index.between("cents", index.after(customers, day), index.after(customers, day + HORIZON_DAYS))
    return pd.DataFrame(
        {
            "customer_id": customers,
            features.TIMESTAMP_KEY: end_of_day_utc(pd.Series(at)),
            features.LABEL_KEY: cents / 100,
        }
    )


def build(rows: Optional[int] = None, seed: int = 0) -> Tuple[Dict[str, pd.DataFrame], pd.DataFrame]:
    """Builds the snapshot feature table and the multi-cut-off spine.

    Args:
      rows: number of customers to keep (the first `rows` customer ids), each scored at every cut-off; None keeps
        all 23,570.
      seed: unused (the data is fixed); accepted so every data set has the same builder signature.

    Returns:
      ({feature view name: feature table}, spine).
    """
    del seed
    transactions = first_customers(load_transactions(), rows)
    return {definitions.CDNOW_SNAPSHOTS_VIEW: history_table(transactions)}, spine_table(transactions)
