"""Gathers what the report shows: the run's record from ML Metadata (`pipeline.mlmd.evaluated_run`),
then the eval split's raw tf.Examples scored with each model's `serving_default` signature, and the
value bucket and the true RQ codes of every example from the candidate's `transform_features`.
"""

import dataclasses
import datetime
import glob
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from pipeline import mlmd, tfma_results
from schemas.features import CODES_KEY, VALUE_BUCKET_KEY

BATCH_SIZE = 512


class ReportError(Exception):
    """A plain error for the command line: no metadata store, no evaluated run, an unknown run."""


@dataclasses.dataclass
class ModelScores:
    """One model's evaluation: its TFMA metrics per slice and its serving outputs on the eval split."""

    role: str  # "candidate" or "baseline"
    path: str  # the SavedModel directory
    metrics: Dict[str, Dict[str, float]]
    prediction: np.ndarray
    median: Optional[np.ndarray] = None
    lower: Optional[np.ndarray] = None
    upper: Optional[np.ndarray] = None
    codes: Optional[np.ndarray] = None  # [N, L] greedy codes, for models that serve them


@dataclasses.dataclass
class ReportData:
    """Everything the page shows; `render` needs nothing else (no TensorFlow, no files)."""

    run: mlmd.RunInfo
    labels: np.ndarray
    value_bucket: np.ndarray
    candidate: ModelScores
    baseline: Optional[ModelScores] = None
    true_codes: Optional[np.ndarray] = None  # [N, L] Transform's codes of the true labels
    codebook_sizes: Optional[List[int]] = None
    value_bucket_source: str = "transform_features"
    interval_quantiles: Tuple[float, float] = (0.1, 0.9)  # models.base.INTERVAL_QUANTILES
    validation_failures: List[str] = dataclasses.field(default_factory=list)
    generated_at: str = ""

    @property
    def nominal_coverage(self) -> float:
        return self.interval_quantiles[1] - self.interval_quantiles[0]

    def models(self) -> List[ModelScores]:
        return [self.candidate] + ([self.baseline] if self.baseline is not None else [])


def serving_model_path(model_uri: str) -> str:
    """The SavedModel of a TFX Model artifact (`<uri>/Format-Serving`, or the uri itself)."""
    serving = os.path.join(model_uri, "Format-Serving")
    return serving if os.path.isdir(serving) else model_uri


def read_split(examples_uri: str, splits: Sequence[str] = ("eval",)) -> List[bytes]:
    """Serialized tf.Examples of the given splits of an Examples artifact (TFRecords, gzipped or not)."""
    import tensorflow as tf

    records: List[bytes] = []
    for split in splits:
        files = sorted(glob.glob(os.path.join(examples_uri, f"Split-{split}", "*")))
        if not files:
            raise ReportError(f"no {split} examples under {examples_uri}")
        for compression in sorted({"GZIP" if f.endswith(".gz") else "" for f in files}):
            chosen = [f for f in files if f.endswith(".gz") == (compression == "GZIP")]
            records += [r.numpy() for r in tf.data.TFRecordDataset(chosen, compression_type=compression)]
    return records


def _batched_call(function, serialized: Sequence[bytes], batch_size: int) -> Dict[str, np.ndarray]:
    import tensorflow as tf

    chunks: Dict[str, List[np.ndarray]] = {}
    for start in range(0, len(serialized), batch_size):
        outputs = function(examples=tf.constant(list(serialized[start:start + batch_size])))
        for key, value in outputs.items():
            if isinstance(value, tf.SparseTensor):
                value = tf.sparse.to_dense(value)
            chunks.setdefault(key, []).append(value.numpy())
    return {key: np.concatenate(parts, axis=0) for key, parts in chunks.items()}


def read_labels(serialized: Sequence[bytes], label_key: str) -> np.ndarray:
    """The label of every example (NaN where it is missing)."""
    import tensorflow as tf

    spec = {label_key: tf.io.FixedLenFeature([], tf.float32, default_value=float("nan"))}
    parts = [tf.io.parse_example(tf.constant(list(serialized[i:i + 4096])), spec)[label_key].numpy()
             for i in range(0, len(serialized), 4096)]
    return np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)


