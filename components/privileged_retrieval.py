"""The one forward-looking retrieval: privileged features from the window after each prediction time.

Privileged-feature distillation (`models/distillation.py`) trains a teacher on what happened after
the prediction time t — e.g. the spend of the 30 days after a cut-off — and a student that never
reads it. Everything else the pipeline reads is point in time (at or before t); this module is
the only place that asks Feast for values after t, and it does so only for the rows of the
training splits (`PrivilegedSpec.splits`, train and valid), never for the eval split, so the
examples TFMA evaluates and every request at serving time carry no privileged feature.

A privileged feature is a Feast feature reference read over (t, t + window] in one of two ways:
  - "change": the value as of t + window minus the value as of t. For a cumulative total (spend,
    CDs, transactions to date) this is exactly what happened in the window, whatever days the
    feature table has rows on, since a total changes only on days with a row;
  - "value": the value as of t + window (the latest row at or before it). Exact only where the
    table has a row at that time: a windowed feature such as spend_30d read between rows is stale.
A row whose retrieval finds no feature row gets the feature missing (absent from its example).

The label is refused as a privileged feature on the data too (`check_not_label`): a feature equal
to the label on nearly every training row stops the ingestion, whatever the config declares.
"""

import dataclasses
import json
from typing import Dict, List, Sequence

import numpy as np
import pandas as pd

from components import point_in_time
from schemas import features

TRAINING_SPLITS = ("train", "valid")
# A privileged feature equal to the label on at least this share of the training rows is the label.
LABEL_MATCH_SHARE = 0.99
_WHERE = "distillation.privileged_features"


class PrivilegedRetrievalError(ValueError):
    """The forward retrieval cannot produce the privileged features, or one of them is the label."""


@dataclasses.dataclass(frozen=True)
class PrivilegedSpec:
    """What the forward retrieval reads (mirrors `pipeline.config.DistillationConfig`; plain, for JSON).

    Attributes:
      names: the features' names in the examples.
      refs: their Feast references, "feature_view:feature", aligned with `names`.
      reads: "change" or "value" for each (module docstring).
      window_days: the window (t, t + window_days] after each prediction time t.
      splits: the splits whose rows get privileged features: the ones the teacher trains and
        validates on. Never "eval".
    """

    names: Sequence[str]
    refs: Sequence[str]
    reads: Sequence[str]
    window_days: int
    splits: Sequence[str] = TRAINING_SPLITS

    def __post_init__(self):
        if "eval" in self.splits:
            raise ValueError("splits: privileged features never go into the eval split")
        if not len(self.names) == len(self.refs) == len(self.reads):
            raise ValueError("names, refs and reads must have one entry per privileged feature")
        if self.window_days < 1:
            raise ValueError(f"window_days: {self.window_days} must be at least 1")

    @classmethod
    def from_config(cls, distillation) -> "PrivilegedSpec":
        """From a `pipeline.config.DistillationConfig`."""
        declared = distillation.privileged_features
        return cls(tuple(f.name for f in declared), tuple(f.ref for f in declared), tuple(f.read for f in declared),
                   int(distillation.window_days))

    def to_json(self) -> str:
        return json.dumps({k: list(v) if isinstance(v, (list, tuple)) else v
                           for k, v in dataclasses.asdict(self).items()}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "PrivilegedSpec":
        values = json.loads(text)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def forward_values(rows: pd.DataFrame, feast_repo: str, timestamp_column: str, privileged: PrivilegedSpec,
                   store=None) -> pd.DataFrame:
    """The privileged features of `rows`, read from Feast over (t, t + window] after each row's time t.

    This reads the future on purpose: call it only for rows a model may learn from, never for rows
    it is evaluated or served on.

    Args:
      rows: spine rows (the feature views' join keys and `timestamp_column`, UTC).
      feast_repo: directory of the applied Feast repo.
      timestamp_column: the column of the prediction time t.
      privileged: what to read.
      store: a FeatureStore of `feast_repo` already open (one is opened if not given).

    Returns:
      One float column per privileged feature, index aligned with `rows`; NaN where Feast has no
      feature row for it.
    """
    if store is None:
        from feast import FeatureStore  # heavy import, only where retrieval happens

        store = FeatureStore(repo_path=feast_repo)
    window = pd.Timedelta(days=privileged.window_days)
    at_end = _as_of(store, rows, rows[timestamp_column] + window, privileged.refs, feast_repo)
    changes = sorted({ref for ref, read in zip(privileged.refs, privileged.reads) if read == "change"})
    at_start = _as_of(store, rows, rows[timestamp_column], changes, feast_repo) if changes else {}
    columns = {}
    for name, ref, read in zip(privileged.names, privileged.refs, privileged.reads):
        columns[name] = at_end[ref] - at_start[ref] if read == "change" else at_end[ref]
    return pd.DataFrame(columns, index=rows.index)


def _as_of(store, rows: pd.DataFrame, times: pd.Series, refs: Sequence[str], feast_repo: str
           ) -> Dict[str, np.ndarray]:
    """Each ref's value as of `times` (the latest feature row at or before it), as floats aligned with `rows`."""
    values: Dict[str, np.ndarray] = {}
    by_view: Dict[str, List[str]] = {}
    for ref in dict.fromkeys(refs):  # a ref read two ways is retrieved once
        by_view.setdefault(ref.split(":", 1)[0], []).append(ref)
    for view_name, view_refs in by_view.items():
        try:
            view = store.get_feature_view(view_name)
        except Exception as e:  # Feast raises its own not-found types
            raise PrivilegedRetrievalError(f"{_WHERE}: feature view {view_name!r} is not in the Feast repo "
                                           f"{feast_repo!r}: {e}") from None
        keys = [column.name for column in view.entity_columns]
        asked = rows[keys].assign(**{features.EVENT_TIMESTAMP_KEY: times.to_numpy()})
        retrieved, _ = point_in_time.retrieve_per_row(
            store, asked, view_refs, lambda e: PrivilegedRetrievalError(
                f"forward retrieval of {_WHERE} {list(view_refs)} from Feast repo {feast_repo!r} failed: {e}"))
        for ref in view_refs:
            values[ref] = pd.to_numeric(retrieved[ref.split(":", 1)[1]], errors="coerce").to_numpy(dtype="float64")
    return values


def check_not_label(values: pd.DataFrame, labels: pd.Series, label: str) -> None:
    """Refuses a privileged feature that is the label: equal to it on at least LABEL_MATCH_SHARE of the rows
    where both are present, with some of those labels non-zero.

    Raises:
      PrivilegedRetrievalError naming the feature and the share.
    """
    label_values = pd.to_numeric(labels, errors="coerce").to_numpy(dtype="float64")
    for name in values.columns:
        feature = values[name].to_numpy(dtype="float64")
        both = ~np.isnan(feature) & ~np.isnan(label_values)
        if not both.any() or not (label_values[both] != 0).any():
            continue
        same = np.isclose(feature[both], label_values[both], rtol=1e-6, atol=1e-6)
        if same.mean() >= LABEL_MATCH_SHARE:
            raise PrivilegedRetrievalError(
                f"{_WHERE}: {name!r} equals the label {label!r} on {same.mean():.1%} of the "
                "training rows: it is the label, not a privileged feature; read it over a window the label "
                "window strictly includes or that ends before the label window starts")
