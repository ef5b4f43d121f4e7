"""`rqvalue inspect`: what the runs in an output folder did and produced, from ML Metadata and the pipeline root.

Views (each one takes RUN, a short id from `rqvalue inspect runs` or a full run name; default the
latest run):

  runs        every run: when, status, and per component executed / cached / failed
  artifacts   the artifacts a run produced or used, with their useful properties
  metrics     the evaluation per slice, candidate beside baseline, blessing, failed thresholds
  codebook    the RQ centroids in transformed and label units, and how often each code is used
  anomalies   what ExampleValidator found
  schema      the schema the run validated against
  stats       StatisticsGen's statistics per split

Each view gathers plain dicts and lists first; `_render` prints them as JSON (`--json`) or as
aligned text tables. Errors are `InspectError`s with a message that says what to do next.
ML Metadata is opened read-only, and TensorFlow, TFMA and TFT are imported only by the views that
need them, so `rqvalue inspect runs` stays quick.
"""

import argparse
import dataclasses
import datetime
import glob
import json
import math
import os
import re
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import results

METADATA_FILE = "metadata.sqlite"
PIPELINE_ROOT = "pipeline_root"
DEFAULT_OUTPUT_DIR = "runs"
_MATRIX_RUNS = 10  # runs shown side by side in the text view of `runs`

_Execution = metadata_store_pb2.Execution
_Event = metadata_store_pb2.Event

# Execution state -> what the views call it.
_STATES = {
    _Execution.COMPLETE: "executed",
    _Execution.CACHED: "cached",
    _Execution.FAILED: "failed",
    _Execution.CANCELED: "canceled",
    _Execution.NEW: "running",
    _Execution.RUNNING: "running",
}
_DONE = ("executed", "cached")

# Components in pipeline order (pipeline/pipeline.py); others follow in order of first execution.
_COMPONENT_ORDER = ("FeatureStoreExampleGen", "StatisticsGen", "ImportSchemaGen", "SchemaGen", "LabelRules",
                    "ExampleValidator", "ValidationGate", "rolling_window_resolver", "analyzer_cache_resolver",
                    "warm_start_resolver", "Transform", "Trainer",
                    "latest_blessed_model_resolver", "Evaluator", "Pusher")


class InspectError(Exception):
    """Nothing to show; the message says why and what to do next."""


# ----------------------------------------------------------------------------------------------
# ML Metadata: runs, their executions and artifacts


@dataclasses.dataclass
class _Step:
    """One component's execution within a run."""

    component: str
    state: str
    execution: Any  # metadata_store_pb2.Execution


@dataclasses.dataclass
class _Run:
    short_id: int
    name: str
    pipeline: str
    created_ms: int
    steps: List[_Step]

    @property
    def label(self) -> str:
        return f"run {self.short_id} ({self.name})"

    @property
    def failed(self) -> Optional[_Step]:
        return next((s for s in self.steps if s.state in ("failed", "canceled")), None)

    @property
    def status(self) -> str:
        if self.failed:
            return "failed"
        if not self.steps or any(s.state == "running" for s in self.steps):
            return "running"
        return "complete"

    def step(self, component: str) -> Optional[_Step]:
        return next((s for s in reversed(self.steps) if s.component == component), None)


