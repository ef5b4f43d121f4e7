"""`rqvalue report`: one self-contained static HTML page about a run's evaluation.

    rqvalue report [RUN] [--output-dir runs] [--out report.html]

RUN is a pipeline run id as ML Metadata records it (the `pipeline_run` context name, e.g.
`2026-11-26T00:13:18.334776`; a unique prefix is enough); by default the latest run that has an
evaluation. The report is built in two steps:

1. `gather` reads the run from ML Metadata (the Evaluator execution's inputs: the eval examples,
   the candidate model and, when there was one, the baseline model; its outputs: the evaluation
   and the blessing), then scores the eval split's raw tf.Examples with each model's
   `serving_default` signature and takes the value bucket and the true RQ codes of every example
   from the candidate's `transform_features` signature.
2. `render` turns that `ReportData` into HTML: a header, then the sections `metrics` (the TFMA
   table, candidate beside baseline), `lorenz`, `calibration`, `buckets`, `distribution`, `codes`
   and `coverage`, each plot an inline SVG from `pipeline.plots`. No JavaScript, no external
   resource: the file can be mailed or attached as it is.
"""

import argparse
import dataclasses
import datetime
import glob
import json
import math
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from models import metrics as value_metrics
from pipeline import plots, results
from pipeline.plots import esc

SECTIONS = (
    ("metrics", "Evaluation metrics"),
    ("lorenz", "Ranking: Lorenz curve and Gini"),
    ("calibration", "Calibration by predicted decile"),
    ("buckets", "Error and bias per value bucket"),
    ("distribution", "Distribution of labels and predictions"),
    ("codes", "RQ code usage per level"),
    ("coverage", "Interval coverage"),
)
OVERALL = "overall"
VALUE_BUCKET_KEY = "value_bucket"
CODES_KEY = "rq_codes"
# The serving contract: `lower` and `upper` are the 10th and 90th percentiles of the predictive distribution,
# widened or narrowed after training so that about 80% of held-out labels fall inside (models/calibration.py).
DEFAULT_INTERVAL_QUANTILES = (0.1, 0.9)
BATCH_SIZE = 512

_CANDIDATE_COLOR, _BASELINE_COLOR = plots.PALETTE[0], plots.PALETTE[1]
_LABEL_COLOR = "#222222"


class ReportError(Exception):
    """A plain error for the command line: no metadata store, no evaluated run, an unknown run."""


# ---------------------------------------------------------------------------------------------
# Finding the run in ML Metadata


@dataclasses.dataclass
class RunInfo:
    """Where a run's evaluation and its inputs are, as ML Metadata records them."""

    run_id: str
    run_time_ms: int
    pipeline_name: str
    evaluation_uri: str
    evaluator_state: str
    examples_uri: str
    example_counts: Dict[str, int]
    model_uri: str
    model_id: int
    baseline_uri: Optional[str] = None
    baseline_id: Optional[int] = None
    eval_splits: Tuple[str, ...] = ("eval",)  # the Evaluator's example_splits
    blessed: Optional[bool] = None
    pushed_model: Optional[str] = None
    transform_graph_uri: Optional[str] = None
    trainer_config: Dict[str, object] = dataclasses.field(default_factory=dict)
    transform_config: Dict[str, object] = dataclasses.field(default_factory=dict)
    ingestion_spec: Dict[str, object] = dataclasses.field(default_factory=dict)

    @property
    def label_key(self) -> str:
        for config in (self.trainer_config, self.transform_config, self.ingestion_spec):
            if config.get("label"):
                return str(config["label"])
        return "label"


def _event_keys(event) -> List[str]:
    # One event can name several keys when the same artifact fills several inputs (model and baseline_model).
    return [step.key for step in event.path.steps if step.HasField("key")]


def _artifacts_by_key(store, execution_id: int, event_type) -> Dict[str, list]:
    events = [e for e in store.get_events_by_execution_ids([execution_id]) if e.type == event_type]
    ids = sorted({e.artifact_id for e in events})
    artifacts = {a.id: a for a in store.get_artifacts_by_id(ids)} if ids else {}
    by_key: Dict[str, list] = {}
    for event in events:
        for key in _event_keys(event):
            if event.artifact_id in artifacts:
                by_key.setdefault(key, []).append(artifacts[event.artifact_id])
    return by_key


def _json_property(execution, name: str) -> Dict[str, object]:
    prop = execution.custom_properties.get(name) if execution is not None else None
    if prop is None or not prop.string_value:
        return {}
    try:
        value = json.loads(prop.string_value)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _producer(store, artifact_id: int, output_key: str):
    """The first execution that wrote the artifact under output_key (the original, not a cache hit)."""
    from ml_metadata.proto import metadata_store_pb2

    events = [e for e in store.get_events_by_artifact_ids([artifact_id])
              if e.type == metadata_store_pb2.Event.OUTPUT and output_key in _event_keys(e)]
    if not events:
        return None
    executions = store.get_executions_by_id(sorted({e.execution_id for e in events}))
    return min(executions, key=lambda e: e.id) if executions else None


