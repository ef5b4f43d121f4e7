"""Reads what a run produced from ML Metadata: the evaluation per slice, the blessing and the pushed model."""

import dataclasses
import math
import os
from typing import Dict, List, Optional, Tuple

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from schemas import features

OVERALL = "overall"


@dataclasses.dataclass
class RunResult:
    """The latest evaluation, blessing and push recorded in a metadata store."""

    metrics: Dict[str, Dict[str, float]]  # slice name -> metric name -> value (candidate model)
    blessed: Optional[bool]
    pushed_model: Optional[str]  # what the latest Pusher pushed (None when it pushed nothing)
    evaluation_uri: Optional[str]
    serving_model: Optional[str] = None  # the newest model ever pushed: what serving has now


def open_store(metadata_path: str) -> metadata_store.MetadataStore:
    if not os.path.exists(metadata_path):
        raise FileNotFoundError(f"no metadata store at {metadata_path!r}: run the pipeline first (rqvalue run)")
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def _latest(store, type_name: str):
    artifacts = [a for a in store.get_artifacts_by_type(type_name)
                 if a.state == metadata_store_pb2.Artifact.LIVE]
    return max(artifacts, key=lambda a: a.id) if artifacts else None


def slice_name(slice_key: Tuple) -> str:
    """'overall' for the whole eval split, else 'value_bucket=3' style names."""
    if not slice_key:
        return OVERALL
    return ",".join(f"{k}={v}" for k, v in slice_key)


def load_metrics(evaluation_uri: str, model_name: str = "candidate") -> Dict[str, Dict[str, float]]:
    """Metric values per slice of one model of a TFMA evaluation (diffs against a baseline excluded)."""
    import tensorflow_model_analysis as tfma  # slow to import; only readers of evaluations need it

    result: Dict[str, Dict[str, float]] = {}
    for metrics_for_slice in tfma.load_metrics(evaluation_uri):
        name = slice_name(tfma.slicer.deserialize_slice_key(metrics_for_slice.slice_key))
        values = result.setdefault(name, {})
        for item in metrics_for_slice.metric_keys_and_values:
            key = item.key
            if key.is_diff or (key.model_name and key.model_name != model_name):
                continue
            if item.value.HasField("double_value"):
                values[key.name] = item.value.double_value.value
        if "mean_squared_error" in values:
            values["root_mean_squared_error"] = math.sqrt(values["mean_squared_error"])
    return result


def latest_result(metadata_path: str) -> RunResult:
    """The latest evaluation, blessing and pushed model in the store."""
    store = open_store(metadata_path)
    evaluation = _latest(store, "ModelEvaluation")
    blessing = _latest(store, "ModelBlessing")
    pushed = _latest(store, "PushedModel")
    pushes = [a for a in store.get_artifacts_by_type("PushedModel") if _was_pushed(a)]
    metrics = load_metrics(evaluation.uri) if evaluation else {}
    blessed = None
    if blessing is not None and "blessed" in blessing.custom_properties:
        blessed = bool(blessing.custom_properties["blessed"].int_value)
    pushed_model = _destination(pushed) if pushed is not None and _was_pushed(pushed) else None
    serving_model = _destination(max(pushes, key=lambda a: a.id)) if pushes else None
    return RunResult(metrics=metrics, blessed=blessed, pushed_model=pushed_model,
                     evaluation_uri=evaluation.uri if evaluation else None, serving_model=serving_model)


def _was_pushed(artifact) -> bool:
    return "pushed" in artifact.custom_properties and artifact.custom_properties["pushed"].int_value == 1


def _destination(artifact) -> str:
    return artifact.custom_properties["pushed_destination"].string_value


# The metrics tables show, in this order: (metric key, column title, format).
METRIC_COLUMNS = (("example_count", "n", "{:.0f}"), ("mean_label", "mean label", "{:.3f}"),
            ("mean_prediction", "mean pred", "{:.3f}"), ("mean_absolute_error", "MAE", "{:.3f}"),
            ("root_mean_squared_error", "RMSE", "{:.3f}"), ("normalized_gini", "norm. Gini", "{:.3f}"),
            ("spearman", "Spearman", "{:.3f}"), ("xauc", "XAUC", "{:.3f}"),
            ("interval_coverage", "80% cov.", "{:.3f}"))


def slice_order(name: str) -> tuple:
    """Sort key of slice names: overall first, then value buckets in numeric order, then the rest."""
    if name == OVERALL:
        return (0, 0, "")
    try:
        return (1, float(name.split("=", 1)[1]), "")
    except (IndexError, ValueError):
        return (2, 0, name)


def format_metrics(metrics: Dict[str, Dict[str, float]]) -> str:
    """A plain-text table: one row per slice (overall first, then value buckets in order)."""
    header = ["slice"] + [title for _, title, _ in METRIC_COLUMNS]
    rows: List[List[str]] = []
    for name in sorted(metrics, key=slice_order):
        values = metrics[name]
        rows.append([name] + [fmt.format(values[key]) if key in values else "-" for key, _, fmt in METRIC_COLUMNS])
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in [header] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    note = f"({features.VALUE_BUCKET_KEY}=0 holds the zero labels; higher buckets hold larger labels)"
    return "\n".join(lines + [note])