class _Store:
    """The runs of one output folder, read from its ML Metadata store (read-only)."""

    def __init__(self, output_dir: str):
        self.output_dir = output_dir
        path = os.path.join(output_dir, METADATA_FILE)
        if not os.path.isfile(path):
            raise InspectError(f"no runs under {output_dir}: run `rqvalue run --output-dir {output_dir}` first")
        empty = InspectError(f"no runs recorded in {path}: run `rqvalue run --output-dir {output_dir}` first")
        if os.path.getsize(path) == 0:  # created by a run that has not written anything yet
            raise empty
        self.mlmd = _open_readonly(path)
        self.components = self._components()
        self.runs = self._runs()
        if not self.runs:
            raise empty
        self._run_of = {s.execution.id: run for run in self.runs for s in run.steps}
        self._types = {t.id: t.name for t in self.mlmd.get_artifact_types()}
        self._artifacts: Dict[int, List[Dict[str, Any]]] = {}  # short run id -> artifacts()

    def _components(self) -> Dict[int, tuple]:
        """Execution id -> (pipeline name, component id), from the 'node' contexts."""
        result = {}
        for node in self.mlmd.get_contexts_by_type("node"):
            pipeline, _, component = node.name.partition(".")
            for execution in self.mlmd.get_executions_by_context(node.id):
                result[execution.id] = (pipeline, component)
        return result

    def _runs(self) -> List[_Run]:
        runs = []
        contexts = sorted(self.mlmd.get_contexts_by_type("pipeline_run"), key=lambda c: c.id)
        for short_id, context in enumerate(contexts, start=1):
            executions = sorted(self.mlmd.get_executions_by_context(context.id), key=lambda e: e.id)
            steps = [_Step(self.components.get(e.id, ("", "?"))[1], _STATES.get(e.last_known_state, "unknown"), e)
                     for e in executions]
            pipeline = self.components.get(executions[0].id, ("", ""))[0] if executions else ""
            runs.append(_Run(short_id, context.name, pipeline, context.create_time_since_epoch, steps))
        return runs

    def run(self, ref: Optional[str]) -> _Run:
        """The run with this short id or full name; the latest when ref is None."""
        if ref is None:
            return self.runs[-1]
        for run in self.runs:
            if ref == str(run.short_id) or ref == run.name:
                return run
        known = ", ".join(f"{r.short_id} ({r.name})" for r in self.runs[-_MATRIX_RUNS:])
        more = f" and {len(self.runs) - _MATRIX_RUNS} older" if len(self.runs) > _MATRIX_RUNS else ""
        raise InspectError(f"no run {ref!r} under {self.output_dir}; known runs: {known}{more}. "
                           f"Pass a run id or full name from `rqvalue inspect runs --output-dir {self.output_dir}`")

    def artifacts(self, run: _Run) -> List[Dict[str, Any]]:
        """Every artifact the run's executions produced (outputs, reused ones for cached steps) or used."""
        if run.short_id not in self._artifacts:
            self._artifacts[run.short_id] = self._load_artifacts(run)
        return self._artifacts[run.short_id]

    def _load_artifacts(self, run: _Run) -> List[Dict[str, Any]]:
        steps = {s.execution.id: s for s in run.steps}
        events = sorted(self.mlmd.get_events_by_execution_ids(list(steps)),
                        key=lambda e: (e.execution_id, e.type != _Event.OUTPUT))
        roles: Dict[int, Dict[str, Any]] = {}
        used_by: Dict[int, List[str]] = {}
        for event in events:
            step, key = steps[event.execution_id], _event_key(event)
            if event.type == _Event.OUTPUT:
                roles.setdefault(event.artifact_id, {"component": step.component, "key": key, "in_run": step.state})
            elif event.type == _Event.INPUT:
                roles.setdefault(event.artifact_id, {"component": None, "key": None,
                                                     "in_run": f"input: {step.component}.{key}"})
                used_by.setdefault(event.artifact_id, []).append(f"{step.component}.{key}")
        if not roles:
            return []
        origins = self._origins(list(roles))
        records = []
        for artifact in self.mlmd.get_artifacts_by_id(list(roles)):
            role = roles[artifact.id]
            origin_component, origin_key, origin_run = origins.get(artifact.id, (None, None, None))
            records.append({
                "id": artifact.id,
                "type": self._types.get(artifact.type_id, "?"),
                "component": role["component"] or origin_component,
                "key": role["key"] or origin_key,
                "in_run": role["in_run"],
                "produced_in_run": origin_run,
                "used_by": used_by.get(artifact.id, []),
                "state": metadata_store_pb2.Artifact.State.Name(artifact.state),
                "uri": artifact.uri,
                "properties": _useful_properties(artifact),
            })
        order = {artifact_id: i for i, artifact_id in enumerate(roles)}
        return sorted(records, key=lambda r: order[r["id"]])

    def _origins(self, artifact_ids: List[int]) -> Dict[int, tuple]:
        """Artifact id -> (component, output key, short run id) of the execution that first wrote it."""
        origins = {}
        for event in sorted(self.mlmd.get_events_by_artifact_ids(artifact_ids), key=lambda e: e.execution_id):
            if event.type == _Event.OUTPUT and event.artifact_id not in origins:
                run = self._run_of.get(event.execution_id)
                component = self.components.get(event.execution_id, ("", None))[1]
                origins[event.artifact_id] = (component, _event_key(event), run.short_id if run else None)
        return origins

    def artifact(self, run: _Run, type_name: str, key: str, needed_by: str, component: str) -> Dict[str, Any]:
        """The run's artifact of this type and output key; an InspectError saying why when it has none."""
        for record in sorted(self.artifacts(run), key=lambda r: r["component"] != component):  # its own first
            if record["type"] == type_name and record["key"] == key:
                return dict(record, path=self.local_path(record["uri"]))
        raise InspectError(_not_reached(run, component, needed_by, self.output_dir))

    def local_path(self, uri: str) -> str:
        """The artifact's folder; if the output folder was moved, the same folder under its new pipeline root."""
        marker = os.sep + PIPELINE_ROOT + os.sep
        if not os.path.exists(uri) and marker in uri:
            moved = os.path.join(self.output_dir, PIPELINE_ROOT, uri.split(marker, 1)[1])
            if os.path.exists(moved):
                return moved
        if not os.path.exists(uri):
            raise InspectError(f"artifact folder {uri} is gone (deleted or moved): run the pipeline again "
                               f"with `rqvalue run --output-dir {self.output_dir} --no-cache` to write it anew")
        return uri