def _node_name(type_names: Dict[int, str], execution) -> str:
    return type_names.get(execution.type_id, "").rsplit(".", 1)[-1]


def _split_order(name: str):
    order = ("train", "valid", "validation", "eval", "test")
    split = name[:-len("_examples")] if name.endswith("_examples") else name
    return (order.index(split) if split in order else len(order), split)


def _run_info(store, run_context) -> Optional[RunInfo]:
    """The run's evaluation and inputs, or None when the run has no finished Evaluator."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    type_names = {t.id: t.name for t in store.get_execution_types()}
    executions = store.get_executions_by_context(run_context.id)
    done = (pb.Execution.COMPLETE, pb.Execution.CACHED)
    evaluators = [e for e in executions if _node_name(type_names, e) == "Evaluator" and e.last_known_state in done]
    for evaluator in sorted(evaluators, key=lambda e: e.id, reverse=True):
        inputs = _artifacts_by_key(store, evaluator.id, pb.Event.INPUT)
        outputs = _artifacts_by_key(store, evaluator.id, pb.Event.OUTPUT)
        if not outputs.get("evaluation") or not inputs.get("model") or not inputs.get("examples"):
            continue
        evaluation, model, examples = outputs["evaluation"][0], inputs["model"][0], inputs["examples"][0]
        baseline = (inputs.get("baseline_model") or [None])[0]
        blessing = (outputs.get("blessing") or [None])[0]
        blessed = None
        if blessing is not None and "blessed" in blessing.custom_properties:
            blessed = bool(blessing.custom_properties["blessed"].int_value)
        pipeline_type = store.get_context_type("pipeline").id
        pipeline_names = [c.name for c in store.get_contexts_by_execution(evaluator.id) if c.type_id == pipeline_type]
        trainer = _producer(store, model.id, "model")
        transform_graph_uri, transform = None, None
        if trainer is not None:
            graphs = _artifacts_by_key(store, trainer.id, pb.Event.INPUT).get("transform_graph")
            if graphs:
                transform_graph_uri = graphs[0].uri
                transform = _producer(store, graphs[0].id, "transform_graph")
        pushed = None
        for pusher in (e for e in executions if _node_name(type_names, e) == "Pusher" and e.last_known_state in done):
            for artifact in _artifacts_by_key(store, pusher.id, pb.Event.OUTPUT).get("pushed_model", []):
                props = artifact.custom_properties
                if "pushed" in props and props["pushed"].int_value == 1 and "pushed_destination" in props:
                    pushed = props["pushed_destination"].string_value
        counts = {key[:-len("_examples")]: int(value.int_value)
                  for key, value in sorted(examples.custom_properties.items(), key=lambda kv: _split_order(kv[0]))
                  if key.endswith("_examples") and value.HasField("int_value")}
        splits = evaluator.custom_properties.get("example_splits")
        try:
            eval_splits = tuple(json.loads(splits.string_value) or ()) if splits is not None else ()
        except ValueError:
            eval_splits = ()
        return RunInfo(
            run_id=run_context.name,
            run_time_ms=run_context.create_time_since_epoch,
            pipeline_name=pipeline_names[0] if pipeline_names else "",
            evaluation_uri=evaluation.uri,
            evaluator_state="cached" if evaluator.last_known_state == pb.Execution.CACHED else "executed",
            examples_uri=examples.uri,
            example_counts=counts,
            model_uri=model.uri,
            model_id=model.id,
            baseline_uri=baseline.uri if baseline is not None else None,
            baseline_id=baseline.id if baseline is not None else None,
            eval_splits=eval_splits or ("eval",),
            blessed=blessed,
            pushed_model=pushed,
            transform_graph_uri=transform_graph_uri,
            trainer_config=_json_property(trainer, "custom_config"),
            transform_config=_json_property(transform, "custom_config"),
            ingestion_spec=_json_property(_producer(store, examples.id, "examples"), "spec_json"),
        )
    return None


def find_run(metadata_path: str, run: Optional[str] = None) -> RunInfo:
    """The run `run` (id or unique prefix), or the latest run that has an evaluation.

    Raises:
      ReportError: no metadata store, no run with an evaluation, an unknown or ambiguous run id,
        or a run that stopped before the Evaluator.
    """
    if not os.path.exists(metadata_path):  # before importing TFMA: a plain error should be quick
        raise ReportError(f"no metadata store at {metadata_path!r}: run the pipeline first (rqvalue run)")

    try:
        store = results.open_store(metadata_path)
    except FileNotFoundError as e:
        raise ReportError(str(e)) from None
    try:
        runs = store.get_contexts_by_type("pipeline_run")
    except Exception:  # an empty store has no such type yet
        runs = []
    runs = sorted(runs, key=lambda c: (c.create_time_since_epoch, c.id), reverse=True)
    if run:
        chosen = [c for c in runs if c.name == run] or [c for c in runs if c.name.startswith(run)]
        if not chosen:
            known = ", ".join(c.name for c in runs[:5]) or "none"
            raise ReportError(f"unknown run {run!r} in {metadata_path} (latest runs: {known})")
        if len(chosen) > 1:
            raise ReportError(f"run {run!r} is ambiguous: it matches {', '.join(c.name for c in chosen)}")
        info = _run_info(store, chosen[0])
        if info is None:
            raise ReportError(f"run {chosen[0].name!r} has no evaluation: it stopped before the Evaluator "
                              "(see the run's output; data validation stops a run before training)")
        return info
    for context in runs:
        info = _run_info(store, context)
        if info is not None:
            return info
    raise ReportError(f"no run with an evaluation in {metadata_path}: run the pipeline first (rqvalue run)")


# ---------------------------------------------------------------------------------------------
# Scoring the eval split


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

    run: RunInfo
    labels: np.ndarray
    value_bucket: np.ndarray
    candidate: ModelScores
    baseline: Optional[ModelScores] = None
    true_codes: Optional[np.ndarray] = None  # [N, L] Transform's codes of the true labels
    codebook_sizes: Optional[List[int]] = None
    value_bucket_source: str = "transform_features"
    interval_quantiles: Tuple[float, float] = DEFAULT_INTERVAL_QUANTILES
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


def _interval_quantiles() -> Tuple[float, float]:
    for module in ("models.base", "models.rqreg"):
        try:
            quantiles = getattr(__import__(module, fromlist=["INTERVAL_QUANTILES"]), "INTERVAL_QUANTILES")
            return float(quantiles[0]), float(quantiles[1])
        except Exception:  # pylint: disable=broad-except  # the model code is not needed to draw the page
            continue
    return DEFAULT_INTERVAL_QUANTILES


def _validation_failures(evaluation_uri: str) -> List[str]:
    """Short descriptions of the thresholds the candidate failed (empty when it passed or none is recorded)."""
    try:
        import tensorflow_model_analysis as tfma

    
        result = tfma.load_validation_result(evaluation_uri)
    except Exception:  # no validation file (older TFMA layouts): nothing to say
        return []
    failures = []
    for per_slice in result.metric_validations_per_slice:
        where = results.slice_name(tfma.slicer.deserialize_slice_key(per_slice.slice_key))
        for failure in per_slice.failures:
            value = failure.metric_value.double_value.value if failure.metric_value.HasField("double_value") else None
            text = f"{failure.metric_key.name} on {where}"
            if value is not None:
                text += f" = {value:.4g}"
            if failure.message:
                text += f" ({failure.message})"
            failures.append(text)
    return failures


def gather(metadata_path: str, run: Optional[str] = None, batch_size: int = BATCH_SIZE) -> ReportData:
    """Reads the run from ML Metadata and scores its eval split with the candidate (and baseline) model."""

    info = find_run(metadata_path, run)
    serialized = read_split(info.examples_uri, info.eval_splits)
    labels = read_labels(serialized, info.label_key)
    keep = np.isfinite(labels)
    if not keep.all():  # validation stops runs with missing labels; stay safe anyway
        serialized = [s for s, k in zip(serialized, keep) if k]
        labels = labels[keep]
    if labels.size == 0:
        raise ReportError(f"the eval split of run {info.run_id!r} has no labelled example")

    candidate_metrics = results.load_metrics(info.evaluation_uri, "candidate")
    candidate, transformed = score_model(serving_model_path(info.model_uri), serialized, "candidate",
                                         candidate_metrics, batch_size, with_transform=True)
    baseline = None
    if info.baseline_uri:
        baseline_metrics = results.load_metrics(info.evaluation_uri, "baseline")
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
        value_bucket_source=source, interval_quantiles=_interval_quantiles(),
        validation_failures=_validation_failures(info.evaluation_uri),
        generated_at=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"))


# ---------------------------------------------------------------------------------------------
# Rendering

_METRIC_COLUMNS = (
    # key, header, format, which value is better (+1 higher, -1 lower, 0 neither)
    ("example_count", "n", "{:,.0f}", 0),
    ("mean_label", "mean label", "{:,.3f}", 0),
    ("mean_prediction", "mean pred.", "{:,.3f}", 0),
    ("mean_absolute_error", "MAE", "{:,.3f}", -1),
    ("root_mean_squared_error", "RMSE", "{:,.3f}", -1),
    ("normalized_gini", "norm. Gini", "{:.3f}", 1),
    ("spearman", "Spearman", "{:.3f}", 1),
    ("xauc", "XAUC", "{:.3f}", 1),
    ("interval_coverage", "interval cov.", "{:.3f}", 0),
)

_CSS = """
:root { --fg:#1f2328; --muted:#57606a; --line:#d8dee4; --bg:#f6f8fa; --accent:#0072b2; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
  font:14px/1.5 -apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif; }
