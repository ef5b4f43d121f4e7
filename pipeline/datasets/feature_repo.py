"""Lays out a prepared data folder (Feast repo, Parquet feature tables, spine) and applies the Feast definitions.

Layout under `out_dir`::

  feature_repo/feature_store.yaml   copied from schemas/feature_repo (paths relative to feature_repo/)
  feature_repo/data/<view>.parquet  feature tables
  feature_repo/data/registry.db     Feast registry, written by FeatureStore.apply
  feature_repo/data/online_store.db sqlite online store (tables created by apply, empty until materialize)
  spine.parquet                     entity columns, prediction_time (UTC), label
  prepared.json                     marker: what was prepared; written last
"""

import json
import os
import shutil
from typing import Any, List, Mapping, Tuple

os.environ.setdefault("FEAST_USAGE", "False")  # Feast 0.33 sends usage telemetry unless this is set before import.

import pandas as pd  # noqa: E402
from feast import FeatureService, FeatureStore, FileSource  # noqa: E402

from schemas.feature_repo import definitions  # noqa: E402

REPO_DIR = "feature_repo"
DATA_DIR = "data"
SPINE_FILE = "spine.parquet"
MARKER_FILE = "prepared.json"
CONFIG_FILE = "feature_store.yaml"
TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(definitions.__file__)), CONFIG_FILE)


def repo_path(out_dir: str) -> str:
    """Returns the Feast repo directory (holds feature_store.yaml) of a prepared folder."""
    return os.path.join(os.path.abspath(out_dir), REPO_DIR)


def data_path(out_dir: str) -> str:
    """Returns the directory of the Parquet feature tables, registry and online store."""
    return os.path.join(repo_path(out_dir), DATA_DIR)


def spine_path(out_dir: str) -> str:
    """Returns the spine Parquet file of a prepared folder."""
    return os.path.join(os.path.abspath(out_dir), SPINE_FILE)


def _marker_path(out_dir: str) -> str:
    return os.path.join(os.path.abspath(out_dir), MARKER_FILE)


def is_prepared(out_dir: str, key: Mapping[str, Any], objects: List) -> bool:
    """True when `out_dir` holds a complete preparation made with exactly `key`.

    Complete: the marker, the spine, feature_store.yaml, the registry and the file of every FileSource in `objects`.
    """
    try:
        with open(_marker_path(out_dir)) as f:
            if json.load(f) != dict(key):
                return False
    except (OSError, ValueError):
        return False
    required = (
        spine_path(out_dir),
        os.path.join(repo_path(out_dir), CONFIG_FILE),
        os.path.join(data_path(out_dir), "registry.db"),
    ) + tuple(o.path for o in objects if isinstance(o, FileSource))
    return all(os.path.exists(p) for p in required)


def write(
    out_dir: str,
    key: Mapping[str, Any],
    tables: Mapping[str, pd.DataFrame],
    spine: pd.DataFrame,
    objects: List,
) -> None:
    """Writes the feature tables, spine and Feast repo under `out_dir`, applies the objects, then the marker.

    Anything a previous preparation left (feature_repo/, spine.parquet, prepared.json) is removed first.

    Args:
      out_dir: folder to prepare.
      key: JSON-serializable description of what is prepared; stored in prepared.json.
      tables: feature tables by feature view name; each is written to data/<view>.parquet.
      spine: the spine frame.
      objects: Feast objects whose sources point into data_path(out_dir) (schemas/feature_repo/definitions.py).
    """
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    for path in (_marker_path(out_dir), spine_path(out_dir)):
        if os.path.exists(path):
            os.remove(path)
    if os.path.exists(repo_path(out_dir)):
        shutil.rmtree(repo_path(out_dir))
    os.makedirs(data_path(out_dir))
    shutil.copyfile(TEMPLATE, os.path.join(repo_path(out_dir), CONFIG_FILE))
    for view_name, table in tables.items():
        table.to_parquet(definitions.table_path(data_path(out_dir), view_name), index=False)
    spine.to_parquet(spine_path(out_dir), index=False)
    FeatureStore(repo_path=repo_path(out_dir)).apply(objects)
    tmp = _marker_path(out_dir) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(dict(key), f, sort_keys=True)
    os.replace(tmp, _marker_path(out_dir))


def feature_refs(objects: List) -> Tuple[str, ...]:
    """Returns "view:feature" references of the (single) FeatureService among `objects`, in declaration order."""
    services = [o for o in objects if isinstance(o, FeatureService)]
    if len(services) != 1:
        raise ValueError(f"objects: expected exactly one FeatureService, found {len(services)}")
    return tuple(
        f"{projection.name_to_use()}:{feature.name}"
        for projection in services[0].feature_view_projections
        for feature in projection.features
    )