def _open_readonly(path: str) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    try:
        return metadata_store.MetadataStore(config)
    except Exception as e:  # not an ML Metadata database, or one from an incompatible version
        reason = re.sub(r"\s*query:\s+[A-Z]+ .*", "", str(e), flags=re.S).strip()  # drop the SQL text
        raise InspectError(f"cannot read {path} as an ML Metadata store ({reason}); "
                           f"run `rqvalue run` with a new --output-dir") from None


def _event_key(event) -> Optional[str]:
    return next((step.key for step in event.path.steps if step.HasField("key")), None)


def _value(proto_value) -> Any:
    kind = proto_value.WhichOneof("value")
    return getattr(proto_value, kind) if kind in ("int_value", "double_value", "string_value") else None


# Properties worth showing, in order; `<split>_examples` counts follow.
_PROPERTIES = ("span", "split_names", "rows_without_features", "blessed", "baseline_model_id", "pushed",
               "pushed_version", "pushed_destination")


def _useful_properties(artifact) -> Dict[str, Any]:
    values = {name: _value(v) for name, v in artifact.custom_properties.items()}
    values.update({name: _value(v) for name, v in artifact.properties.items()})
    result = {name: values[name] for name in _PROPERTIES if values.get(name) is not None}
    if "split_names" in result:
        result["split_names"] = json.loads(result["split_names"])
    for name in ("blessed", "pushed"):
        if name in result:
            result[name] = bool(result[name])
    counts = [f"{split}_examples" for split in result.get("split_names", [])]
    counts += sorted(name for name in values if name.endswith("_examples") and name not in counts)
    result.update({name: values[name] for name in counts if values.get(name) is not None})
    return result


def _not_reached(run: _Run, component: str, needed_by: str, output_dir: str) -> str:
    """Why a run has no output of `component`, and what to do."""
    failed = run.failed
    if failed and failed.component == component:
        return (f"{run.label} failed at {component}, so there are no {needed_by}: fix the error that "
                f"`rqvalue run` printed and run it again")
    if failed:
        fix = ("fix the data (`rqvalue inspect anomalies` shows what is wrong)" if failed.component == "ValidationGate"
               else "fix the error that `rqvalue run` printed")
        return (f"{run.label} failed at {failed.component} and did not get as far as {component}, so there "
                f"are no {needed_by}: {fix} and run it again" + _earlier_hint(run, output_dir))
    if run.status == "running":
        current = run.steps[-1].component if run.steps else "its first component"
        return (f"{run.label} is still running (or was interrupted) at {current} and has not reached "
                f"{component}: wait for it to finish, or run `rqvalue run --output-dir {output_dir}` again")
    return f"{run.label} has no {component} output, so there are no {needed_by}"


def _earlier_hint(run: _Run, output_dir: str) -> str:
    if run.short_id > 1:
        return f"; an earlier run may have them (`rqvalue inspect runs --output-dir {output_dir}`)"
    return ""


# ----------------------------------------------------------------------------------------------
# Views: each returns (data for --json, sections for the text tables)


@dataclasses.dataclass
class _Section:
    """A titled text table with notes; cells are already strings."""

    title: str = ""
    headers: Sequence[str] = ()
    rows: List[List[str]] = dataclasses.field(default_factory=list)
    notes: List[str] = dataclasses.field(default_factory=list)


def _runs_view(store: _Store, run_ref: Optional[str]) -> tuple:
    del run_ref
    data = {"output_dir": store.output_dir, "runs": [_run_record(r) for r in store.runs]}
    summary = _Section(headers=["run", "name", "pipeline", "seconds", "status", "executed", "cached", "failed at"])
    for run in data["runs"]:
        states = [c["state"] for c in run["components"]]
        summary.rows.append([str(run["id"]), run["name"], run["pipeline"], f"{run['duration_s']:.0f}",
                             run["status"], str(states.count("executed")), str(states.count("cached")),
                             run["failed_component"] or "-"])
    shown = store.runs[-_MATRIX_RUNS:]
    matrix = _Section(title="Components per run (- = not reached)",
                      headers=["component"] + [str(r.short_id) for r in shown])
    for component in _component_order(shown):
        cells = [(r.step(component).state if r.step(component) else "-") for r in shown]
        matrix.rows.append([component] + [c.upper() if c in ("failed", "canceled") else c for c in cells])
    if len(store.runs) > len(shown):
        matrix.notes.append(f"(the last {len(shown)} runs; --json lists every run)")
    latest = store.runs[-1].short_id
    summary.notes.append(f"RUN for the other views: a run id or name; default the latest (run {latest})")
    return data, [summary, matrix]