def score_model(model_path: str, serialized: Sequence[bytes], role: str, metrics: Dict[str, Dict[str, float]],
                batch_size: int = BATCH_SIZE, with_transform: bool = False
                ) -> Tuple[ModelScores, Dict[str, np.ndarray]]:
    """Runs `serving_default` (and, if asked, `transform_features`) over the serialized examples."""
    import tensorflow as tf

    loaded = tf.saved_model.load(model_path)
    served = _batched_call(loaded.signatures["serving_default"], serialized, batch_size)
    transformed: Dict[str, np.ndarray] = {}
    if with_transform and "transform_features" in loaded.signatures:
        transformed = _batched_call(loaded.signatures["transform_features"], serialized, batch_size)
    if "prediction" not in served:
        raise ReportError(f"{model_path}: serving_default has no `prediction` output (outputs: {sorted(served)})")

    def column(key):
        return np.asarray(served[key], dtype=np.float64).reshape(-1) if key in served else None

    codes = np.asarray(served["codes"], dtype=np.int64) if "codes" in served else None
    if codes is not None and codes.ndim == 1:
        codes = codes[:, None]
    scores = ModelScores(role=role, path=model_path, metrics=metrics, prediction=column("prediction"),
                         median=column("median"), lower=column("lower"), upper=column("upper"), codes=codes)
    return scores, transformed


def _fallback_buckets(labels: np.ndarray, buckets: int = 5) -> np.ndarray:
    """Bucket 0 for zero labels, then quantiles of the positive labels (when the model has no transform)."""
    result = np.zeros(labels.shape, dtype=np.int64)
    positive = labels > 0
    if positive.any():
        edges = np.quantile(labels[positive], np.linspace(0, 1, buckets)[1:-1])
        result[positive] = np.searchsorted(edges, labels[positive], side="right") + 1
    return result


def gather(metadata_path: str, run: Optional[str] = None, batch_size: int = BATCH_SIZE) -> ReportData:
    """Reads the run from ML Metadata and scores its eval split with the candidate (and baseline) model."""
    from models.base import INTERVAL_QUANTILES  # loads TensorFlow, which scoring needs anyway

    info = mlmd.evaluated_run(metadata_path, run)
    serialized = read_split(info.examples_uri, info.eval_splits)
    labels = read_labels(serialized, info.label_key)
    keep = np.isfinite(labels)
    if not keep.all():  # validation stops runs with missing labels; stay safe anyway
        serialized = [s for s, k in zip(serialized, keep) if k]
        labels = labels[keep]
    if labels.size == 0:
        raise ReportError(f"the eval split of run {info.run_id!r} has no labelled example")

    candidate_metrics = tfma_results.load_metrics(info.evaluation_uri, "candidate")
    candidate, transformed = score_model(serving_model_path(info.model_uri), serialized, "candidate",
                                         candidate_metrics, batch_size, with_transform=True)
    baseline = None
    if info.baseline_uri:
        baseline_metrics = tfma_results.load_metrics(info.evaluation_uri, "baseline")
        if info.baseline_id == info.model_id:  # an old store may compare a model with itself
            baseline = dataclasses.replace(candidate, role="baseline", metrics=baseline_metrics)
        else:
            baseline, _ = score_model(serving_model_path(info.baseline_uri), serialized, "baseline",
                                      baseline_metrics, batch_size)

    if VALUE_BUCKET_KEY in transformed:
        value_bucket, source = np.asarray(transformed[VALUE_BUCKET_KEY]).reshape(-1).astype(np.int64), \
            "transform_features"
    else:
        value_bucket, source = _fallback_buckets(labels), "recomputed"
    true_codes = None
    if CODES_KEY in transformed:
        true_codes = np.asarray(transformed[CODES_KEY], dtype=np.int64)
        true_codes = true_codes[:, None] if true_codes.ndim == 1 else true_codes
    sizes = info.transform_config.get("codebook_sizes")
    return ReportData(
        run=info, labels=labels, value_bucket=value_bucket, candidate=candidate, baseline=baseline,
        true_codes=true_codes, codebook_sizes=[int(k) for k in sizes] if sizes else None,
        value_bucket_source=source, interval_quantiles=tuple(float(q) for q in INTERVAL_QUANTILES),
        validation_failures=_validation_failures(info.evaluation_uri),
        generated_at=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"))


def _validation_failures(evaluation_uri: str) -> List[str]:
    """Short descriptions of the thresholds the candidate failed (empty when it passed or none is recorded)."""
    failures = []
    for failure in tfma_results.failed_thresholds(evaluation_uri):
        text = f"{failure['metric']} on {failure['slice']}"
        if failure["value"] is not None:
            text += f" = {failure['value']:.4g}"
        if failure["message"]:
            text += f" ({failure['message']})"
        failures.append(text)
    return failures