header { background:#fff; border-bottom:1px solid var(--line); padding:20px 32px 12px; }
h1 { font-size:22px; margin:0 0 4px; }
.subtitle { color:var(--muted); margin:0 0 14px; }
.facts { display:grid; grid-template-columns:repeat(auto-fill,minmax(260px,1fr)); gap:6px 24px; margin:0; }
.facts div { min-width:0; }
.facts dt { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.facts dd { margin:0; overflow-wrap:anywhere; font-weight:500; }
.path { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:12px; font-weight:400; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; }
.yes { background:#dafbe1; color:#116329; } .no { background:#ffebe9; color:#a40e26; }
.na { background:#eaeef2; color:#57606a; }
nav { margin-top:14px; font-size:13px; }
nav a { color:var(--accent); text-decoration:none; margin-right:14px; white-space:nowrap; }
main { padding:8px 32px 32px; max-width:1280px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:16px 20px 18px;
  margin:18px 0; }
h2 { font-size:17px; margin:0 0 6px; }
.caption { color:var(--muted); margin:0 0 12px; max-width:980px; }
.charts { display:flex; flex-wrap:wrap; gap:12px 20px; }
.charts > svg { flex:1 1 440px; width:100%; height:auto; }
table.metrics { border-collapse:collapse; font-variant-numeric:tabular-nums; font-size:13px; }
table.metrics th, table.metrics td { padding:4px 10px; border-bottom:1px solid var(--line); text-align:right; }
table.metrics th { background:var(--bg); font-weight:600; }
table.metrics td.slice, table.metrics th.slice { text-align:left; }
table.metrics td.model { text-align:left; color:var(--muted); }
table.metrics tr.first td { border-top:2px solid var(--line); }
table.metrics td.better { font-weight:700; color:#116329; }
.note { color:var(--muted); font-size:13px; }
.warn { color:#a40e26; }
footer { color:var(--muted); font-size:12px; padding:0 32px 24px; }
"""


def _bucket_ids(data: ReportData) -> List[int]:
    return sorted(int(b) for b in np.unique(data.value_bucket))


def _bucket_name(bucket: int) -> str:
    return f"{bucket} (zeros)" if bucket == 0 else str(bucket)


def _slices(data: ReportData) -> List[Tuple[str, np.ndarray]]:
    """('overall', all rows) and ('0', rows of bucket 0), ... for the per-bucket plots."""
    rows = [(OVERALL, np.ones(data.labels.shape, dtype=bool))]
    rows += [(_bucket_name(b), data.value_bucket == b) for b in _bucket_ids(data)]
    return rows


def _model_style(scores: ModelScores) -> Tuple[str, bool]:
    return (_CANDIDATE_COLOR, False) if scores.role == "candidate" else (_BASELINE_COLOR, True)


def _badge(value: Optional[bool], yes: str = "yes", no: str = "no") -> str:
    if value is None:
        return '<span class="badge na">unknown</span>'
    return f'<span class="badge yes">{yes}</span>' if value else f'<span class="badge no">{no}</span>'


def _format_time(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _header(data: ReportData) -> str:
    run = data.run
    labels = data.labels
    spec = run.ingestion_spec
    facts = [
        ("Run", esc(run.run_id)),
        ("Run started", esc(_format_time(run.run_time_ms))),
        ("Pipeline", esc(run.pipeline_name or "unknown")),
        ("Data set (spine)", f'<span class="path">{esc(spec.get("spine", "unknown"))}</span>'),
        ("Feast repository", f'<span class="path">{esc(spec.get("feast_repo", "unknown"))}</span>'),
        ("Label", esc(run.label_key)),
        ("Candidate model", f'<span class="path">{esc(data.candidate.path)}</span>'),
        ("Baseline model", f'<span class="path">{esc(data.baseline.path)}</span>' if data.baseline
         else "none (no earlier blessed model)"),
        ("Blessed", _badge(run.blessed) + (f' <span class="note">failed: {esc("; ".join(data.validation_failures))}'
                                           "</span>" if data.validation_failures else "")),
        ("Pushed to", f'<span class="path">{esc(run.pushed_model)}</span>' if run.pushed_model else "not pushed"),
        ("Examples per split", " · ".join(f"{split} {count:,}" for split, count in run.example_counts.items())
         or "unknown"),
        (f"Scored examples ({'+'.join(run.eval_splits)})", f"{labels.size:,}"),
        ("Zero labels", f"{int((labels == 0).sum()):,} ({(labels == 0).mean():.1%})"),
        ("Mean / max label", f"{labels.mean():,.2f} / {labels.max():,.2f}"),
        ("Evaluation", f'<span class="path">{esc(run.evaluation_uri)}</span>'
                       + (" (from cache)" if run.evaluator_state == "cached" else "")),
    ]
    items = "\n".join(f"<div><dt>{title}</dt><dd>{value}</dd></div>" for title, value in facts)
    nav = " ".join(f'<a href="#{sid}">{i}. {esc(title)}</a>' for i, (sid, title) in enumerate(SECTIONS, 1))
    return (f"<header>\n<h1>rqvalue evaluation report</h1>\n"
            f'<p class="subtitle">{esc(run.pipeline_name or "pipeline")} · run {esc(run.run_id)} · '
            f"{esc('+'.join(run.eval_splits))} split, {labels.size:,} examples</p>\n<dl class=\"facts\">\n{items}\n</dl>\n<nav>{nav}</nav>\n"
            "</header>")


def _section(section_id: str, caption: str, body: str) -> str:
    number = [s for s, _ in SECTIONS].index(section_id) + 1
    title = dict(SECTIONS)[section_id]
    return (f'<section id="{section_id}">\n<h2>{number}. {esc(title)}</h2>\n<p class="caption">{caption}</p>\n'
            f"{body}\n</section>")


def _charts(*svgs: str) -> str:
    return '<div class="charts">\n' + "\n".join(svgs) + "\n</div>"


def _metrics_section(data: ReportData) -> str:
    models = [m for m in data.models() if m.metrics]
    slice_names = sorted({name for m in models for name in m.metrics}, key=results.slice_order)
    ranges = {}
    for b in _bucket_ids(data):
        rows = data.labels[data.value_bucket == b]
        ranges[f"{VALUE_BUCKET_KEY}={b}"] = "0" if b == 0 else f"{rows.min():,.2f} – {rows.max():,.2f}"
    head = "".join(f"<th>{esc(title)}</th>" for _, title, _, _ in _METRIC_COLUMNS)
    model_head = "<th class=\"slice\">model</th>" if len(models) > 1 else ""
    lines = [f'<table class="metrics">\n<thead><tr><th class="slice">slice</th><th class="slice">eval labels</th>'
             f"{model_head}{head}</tr></thead>\n<tbody>"]
    for name in slice_names:
        for i, scores in enumerate(models):
            values = scores.metrics.get(name, {})
            cells = []
            for key, _, fmt, direction in _METRIC_COLUMNS:
                value = values.get(key)
                where = f'data-slice="{esc(name)}" data-model="{esc(scores.role)}" data-metric="{key}"'
                if value is None:
                    cells.append(f"<td {where}>–</td>")
                    continue
                better = ""
                if direction and len(models) > 1 and math.isfinite(value):
                    others = [m.metrics.get(name, {}).get(key) for m in models if m is not scores]
                    others = [o for o in others if o is not None and math.isfinite(o)]
                    if others and all(value * direction > o * direction for o in others):
                        better = ' class="better"'
                text = fmt.format(value) if math.isfinite(value) else str(value)
                cells.append(f'<td{better} {where} data-value="{value!r}">{text}</td>')
            first = ' class="first"' if i == 0 else ""
            slice_cells = (f'<td class="slice" rowspan="{len(models)}">{esc(name)}</td>'
                           f'<td class="slice" rowspan="{len(models)}">{esc(ranges.get(name, "all"))}</td>'
                           if i == 0 else "")
            model_cell = f'<td class="model">{scores.role}</td>' if len(models) > 1 else ""
            lines.append(f"<tr{first}>{slice_cells}{model_cell}{''.join(cells)}</tr>")
    lines.append("</tbody>\n</table>")
    verdict = {True: "The candidate was <b>blessed</b>: it cleared the gate on the overall slice.",
               False: "The candidate was <b>not blessed</b>: it missed a threshold of the gate.",
               None: "No blessing was recorded."}[data.run.blessed]
    caption = ("TFMA's evaluation on the eval split, as recorded by the Evaluator: overall and per value bucket "
               f"(bucket 0 holds the zero labels; higher buckets hold larger labels). {verdict}")
    if len(models) > 1:
        caption += " The better of candidate and baseline is in <b class=\"better\">bold green</b>."
    else:
        caption += " There was no baseline: no earlier model had been blessed."
    return _section("metrics", caption, "\n".join(lines))


def _downsample(x: np.ndarray, y: np.ndarray, points: int = 400) -> Tuple[List[float], List[float]]:
    if x.size <= points:
        return x.tolist(), y.tolist()
    index = np.unique(np.linspace(0, x.size - 1, points).round().astype(int))
    return x[index].tolist(), y[index].tolist()


def _gain_curve(labels: np.ndarray, order: np.ndarray) -> Tuple[List[float], List[float]]:
    share = np.concatenate([[0.0], np.cumsum(labels[order]) / labels.sum()])
    population = np.arange(labels.size + 1) / labels.size
    return _downsample(population, share)


def _lorenz_section(data: ReportData) -> str:
    labels = data.labels
    caption = ("Customers are ranked by predicted value, highest first; the curve shows what share of the total "
               "actual value the top x% of them hold. The higher the curve, the better the ranking: the perfect "
               "ranking (sorted by the true label) is the ceiling, the diagonal is a random ranking. Normalized "
               "Gini = the model's area above the diagonal divided by the perfect ranking's.")
    if labels.sum() <= 0:
        return _section("lorenz", caption, '<p class="note">All eval labels are zero: there is nothing to rank.</p>')
    series = []
    for scores in data.models():
        color, dash = _model_style(scores)
        gini = value_metrics.normalized_gini(labels, scores.prediction)
        x, y = _gain_curve(labels, np.argsort(-scores.prediction, kind="stable"))
        series.append(plots.Series(f"{scores.role} (normalized Gini {gini:.3f})", y, x=x, color=color, dash=dash))
    x, y = _gain_curve(labels, np.argsort(-labels, kind="stable"))
    series.append(plots.Series("perfect ranking (1.000)", y, x=x, color=_LABEL_COLOR, width=1.5))
    series.append(plots.Series("random (0.000)", [0.0, 1.0], x=[0.0, 1.0], color="#999999", dash=True, width=1.5))
    svg = plots.line_chart(series, title="Cumulative share of total value, customers ranked by prediction",
                           x_label="share of customers (ranked by prediction, highest first)",
                           y_label="share of total label", x_range=(0, 1), y_range=(0, 1),
                           x_format=plots.fmt_percent, y_format=plots.fmt_percent, width=760, height=460)
    return _section("lorenz", caption, _charts(svg))


def _calibration_section(data: ReportData) -> str:
    labels = data.labels
    groups = min(10, labels.size)
    series = []
    for scores in data.models():
        color, dash = _model_style(scores)
        table = value_metrics.decile_calibration(labels, scores.prediction, n=groups)
        x = list(range(1, groups + 1))
        series.append(plots.Series(f"{scores.role}: mean prediction", table["pred_mean"].tolist(), x=x,
                                   color=color, dash=dash, markers=True))
        series.append(plots.Series(f"{scores.role}: mean label", table["label_mean"].tolist(), x=x,
                                   color=_LABEL_COLOR if scores.role == "candidate" else "#8c8c8c",
                                   dash=dash, markers=True))
    svg = plots.line_chart(series, title="Mean prediction and mean label per predicted decile",
                           x_label="decile of the prediction (1 = lowest predictions)",
                           y_label="mean value (log scale)", y_log=True, x_range=(0.5, groups + 0.5),
                           x_ticks=[(i, str(i)) for i in range(1, groups + 1)], width=760, height=440)
    caption = ("Eval examples are sorted by prediction and cut into ten groups of equal size. Within each, the "
               "mean prediction (coloured) is drawn beside the mean actual label (grey/black). Where the pairs "
               "coincide the model is calibrated; a prediction line above the label line over-predicts. The y "
               "axis is logarithmic; a decile whose mean label is exactly 0 cannot be drawn on it and is left out.")
    return _section("calibration", caption, _charts(svg))


def _buckets_section(data: ReportData) -> str:
    slices = _slices(data)
    names = [name for name, _ in slices]
    mae_series, bias_series = [], []
    for scores in data.models():
        color, _ = _model_style(scores)
        mae = [float(np.mean(np.abs(scores.prediction[rows] - data.labels[rows]))) for _, rows in slices]
        bias = [float(np.mean(scores.prediction[rows]) - np.mean(data.labels[rows])) for _, rows in slices]
        mae_series.append(plots.Series(scores.role, mae, color=color))
        bias_series.append(plots.Series(scores.role, bias, color=color))
    mae_svg = plots.grouped_bars(names, mae_series, title="Mean absolute error per value bucket",
                                 x_label="value bucket", y_label="MAE (label units)", legend=True)
    bias_svg = plots.grouped_bars(names, bias_series, title="Bias (mean prediction − mean label)",
                                  x_label="value bucket", y_label="bias (label units)", legend=True)
    caption = ("Computed from the scored eval split. Left: mean absolute error overall and per value bucket. Right: "
               "bias, the mean prediction minus the mean label: above zero the model over-predicts the bucket, "
               "below zero it under-predicts. Zero-inflated, heavy-tailed targets typically show positive bias on "
               "the zero bucket and negative bias on the top bucket; a good model shrinks both.")
    return _section("buckets", caption, _charts(mae_svg, bias_svg))


def _log1p_ticks(top: float, min_gap: float) -> List[Tuple[float, str]]:
    """Ticks for an axis of log1p(value) from 0 to top, labelled in label units, at least min_gap apart."""
    ticks: List[Tuple[float, str]] = []
    last = 0.0  # the axis starts at log1p(0); exact zeros have their own bar, so no "0" tick here
    for exponent in range(-3, 13):
        for mantissa in (1, 2, 5):
            value = mantissa * 10.0 ** exponent
            position = math.log1p(value)
            if position > top * 1.0001:
                return ticks
            if position - last >= min_gap:
                ticks.append((position, plots.fmt_number(value)))
                last = position
    return ticks


def _distribution_section(data: ReportData) -> str:
    sets = [("eval label", data.labels, _LABEL_COLOR),
            ("predicted mean (candidate)", data.candidate.prediction, _CANDIDATE_COLOR)]
    if data.candidate.median is not None:
        sets.append(("predicted median (candidate)", data.candidate.median, plots.PALETTE[2]))
    positives = [np.log1p(values[values > 0]) for _, values, _ in sets]
    top = max([float(p.max()) for p in positives if p.size] or [1.0])
    edges = np.linspace(0.0, top, 36).tolist()
    series = [plots.Series(name, p.tolist(), color=color) for (name, _, color), p in zip(sets, positives)]
    zeros = [int((values <= 0).sum()) for _, values, _ in sets]
    svg = plots.histogram(series, bins=edges, extra_counts=zeros, extra_label="= 0",
                          title="Labels and predictions, log1p scale (zeros on the left)",
                          x_label="value (log1p scale, ticks in label units)", y_label="examples",
                          x_ticks=_log1p_ticks(top, top / 14), y_log=True, width=980, height=420)
    counts = "; ".join(f"{name}: {z:,} zeros" for (name, _, _), z in zip(sets, zeros))
    caption = ("How the values are distributed: each series is a histogram of log1p(value) over the eval split, "
               "so the heavy tail fits on one axis (ticks are in label units), and the counts are on a log scale so "
               "that sparse tail bins stay visible. Exact zeros are not on a log axis: they are counted in the "
               "separate bars on the left. The predicted mean is rarely exactly 0 even where the label is; the "
               "median of the predictive distribution can be. A good model's predictive spread resembles the "
               f"labels'; a narrow predicted-mean histogram means it hedges towards the average. ({esc(counts)})")
    return _section("distribution", caption, _charts(svg))


def _codes_section(data: ReportData) -> str:
    true_codes, predicted = data.true_codes, data.candidate.codes
    caption = ("Share of eval examples that take each code, level by level (level 1 is the coarsest; in level 1, "
               "code 0 is the exact zero). The Transform series are the codes of the true labels, the targets the "
               "decoder learns; the model series are the codes it picks greedily when serving. Codes no example "
               "takes waste capacity; a model series piled onto fewer codes than its target is under-dispersed.")
    if true_codes is None and predicted is None:
        return _section("codes", caption, '<p class="note">Neither Transform nor the model provides RQ codes for '
                                          "this run (the model kind does not use a codebook).</p>")
    levels = max(c.shape[1] for c in (true_codes, predicted) if c is not None)
    svgs = []
    for level in range(levels):
        size = data.codebook_sizes[level] if data.codebook_sizes and level < len(data.codebook_sizes) else 0
        for codes in (true_codes, predicted):
            if codes is not None and level < codes.shape[1]:
                size = max(size, int(codes[:, level].max()) + 1)
        series = []
        if true_codes is not None and level < true_codes.shape[1]:
            counts = np.bincount(true_codes[:, level], minlength=size)
            series.append(plots.Series("Transform (true label)", (counts / counts.sum()).tolist(), color=_LABEL_COLOR))
        if predicted is not None and level < predicted.shape[1]:
            counts = np.bincount(predicted[:, level], minlength=size)
            series.append(plots.Series("model (greedy codes)", (counts / counts.sum()).tolist(),
                                       color=_CANDIDATE_COLOR))
        used = [int((np.asarray(s.y) > 0).sum()) for s in series]
        title = f"Level {level + 1}: {size} codes, " + " / ".join(f"{u} used" for u in used)
        svgs.append(plots.grouped_bars([str(c) for c in range(size)], series, title=title, x_label="code",
                                       y_label="share of examples", y_format=plots.fmt_percent, legend=True,
                                       max_labels=16, width=560, height=320))
    note = "" if predicted is not None else ('<p class="note">The candidate does not serve <code>codes</code>: only '
                                             "Transform's codes are shown.</p>")
    return _section("codes", caption, note + _charts(*svgs))


def _coverage_section(data: ReportData) -> str:
    nominal = data.nominal_coverage
    low_q, high_q = data.interval_quantiles
    caption = (f"Share of eval labels inside the model's interval [lower, upper], the {low_q:.0%} and {high_q:.0%} "
               f"quantiles of its predictive distribution as calibrated on the valid split after training, overall "
               f"and per value bucket. A calibrated interval "
               f"covers {nominal:.0%} of the labels overall (the dashed line); below it the intervals are too "
               "narrow, above it too wide. Per bucket the coverage is conditional on the true value, so it is "
               "expected to drop in the extreme buckets.")
    models = [m for m in data.models() if m.lower is not None and m.upper is not None]
    if not models:
        return _section("coverage", caption, '<p class="note">The model does not serve <code>lower</code> and '
                                             "<code>upper</code>: no interval to check.</p>")
    slices = _slices(data)
    series = []
    for scores in models:
        color, _ = _model_style(scores)
        coverage = [value_metrics.interval_coverage(data.labels[rows], scores.lower[rows], scores.upper[rows])
                    if rows.any() else float("nan") for _, rows in slices]
        series.append(plots.Series(scores.role, coverage, color=color))
    svg = plots.grouped_bars([name for name, _ in slices], series, title="Coverage of the predictive interval",
                             x_label="value bucket", y_label="share of labels inside [lower, upper]",
                             y_range=(0.0, 1.0), y_format=plots.fmt_percent, legend=True,
                             hlines=[plots.HLine(nominal, f"nominal {nominal:.0%}")], value_labels=True,
                             width=540, height=380)
    width_series = []
    for scores in models:
        color, _ = _model_style(scores)
        widths = [float(np.mean(scores.upper[rows] - scores.lower[rows])) for _, rows in slices]
        width_series.append(plots.Series(scores.role, widths, color=color))
    width_svg = plots.grouped_bars([name for name, _ in slices], width_series, title="Mean interval width",
                                   x_label="value bucket", y_label="upper − lower (label units)", legend=True,
                                   width=540, height=380)
    return _section("coverage", caption, _charts(svg, width_svg))


def render(data: ReportData) -> str:
    """The report page as one HTML string (no external resources, no scripts)."""
    sections = [_metrics_section(data), _lorenz_section(data), _calibration_section(data), _buckets_section(data),
                _distribution_section(data), _codes_section(data), _coverage_section(data)]
    title = f"rqvalue report · {data.run.pipeline_name or 'pipeline'} · run {data.run.run_id}"
    bucket_note = ("" if data.value_bucket_source == "transform_features" else
                   " Value buckets were recomputed from the labels (the model has no transform_features signature).")
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        _header(data),
        "<main>",
        *sections,
        "</main>",
        f"<footer>Generated by <code>rqvalue report</code> at {esc(data.generated_at)} from "
        f"<span class=\"path\">{esc(data.run.evaluation_uri)}</span>. Plots are computed from the candidate"
        f"{' and baseline' if data.baseline else ''} SavedModel's serving_default outputs on the eval split; the "
        f"metrics table is TFMA's.{bucket_note}</footer>",
        "</body>",
        "</html>",
        "",
    ])


def write_report(output_dir: str, run: Optional[str] = None, out: str = "report.html",
                 batch_size: int = BATCH_SIZE) -> str:
    """Gathers, renders and writes the report of a run in `output_dir`; returns the written path."""
    data = gather(os.path.join(output_dir, "metadata.sqlite"), run, batch_size)
    page = render(data)
    path = os.path.abspath(out)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    return path


# ---------------------------------------------------------------------------------------------
# Command line


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Registers `report` on the `rqvalue` sub-command parsers."""
    parser = subparsers.add_parser(
        "report", help="write a self-contained HTML report of a run's evaluation",
        description="Write one self-contained HTML file about a run: TFMA metrics, Lorenz curve, calibration, "
                    "error per value bucket, distributions, RQ code usage and interval coverage.")
    parser.add_argument("run", nargs="?", default=None,
                        help="pipeline run id (or a unique prefix); default: the latest run with an evaluation")
    parser.add_argument("--output-dir", default="runs",
                        help="the run folder holding metadata.sqlite (default: runs)")
    parser.add_argument("--out", default="report.html", help="HTML file to write (default: report.html)")
    return parser


def main(args) -> int:
    """Writes the report; prints its path. Plain errors go to stderr with exit status 2."""
    try:
        path = write_report(os.path.abspath(args.output_dir), run=args.run, out=args.out)
    except ReportError as e:
        print(f"rqvalue report: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":  # `python -m pipeline.report report ...`, before the sub-command is wired into rqvalue
    from pipeline import cli

    cli._quiet()  # pylint: disable=protected-access
    _parser = argparse.ArgumentParser(prog="rqvalue")
    add_parser(_parser.add_subparsers(dest="command", required=True))
    sys.exit(main(_parser.parse_args()))