def _run_record(run: _Run) -> Dict[str, Any]:
    started = run.created_ms
    finished = max([s.execution.last_update_time_since_epoch for s in run.steps] or [started])
    return {
        "id": run.short_id,
        "name": run.name,
        "pipeline": run.pipeline,
        "started": _iso(started),
        "finished": _iso(finished),
        "duration_s": round((finished - started) / 1000.0, 1),
        "status": run.status,
        "failed_component": run.failed.component if run.failed else None,
        "components": [{"component": s.component, "state": s.state, "execution_id": s.execution.id}
                       for s in run.steps],
    }


def _component_order(runs: Sequence[_Run]) -> List[str]:
    seen = list(dict.fromkeys(s.component for r in runs for s in r.steps))
    known = [c for c in _COMPONENT_ORDER if c in seen]
    return known + [c for c in seen if c not in known]


def _artifacts_view(store: _Store, run_ref: Optional[str]) -> tuple:
    run = store.run(run_ref)
    records = store.artifacts(run)
    data = {"run": _run_header(run), "artifacts": records}
    section = _Section(title=_title(run), headers=["id", "type", "component", "key", "in this run", "from run",
                                                   "properties", "uri"])
    for r in records:
        section.rows.append([str(r["id"]), r["type"], r["component"] or "?", r["key"] or "?", r["in_run"],
                             _cell(r["produced_in_run"]), _properties_text(r["properties"]),
                             _relative(r["uri"], store.output_dir)])
    section.notes.append(f"(uri relative to {os.path.abspath(store.output_dir)})")
    return data, [section]


def _properties_text(properties: Dict[str, Any]) -> str:
    parts = []
    for name, value in properties.items():
        if name == "split_names":
            parts.append("splits=" + ",".join(value))
        elif name == "pushed_destination":
            continue  # the version names the folder under serving/; --json has the full path
        else:
            parts.append(f"{name}={_cell(value)}")
    return " ".join(parts)


def _metrics_view(store: _Store, run_ref: Optional[str]) -> tuple:

    run = store.run(run_ref)
    evaluation = store.artifact(run, "ModelEvaluation", "evaluation", "metrics", "Evaluator")
    blessing = store.artifact(run, "ModelBlessing", "blessing", "metrics", "Evaluator")
    baseline = next((a for a in store.artifacts(run) if "Evaluator.baseline_model" in a["used_by"]), None)
    candidate = results.load_metrics(evaluation["path"], model_name="candidate")
    base = results.load_metrics(evaluation["path"], model_name="baseline") if baseline else {}
    slices = [{"slice": name, "candidate": candidate[name], "baseline": base.get(name)}
              for name in sorted(candidate, key=results.slice_order)]
    pushed = next((a["properties"] for a in store.artifacts(run) if a["type"] == "PushedModel"), {})
    data = {
        "run": _run_header(run),
        "evaluation_uri": evaluation["uri"],
        "blessed": blessing["properties"].get("blessed"),
        "pushed_model": pushed.get("pushed_destination") if pushed.get("pushed") else None,
        "baseline_model_uri": baseline["uri"] if baseline else None,
        "baseline_from_run": baseline["produced_in_run"] if baseline else None,
        "slices": slices,
        "failed_thresholds": _failed_thresholds(evaluation["path"]),
    }
    return data, _metrics_sections(run, data)


def _metrics_sections(run: _Run, data: Dict[str, Any]) -> List[_Section]:
    with_baseline = data["baseline_model_uri"] is not None
    table = _Section(title=_title(run) + " — evaluation on the eval split",
                     headers=["slice"] + (["model"] if with_baseline else []) + [t for _, t, _ in results.METRIC_COLUMNS])
    for item in data["slices"]:
        models = [("candidate", item["candidate"])] + ([("baseline", item["baseline"] or {})] if with_baseline else [])
        for i, (model, values) in enumerate(models):
            cells = [fmt.format(values[key]) if _finite(values.get(key)) else "-" for key, _, fmt in results.METRIC_COLUMNS]
            table.rows.append([item["slice"] if i == 0 else ""] + ([model] if with_baseline else []) + cells)
    table.notes.append("(value_bucket=0 holds the zero labels; higher buckets hold larger labels)")
    baseline = (f"the model of run {data['baseline_from_run']} ({data['baseline_model_uri']})"
                if with_baseline else "none (no earlier blessed model)")
    pushed = data["pushed_model"] or ("none" if data["blessed"] is False else "none (no Pusher output)")
    verdict = _Section(notes=[f"blessed: {_cell(data['blessed'])}", f"pushed model: {pushed}", f"baseline: {baseline}"])
    if data["failed_thresholds"]:
        verdict.notes.append("failed thresholds:")
        verdict.notes += [f"  {f['slice']}: {f['metric']} = {_cell(f['value'])}, needs {f['threshold']}"
                          + (f" ({f['message']})" if f["message"] else "") for f in data["failed_thresholds"]]
    else:
        verdict.notes.append("failed thresholds: none")
    return [table, verdict]


def _failed_thresholds(evaluation_path: str) -> List[Dict[str, Any]]:
    import tensorflow_model_analysis as tfma

    if not glob.glob(os.path.join(evaluation_path, "validations*")):
        return []
    failures = []
    validation = tfma.load_validation_result(evaluation_path)
    for per_slice in validation.metric_validations_per_slice:
        name = results.slice_name(tfma.slicer.deserialize_slice_key(per_slice.slice_key))
        for failure in per_slice.failures:
            failures.append({
                "slice": name,
                "metric": failure.metric_key.name,
                "model": failure.metric_key.model_name or "candidate",
                "value": failure.metric_value.double_value.value
                if failure.metric_value.HasField("double_value") else None,
                "threshold": _threshold_text(failure.metric_threshold),
                "message": failure.message,
            })
    for missing in validation.missing_slices:
        failures.append({"slice": str(missing).strip() or "overall", "metric": "-", "model": "candidate",
                         "value": None, "threshold": "slice present", "message": "slice missing"})
    return failures


def _threshold_text(threshold) -> str:
    parts = []
    if threshold.HasField("value_threshold"):
        bounds = threshold.value_threshold
        if bounds.HasField("lower_bound"):
            parts.append(f">= {bounds.lower_bound.value:g}")
        if bounds.HasField("upper_bound"):
            parts.append(f"<= {bounds.upper_bound.value:g}")
    if threshold.HasField("change_threshold"):
        change = threshold.change_threshold
        parts.append(f"change vs baseline {str(change).strip()}".replace("\n", ", "))
    return " and ".join(parts) or "?"


def _codebook_view(store: _Store, run_ref: Optional[str]) -> tuple:
    run = store.run(run_ref)
    graph = store.artifact(run, "TransformGraph", "transform_graph", "codebook", "Transform")
    examples = store.artifact(run, "Examples", "transformed_examples", "codebook", "Transform")
    config = _transform_config(run)
    transform = config.get("label_transform", "log1p")
    if transform not in _INVERSE:
        raise InspectError(f"{run.label}: label transform {transform!r} is unknown to `rqvalue inspect` "
                           f"(known: {', '.join(sorted(_INVERSE))})")
    centroids = _read_centroids(graph["path"], len(config["codebook_sizes"]), run)
    counts, nonzero = _code_counts(examples["path"], [len(c) for c in centroids])
    levels = [_level_record(level, c, n, nz, transform, _INVERSE[transform])
              for level, (c, n, nz) in enumerate(zip(centroids, counts, nonzero), start=1)]
    data = {
        "run": _run_header(run),
        "label_transform": transform,
        "codebook_sizes": [len(c) for c in centroids],
        "transform_graph_uri": graph["uri"],
        "train_examples": int(counts[0].sum()) if counts else 0,
        "levels": levels,
    }
    return data, _codebook_sections(run, data)


def _transform_config(run: _Run) -> Dict[str, Any]:
    step = run.step("Transform")
    properties = step.execution.custom_properties if step else {}
    if "custom_config" not in properties or "codebook_sizes" not in properties["custom_config"].string_value:
        raise InspectError(f"{run.label}: the Transform execution has no custom_config, so the codebook sizes "
                           f"and label transform are unknown")
    return json.loads(properties["custom_config"].string_value)


_INVERSE: Dict[str, Callable[[float], float]] = {"log1p": math.expm1, "identity": lambda t: t}


def _read_centroids(graph_path: str, num_levels: int, run: _Run) -> List[List[float]]:
    """Each level's centroids, from the text assets of the transform graph (one number per line)."""
    import tensorflow_transform as tft
    from models.codebook_analyzer import codebook_asset_key

    output = tft.TFTransformOutput(graph_path)
    levels = []
    for level in range(1, num_levels + 1):
        try:
            path = output.vocabulary_file_by_name(codebook_asset_key(level))
        except (KeyError, ValueError):
            raise InspectError(f"{run.label}: the transform graph has no asset {codebook_asset_key(level)!r}; "
                               f"it was made by an older preprocessing_fn: run `rqvalue run --no-cache`") from None
        with open(path) as f:
            levels.append([float(line) for line in f if line.strip()])
    return levels


def _code_counts(examples_path: str, sizes: Sequence[int]) -> tuple:
    """How many train examples take each code, per level: all of them, and those with a non-zero label."""
    import numpy as np
    import tensorflow as tf
    from models.codebook import ZERO_CODE
    from schemas import features

    files = sorted(glob.glob(os.path.join(examples_path, "Split-train", "*.gz")))
    if not files:
        raise InspectError(f"no train split under {examples_path}: run `rqvalue run --no-cache` to write it again")
    spec = {features.CODES_KEY: tf.io.FixedLenFeature([len(sizes)], tf.int64)}
    counts = [np.zeros(k, dtype=np.int64) for k in sizes]
    nonzero = [np.zeros(k, dtype=np.int64) for k in sizes]
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(4096)
    for batch in dataset.map(lambda records: tf.io.parse_example(records, spec)[features.CODES_KEY]):
        codes = batch.numpy()
        positive = codes[:, 0] != ZERO_CODE
        for level, k in enumerate(sizes):
            counts[level] += np.bincount(codes[:, level], minlength=k)[:k]
            nonzero[level] += np.bincount(codes[positive, level], minlength=k)[:k]
    return counts, nonzero


def _level_record(level: int, centroids: List[float], counts, nonzero, transform: str, inverse) -> Dict[str, Any]:
    total = max(int(counts.sum()), 1)
    codes = []
    for code, centroid in enumerate(centroids):
        item = {"code": code, "centroid": centroid}
        if level == 1:
            item["label_value"] = inverse(centroid)  # the label this code stands for on its own
        elif transform == "log1p":
            item["label_factor"] = math.exp(centroid)  # the offset multiplies (1 + label)
        else:
            item["label_offset"] = centroid
        item.update(count=int(counts[code]), share=int(counts[code]) / total, count_nonzero=int(nonzero[code]))
        codes.append(item)
    return {"level": level, "size": len(centroids), "codes": codes}


def _codebook_sections(run: _Run, data: Dict[str, Any]) -> List[_Section]:
    transform, sizes = data["label_transform"], ", ".join(str(k) for k in data["codebook_sizes"])
    finer = "x (1+label)" if transform == "log1p" else "+ label"
    sections = [_Section(title=_title(run) + " — RQ codebook", notes=[
        f"label transform {transform}; codes per level {sizes}; counts over the {data['train_examples']} "
        f"examples of the train split",
        "a code path decodes to the sum of its centroids (transformed units); code 0 of level 1 stands for "
        "the zero label and a path starting with it decodes to 0, so finer levels matter for non-zero labels only"])]
    for level in data["levels"]:
        first = level["level"] == 1
        section = _Section(title=f"level {level['level']} ({level['size']} codes)",
                           headers=["code", "centroid", "label value" if first else finer, "count", "share"]
                           + ([] if first else ["non-zero labels"]))
        for item in level["codes"]:
            if first:
                label = f"{item['label_value']:.2f}"
            else:
                label = f"{item.get('label_factor', item.get('label_offset')):.4f}"
            section.rows.append([str(item["code"]), f"{item['centroid']:+.5f}", label, str(item["count"]),
                                 f"{100 * item['share']:.1f}%"] + ([] if first else [str(item["count_nonzero"])]))
        sections.append(section)
    return sections


def _anomalies_view(store: _Store, run_ref: Optional[str]) -> tuple:
    from components.validation_gate import describe_anomalies

    run = store.run(run_ref)
    anomalies = store.artifact(run, "ExampleAnomalies", "anomalies", "anomalies", "ExampleValidator")
    splits = anomalies["properties"].get("split_names", [])
    problems = describe_anomalies(anomalies["path"], splits)
    gate = run.step("ValidationGate")
    data = {"run": _run_header(run), "anomalies_uri": anomalies["uri"], "splits": splits,
            "anomalies": problems, "validation_gate": gate.state if gate else None}
    notes = ([f"  {p}" for p in problems] if problems else ["no anomalies"])
    head = f"ExampleValidator checked splits {', '.join(splits)} against the schema"
    if gate and gate.state == "failed":
        head += "; ValidationGate stopped the run"
    return data, [_Section(title=_title(run), notes=[head + ":" if problems else head] + notes)]


def _schema_view(store: _Store, run_ref: Optional[str]) -> tuple:
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    run = store.run(run_ref)
    artifact = store.artifact(run, "Schema", "schema", "schema", _schema_component(run))
    path = os.path.join(artifact["path"], "schema.pbtxt")
    schema = schema_pb2.Schema()
    with open(path) as f:
        text_format.Parse(f.read(), schema)
    domains = {d.name: d for d in schema.string_domain}
    rows = [_schema_feature(f, domains) for f in schema.feature]
    data = {"run": _run_header(run), "schema_uri": artifact["uri"], "component": artifact["component"],
            "features": rows}
    section = _Section(title=f"{_title(run)} — schema from {artifact['component']}",
                       headers=["feature", "type", "presence", "values", "domain", "environments"])
    section.rows = [[r["feature"], r["type"], r["presence"], r["values"], _short(r["domain"], 60),
                     r["environments"] or "all"] for r in rows]
    return data, [section]


def _schema_component(run: _Run) -> str:
    return next((c for c in ("LabelRules", "SchemaGen") if run.step(c)), "ImportSchemaGen")


def _schema_feature(feature, string_domains) -> Dict[str, Any]:
    from tensorflow_metadata.proto.v0 import schema_pb2

    presence = "optional"
    if feature.HasField("presence"):
        fraction = feature.presence.min_fraction
        presence = "required" if fraction >= 1.0 else (f"min {fraction:.0%}" if fraction else "optional")
    values = "-"
    if feature.HasField("shape"):
        values = "shape [" + ",".join(str(d.size) for d in feature.shape.dim) + "]"
    elif feature.HasField("value_count"):
        low, high = feature.value_count.min, feature.value_count.max
        values = str(low) if low == high else f"{low}..{high or 'any'}"
    not_in = list(feature.not_in_environment)
    return {"feature": feature.name, "type": schema_pb2.FeatureType.Name(feature.type), "presence": presence,
            "values": values, "domain": _domain_text(feature, string_domains),
            "environments": f"not in {', '.join(not_in)}" if not_in else
            (", ".join(feature.in_environment) if feature.in_environment else "")}


def _domain_text(feature, string_domains) -> str:
    kind = feature.WhichOneof("domain_info")
    if kind == "float_domain" or kind == "int_domain":
        domain = getattr(feature, kind)
        low = f"{domain.min:g}" if domain.HasField("min") else ""
        high = f"{domain.max:g}" if domain.HasField("max") else ""
        if low and high:
            return f"[{low}, {high}]"
        return f">= {low}" if low else (f"<= {high}" if high else "any")
    if kind == "domain":
        domain = string_domains.get(feature.domain)
        return _values_text(domain.value) if domain else f"domain {feature.domain!r}"
    if kind == "string_domain":
        return _values_text(feature.string_domain.value)
    if kind == "bool_domain":
        return "bool"
    return "-" if kind is None else kind


def _values_text(values) -> str:
    values = list(values)
    return f"{len(values)} values: " + ", ".join(values)


def _stats_view(store: _Store, run_ref: Optional[str]) -> tuple:
    run = store.run(run_ref)
    artifact = store.artifact(run, "ExampleStatistics", "statistics", "statistics", "StatisticsGen")
    splits = [_split_stats(artifact["path"], split) for split in artifact["properties"].get("split_names", [])]
    data = {"run": _run_header(run), "statistics_uri": artifact["uri"], "splits": splits}
    sections = []
    for split in splits:
        section = _Section(title=f"{_title(run)} — split {split['split']} ({split['num_examples']} examples)",
                           headers=["feature", "type", "count", "missing", "mean", "min", "max", "unique",
                                    "top values"])
        for f in split["features"]:
            top = ", ".join(f"{v} ({n})" for v, n in f.get("top_values", []))
            section.rows.append([f["feature"], f["type"], str(f["count"]), str(f["missing"]),
                                 _number(f.get("mean")), _number(f.get("min")), _number(f.get("max")),
                                 _cell(f.get("unique")), _short(top, 40)])
        sections.append(section)
    return data, sections


def _split_stats(statistics_path: str, split: str) -> Dict[str, Any]:
    from tensorflow_metadata.proto.v0 import statistics_pb2

    path = os.path.join(statistics_path, f"Split-{split}", "FeatureStats.pb")
    stats = statistics_pb2.DatasetFeatureStatisticsList()
    with open(path, "rb") as f:
        stats.ParseFromString(f.read())
    dataset = stats.datasets[0]
    return {"split": split, "num_examples": int(dataset.num_examples),
            "features": [_feature_stats(f) for f in dataset.features]}


def _feature_stats(feature) -> Dict[str, Any]:
    from tensorflow_metadata.proto.v0 import statistics_pb2

    name = ".".join(feature.path.step) or feature.name
    result = {"feature": name, "type": statistics_pb2.FeatureNameStatistics.Type.Name(feature.type)}
    kind = feature.WhichOneof("stats")
    stats = getattr(feature, kind) if kind else None
    common = stats.common_stats if stats is not None and stats.HasField("common_stats") else None
    result["count"] = int(common.num_non_missing) if common else 0
    result["missing"] = int(common.num_missing) if common else 0
    if kind == "num_stats":
        result.update(mean=stats.mean, std_dev=stats.std_dev, min=stats.min, max=stats.max,
                      zeros=int(stats.num_zeros))
    elif kind == "string_stats":
        result.update(unique=int(stats.unique),
                      top_values=[[v.value, int(v.frequency)] for v in stats.top_values[:3]])
    return result


_VIEWS: Dict[str, Callable] = {
    "runs": _runs_view,
    "artifacts": _artifacts_view,
    "metrics": _metrics_view,
    "codebook": _codebook_view,
    "anomalies": _anomalies_view,
    "schema": _schema_view,
    "stats": _stats_view,
}

_HELP = {
    "runs": "every run: when, status, and per component executed / cached / failed",
    "artifacts": "the artifacts a run produced or used (type, URI, component, useful properties)",
    "metrics": "the evaluation overall and per value bucket, candidate beside baseline; blessing",
    "codebook": "the RQ codebook: centroids in transformed and label units, code usage on the train split",
    "anomalies": "what ExampleValidator found",
    "schema": "the schema the run used: feature, type, presence, domain",
    "stats": "StatisticsGen's statistics per split",
}


# ----------------------------------------------------------------------------------------------
# Output: one renderer for every view


def _render(data: Dict[str, Any], sections: List[_Section], as_json: bool) -> str:
    if as_json:
        return json.dumps(_jsonable(data), indent=2)
    return "\n\n".join(_format_section(s) for s in sections)


def _format_section(section: _Section) -> str:
    lines = [section.title] if section.title else []
    if section.headers:
        lines += _table(list(section.headers), section.rows)
    return "\n".join(lines + section.notes)


def _table(headers: List[str], rows: List[List[str]]) -> List[str]:
    """Aligned columns: numbers right-aligned, text left; the last column is not padded."""
    if not rows:
        return ["  ".join(headers), "(none)"]
    widths = [max(len(r[i]) for r in [headers] + rows) for i in range(len(headers))]
    numeric = []
    for i in range(len(headers)):
        cells = [r[i] for r in rows if r[i] not in ("", "-")]
        numeric.append(bool(cells) and all(_is_number(c) for c in cells))

    def line(cells):
        padded = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)]
        return "  ".join(padded).rstrip()

    return [line(headers), "  ".join("-" * w for w in widths)] + [line(r) for r in rows]


def _is_number(text: str) -> bool:
    try:
        float(text.rstrip("%").replace(",", ""))
        return True
    except ValueError:
        return False


def _jsonable(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _run_header(run: _Run) -> Dict[str, Any]:
    return {"id": run.short_id, "name": run.name, "status": run.status,
            "failed_component": run.failed.component if run.failed else None}


def _title(run: _Run) -> str:
    return f"{run.label}: " + (f"failed at {run.failed.component}" if run.failed else run.status)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _number(value) -> str:
    if value is None or not _finite(value):
        return "-"
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.0f}"


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _relative(uri: str, output_dir: str) -> str:
    root = os.path.abspath(output_dir) + os.sep
    return uri[len(root):] if uri.startswith(root) else uri


def _iso(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000.0).astimezone().isoformat(timespec="seconds")


# ----------------------------------------------------------------------------------------------
# Command line


_DESCRIPTION = ("Shows what the runs in an output folder did and produced, from ML Metadata and the pipeline "
                "root, as text tables or JSON. RUN is a run id from `rqvalue inspect runs` or a full run name; "
                "the default is the latest run.")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Registers `inspect` and its views on the `rqvalue` sub-command parsers."""
    inspect = subparsers.add_parser(
        "inspect", help="show what runs did and produced: runs, artifacts, metrics, codebook, anomalies, "
                        "schema, stats", description=_DESCRIPTION)
    _add_options(inspect, DEFAULT_OUTPUT_DIR, False)
    views = inspect.add_subparsers(dest="view", metavar="VIEW", required=True)
    # The options are accepted after the view too; SUPPRESS keeps a view from resetting them.
    common = argparse.ArgumentParser(add_help=False)
    _add_options(common, argparse.SUPPRESS, argparse.SUPPRESS)
    for name, text in _HELP.items():
        view = views.add_parser(name, help=text, description=text, parents=[common])
        if name != "runs":
            view.add_argument("run", nargs="?", metavar="RUN",
                              help="run id from `rqvalue inspect runs` or the run's full name (default: the latest)")
    return inspect


def _add_options(parser: argparse.ArgumentParser, output_dir_default, json_default) -> None:
    parser.add_argument("--output-dir", default=output_dir_default,
                        help="folder a `rqvalue run` wrote to (default: runs)")
    parser.add_argument("--json", action="store_true", default=json_default,
                        help="print JSON instead of text tables (for scripts)")


def main(args: argparse.Namespace) -> int:
    """Runs `rqvalue inspect <view>`: prints the view to stdout, or an error to stderr; returns the exit code."""
    output_dir = getattr(args, "output_dir", DEFAULT_OUTPUT_DIR)
    try:
        store = _Store(output_dir)
        data, sections = _VIEWS[args.view](store, getattr(args, "run", None))
    except InspectError as e:
        print(f"rqvalue inspect: {e}", file=sys.stderr)
        return 1
    try:
        print(_render(data, sections, getattr(args, "json", False)))
        sys.stdout.flush()
    except BrokenPipeError:  # `rqvalue inspect stats | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":  # python -m pipeline.inspect_run VIEW ... (same as `rqvalue inspect VIEW ...`)
    from pipeline import cli

    cli._quiet()
    _parser = argparse.ArgumentParser(prog="rqvalue")
    add_parser(_parser.add_subparsers(dest="command", required=True))
    sys.exit(main(_parser.parse_args(["inspect"] + sys.argv[1:])))
