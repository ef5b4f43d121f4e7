"""Reads what runs did and produced, from an output folder's ML Metadata store (read-only).

The one reader of a run's record that everything else uses: `rqvalue run`'s summary, `inspect`,
`report` and the tests. An output folder holds `metadata.sqlite` and `pipeline_root/`; in it:
  - `RunHistory`: every run (a `pipeline_run` context) with its component executions in order,
    and the artifacts each run produced or used; a run whose executions never finished is
    "interrupted" once a later run exists or no process holds the output folder's lock;
  - `evaluated_run`: where a run's evaluation and the inputs of its Evaluator are (`RunInfo`);
  - `latest_result`: the latest evaluation, blessing and push (`RunResult`);
What TFMA wrote for an evaluation is read by `pipeline.tfma_results`.
Errors are `MetadataError`s whose message says what to do next. TFMA is imported only by the
functions that read evaluations, so reading the run list stays quick.
"""

import dataclasses
import json
import os
import re
from typing import Any, Dict, List, Optional, Tuple

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import output_lock
from pipeline.tfma_results import load_metrics

METADATA_FILE = "metadata.sqlite"
PIPELINE_ROOT = "pipeline_root"

_Execution = metadata_store_pb2.Execution
_Event = metadata_store_pb2.Event

# Execution state -> what the run views call it.
STATES = {
    _Execution.COMPLETE: "executed",
    _Execution.CACHED: "cached",
    _Execution.FAILED: "failed",
    _Execution.CANCELED: "canceled",
    _Execution.NEW: "running",
    _Execution.RUNNING: "running",
}
_DONE = (_Execution.COMPLETE, _Execution.CACHED)
# An execution left NEW or RUNNING by a run that is no longer going (killed: SIGKILL, out of memory,
# power loss); such a run's status too.
INTERRUPTED = "interrupted"


class MetadataError(Exception):
    """Nothing to read: no store, an unreadable one, or no such run; the message says what to do next."""


def open_readonly(path: str) -> metadata_store.MetadataStore:
    """The ML Metadata store at `path`, opened read-only."""
    if not os.path.isfile(path):
        raise MetadataError(f"no metadata store at {path!r}: run the pipeline first (rqvalue run)")
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    try:
        return metadata_store.MetadataStore(config)
    except Exception as e:  # not an ML Metadata database, or one from an incompatible version
        reason = re.sub(r"\s*query:\s+[A-Z]+ .*", "", str(e), flags=re.S).strip()  # drop the SQL text
        raise MetadataError(f"cannot read {path} as an ML Metadata store ({reason}); "
                            f"run `rqvalue run` with a new --output-dir") from None


# ----------------------------------------------------------------------------------------------
# Runs, their executions and artifacts


@dataclasses.dataclass
class Step:
    """One component's execution within a run."""

    component: str
    state: str
    execution: Any  # metadata_store_pb2.Execution


@dataclasses.dataclass
class Run:
    """One pipeline run: its short id (1 = the oldest), context name, pipeline and executions in order."""

    short_id: int
    name: str
    pipeline: str
    created_ms: int
    steps: List[Step]

    @property
    def label(self) -> str:
        return f"run {self.short_id} ({self.name})"

    @property
    def failed(self) -> Optional[Step]:
        """The step that failed, was canceled, or was interrupted (the run killed while it ran)."""
        return next((s for s in self.steps if s.state in ("failed", "canceled", INTERRUPTED)), None)

    @property
    def status(self) -> str:
        if any(s.state == INTERRUPTED for s in self.steps):
            return INTERRUPTED
        if self.failed:
            return "failed"
        if not self.steps or any(s.state == "running" for s in self.steps):
            return "running"
        return "complete"

    def step(self, component: str) -> Optional[Step]:
        return next((s for s in reversed(self.steps) if s.component == component), None)


class RunHistory:
    """The runs of one output folder, read from its ML Metadata store.

    Args:
      output_dir: the output folder.
      shown_runs: how many runs an error message lists.
      run_going: whether a run may be going on in the folder now; None asks the folder's lock
        (`pipeline.output_lock`). Unfinished executions of the latest run show as running while a
        run may be going, else as interrupted; those of an earlier run always as interrupted.
    """

    def __init__(self, output_dir: str, shown_runs: int = 10, run_going: Optional[bool] = None):
        self.output_dir = output_dir
        self._shown = shown_runs
        self._run_going = run_going
        path = os.path.join(output_dir, METADATA_FILE)
        if not os.path.isfile(path):
            raise MetadataError(f"no runs under {output_dir}: run `rqvalue run --output-dir {output_dir}` first")
        empty = MetadataError(f"no runs recorded in {path}: run `rqvalue run --output-dir {output_dir}` first")
        if os.path.getsize(path) == 0:  # created by a run that has not written anything yet
            raise empty
        self.store = open_readonly(path)
        self.components = self._components()
        self.runs = self._runs()
        if not self.runs:
            raise empty
        self._run_of = {s.execution.id: run for run in self.runs for s in run.steps}
        self._types = {t.id: t.name for t in self.store.get_artifact_types()}
        self._artifacts: Dict[int, List[Dict[str, Any]]] = {}  # short run id -> artifacts()

    def _components(self) -> Dict[int, tuple]:
        """Execution id -> (pipeline name, component id), from the 'node' contexts."""
        result = {}
        for node in self.store.get_contexts_by_type("node"):
            pipeline, _, component = node.name.partition(".")
            for execution in self.store.get_executions_by_context(node.id):
                result[execution.id] = (pipeline, component)
        return result

    def _runs(self) -> List[Run]:
        runs = []
        contexts = sorted(self.store.get_contexts_by_type("pipeline_run"), key=lambda c: c.id)
        for short_id, context in enumerate(contexts, start=1):
            executions = sorted(self.store.get_executions_by_context(context.id), key=lambda e: e.id)
            steps = [Step(self.components.get(e.id, ("", "?"))[1], STATES.get(e.last_known_state, "unknown"), e)
                     for e in executions]
            pipeline = self.components.get(executions[0].id, ("", ""))[0] if executions else ""
            runs.append(Run(short_id, context.name, pipeline, context.create_time_since_epoch, steps))
        for run in runs:
            if any(s.state == "running" for s in run.steps) and not self._may_be_going(run, runs[-1]):
                for step in run.steps:
                    step.state = INTERRUPTED if step.state == "running" else step.state
        return runs

    def _may_be_going(self, run: Run, latest: Run) -> bool:
        if run is not latest:
            return False  # runs on one output folder take turns (its lock): a later run means this one ended
        if self._run_going is None:  # a scoring holding the folder is not this training run going on
            self._run_going = output_lock.holder(self.output_dir) == output_lock.RUN
        return self._run_going

    def run(self, ref: Optional[str]) -> Run:
        """The run with this short id or full name; the latest when ref is None."""
        if ref is None:
            return self.runs[-1]
        for run in self.runs:
            if ref == str(run.short_id) or ref == run.name:
                return run
        known = ", ".join(f"{r.short_id} ({r.name})" for r in self.runs[-self._shown:])
        more = f" and {len(self.runs) - self._shown} older" if len(self.runs) > self._shown else ""
        raise MetadataError(f"no run {ref!r} under {self.output_dir}; known runs: {known}{more}. "
                            f"Pass a run id or full name from `rqvalue inspect runs --output-dir {self.output_dir}`")

    def artifacts(self, run: Run) -> List[Dict[str, Any]]:
        """Every artifact the run's executions produced (outputs, reused ones for cached steps) or used."""
        if run.short_id not in self._artifacts:
            self._artifacts[run.short_id] = self._load_artifacts(run)
        return self._artifacts[run.short_id]

    def _load_artifacts(self, run: Run) -> List[Dict[str, Any]]:
        steps = {s.execution.id: s for s in run.steps}
        events = sorted(self.store.get_events_by_execution_ids(list(steps)),
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
        for artifact in self.store.get_artifacts_by_id(list(roles)):
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
        for event in sorted(self.store.get_events_by_artifact_ids(artifact_ids), key=lambda e: e.execution_id):
            if event.type == _Event.OUTPUT and event.artifact_id not in origins:
                run = self._run_of.get(event.execution_id)
                component = self.components.get(event.execution_id, ("", None))[1]
                origins[event.artifact_id] = (component, _event_key(event), run.short_id if run else None)
        return origins

    def artifact(self, run: Run, type_name: str, key: str, needed_by: str, component: str) -> Dict[str, Any]:
        """The run's artifact of this type and output key; a MetadataError saying why when it has none."""
        for record in sorted(self.artifacts(run), key=lambda r: r["component"] != component):  # its own first
            if record["type"] == type_name and record["key"] == key:
                return dict(record, path=self.local_path(record["uri"]))
        raise MetadataError(_not_reached(run, component, needed_by, self.output_dir))

    def local_path(self, uri: str) -> str:
        """The artifact's folder; if the output folder was moved, the same folder under its new pipeline root."""
        marker = os.sep + PIPELINE_ROOT + os.sep
        if not os.path.exists(uri) and marker in uri:
            moved = os.path.join(self.output_dir, PIPELINE_ROOT, uri.split(marker, 1)[1])
            if os.path.exists(moved):
                return moved
        if not os.path.exists(uri):
            raise MetadataError(f"artifact folder {uri} is gone (deleted or moved): run the pipeline again "
                                f"with `rqvalue run --output-dir {self.output_dir} --no-cache` to write it anew")
        return uri


def _event_key(event) -> Optional[str]:
    return next((step.key for step in event.path.steps if step.HasField("key")), None)


def _event_keys(event) -> List[str]:
    # One event can name several keys when the same artifact fills several inputs (model and baseline_model).
    return [step.key for step in event.path.steps if step.HasField("key")]


def property_value(proto_value) -> Any:
    """The int, double or string held by an ML Metadata property value (None for other kinds)."""
    kind = proto_value.WhichOneof("value")
    return getattr(proto_value, kind) if kind in ("int_value", "double_value", "string_value") else None


# Properties worth showing, in order; `<split>_examples` counts follow.
_PROPERTIES = ("span", "split_names", "rows_without_features", "blessed", "baseline_model_id", "pushed",
               "pushed_version", "pushed_destination")


def _useful_properties(artifact) -> Dict[str, Any]:
    values = {name: property_value(v) for name, v in artifact.custom_properties.items()}
    values.update({name: property_value(v) for name, v in artifact.properties.items()})
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


def _not_reached(run: Run, component: str, needed_by: str, output_dir: str) -> str:
    """Why a run has no output of `component`, and what to do."""
    if run.status == INTERRUPTED:
        return (f"{run.label} was interrupted at {run.failed.component} (stopped before it finished), so there are "
                f"no {needed_by}: run `rqvalue run --output-dir {output_dir}` again")
    failed = run.failed
    if failed and failed.component == component:
        return (f"{run.label} failed at {component}, so there are no {needed_by}: fix the error that "
                f"`rqvalue run` printed and run it again")
    if failed:
        fix = ("fix the data (`rqvalue inspect anomalies` shows what is wrong)" if failed.component == "ValidationGate"
               else "fix the error that `rqvalue run` printed")
        earlier = (f"; an earlier run may have them (`rqvalue inspect runs --output-dir {output_dir}`)"
                   if run.short_id > 1 else "")
        return (f"{run.label} failed at {failed.component} and did not get as far as {component}, so there "
                f"are no {needed_by}: {fix} and run it again" + earlier)
    if run.status == "running":
        current = run.steps[-1].component if run.steps else "its first component"
        return (f"{run.label} is still running (or was interrupted) at {current} and has not reached "
                f"{component}: wait for it to finish, or run `rqvalue run --output-dir {output_dir}` again")
    return f"{run.label} has no {component} output, so there are no {needed_by}"


# ----------------------------------------------------------------------------------------------
# A run's evaluation and the inputs of its Evaluator


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
    events = [e for e in store.get_events_by_artifact_ids([artifact_id])
              if e.type == _Event.OUTPUT and output_key in _event_keys(e)]
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


def _pushed_destination(store, executions, type_names) -> Optional[str]:
    pushed = None
    for pusher in (e for e in executions if _node_name(type_names, e) == "Pusher" and e.last_known_state in _DONE):
        for artifact in _artifacts_by_key(store, pusher.id, _Event.OUTPUT).get("pushed_model", []):
            if _was_pushed(artifact) and "pushed_destination" in artifact.custom_properties:
                pushed = _destination(artifact)
    return pushed


def _run_info(store, run_context) -> Optional[RunInfo]:
    """The run's evaluation and inputs, or None when the run has no finished Evaluator."""
    type_names = {t.id: t.name for t in store.get_execution_types()}
    executions = store.get_executions_by_context(run_context.id)
    evaluators = [e for e in executions if _node_name(type_names, e) == "Evaluator" and e.last_known_state in _DONE]
    for evaluator in sorted(evaluators, key=lambda e: e.id, reverse=True):
        inputs = _artifacts_by_key(store, evaluator.id, _Event.INPUT)
        outputs = _artifacts_by_key(store, evaluator.id, _Event.OUTPUT)
        if not outputs.get("evaluation") or not inputs.get("model") or not inputs.get("examples"):
            continue
        evaluation, model, examples = outputs["evaluation"][0], inputs["model"][0], inputs["examples"][0]
        baseline = (inputs.get("baseline_model") or [None])[0]
        blessing = (outputs.get("blessing") or [None])[0]
        pipeline_type = store.get_context_type("pipeline").id
        pipeline_names = [c.name for c in store.get_contexts_by_execution(evaluator.id) if c.type_id == pipeline_type]
        trainer = _producer(store, model.id, "model")
        transform_graph_uri, transform = None, None
        if trainer is not None:
            graphs = _artifacts_by_key(store, trainer.id, _Event.INPUT).get("transform_graph")
            if graphs:
                transform_graph_uri = graphs[0].uri
                transform = _producer(store, graphs[0].id, "transform_graph")
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
            evaluator_state="cached" if evaluator.last_known_state == _Execution.CACHED else "executed",
            examples_uri=examples.uri,
            example_counts=counts,
            model_uri=model.uri,
            model_id=model.id,
            baseline_uri=baseline.uri if baseline is not None else None,
            baseline_id=baseline.id if baseline is not None else None,
            eval_splits=eval_splits or ("eval",),
            blessed=_blessed(blessing),
            pushed_model=_pushed_destination(store, executions, type_names),
            transform_graph_uri=transform_graph_uri,
            trainer_config=_json_property(trainer, "custom_config"),
            transform_config=_json_property(transform, "custom_config"),
            ingestion_spec=_json_property(_producer(store, examples.id, "examples"), "spec_json"),
        )
    return None


def evaluated_run(metadata_path: str, run: Optional[str] = None) -> RunInfo:
    """The run `run` (its context name or a unique prefix), or the latest run that has an evaluation.

    Raises:
      MetadataError: no metadata store, no run with an evaluation, an unknown or ambiguous run id,
        or a run that stopped before the Evaluator.
    """
    store = open_readonly(metadata_path)
    try:
        runs = store.get_contexts_by_type("pipeline_run")
    except Exception:  # an empty store has no such type yet
        runs = []
    runs = sorted(runs, key=lambda c: (c.create_time_since_epoch, c.id), reverse=True)
    if run:
        chosen = [c for c in runs if c.name == run] or [c for c in runs if c.name.startswith(run)]
        if not chosen:
            known = ", ".join(c.name for c in runs[:5]) or "none"
            raise MetadataError(f"unknown run {run!r} in {metadata_path} (latest runs: {known})")
        if len(chosen) > 1:
            raise MetadataError(f"run {run!r} is ambiguous: it matches {', '.join(c.name for c in chosen)}")
        info = _run_info(store, chosen[0])
        if info is None:
            raise MetadataError(f"run {chosen[0].name!r} has no evaluation: it stopped before the Evaluator "
                                "(see the run's output; data validation stops a run before training)")
        return info
    for context in runs:
        info = _run_info(store, context)
        if info is not None:
            return info
    raise MetadataError(f"no run with an evaluation in {metadata_path}: run the pipeline first (rqvalue run)")


# ----------------------------------------------------------------------------------------------
# The latest result of an output folder


@dataclasses.dataclass
class RunResult:
    """The latest evaluation, blessing and push recorded in a metadata store."""

    metrics: Dict[str, Dict[str, float]]  # slice name -> metric name -> value (candidate model)
    blessed: Optional[bool]
    pushed_model: Optional[str]  # what the latest Pusher pushed (None when it pushed nothing)
    evaluation_uri: Optional[str]
    serving_model: Optional[str] = None  # the newest model ever pushed: what serving has now


def _latest(store, type_name: str):
    artifacts = [a for a in store.get_artifacts_by_type(type_name)
                 if a.state == metadata_store_pb2.Artifact.LIVE]
    return max(artifacts, key=lambda a: a.id) if artifacts else None


def _blessed(blessing) -> Optional[bool]:
    if blessing is not None and "blessed" in blessing.custom_properties:
        return bool(blessing.custom_properties["blessed"].int_value)
    return None


def _was_pushed(artifact) -> bool:
    return "pushed" in artifact.custom_properties and artifact.custom_properties["pushed"].int_value == 1


def _destination(artifact) -> str:
    return artifact.custom_properties["pushed_destination"].string_value


def latest_result(metadata_path: str) -> RunResult:
    """The latest evaluation, blessing and pushed model in the store."""
    store = open_readonly(metadata_path)
    evaluation = _latest(store, "ModelEvaluation")
    pushed = _latest(store, "PushedModel")
    pushes = [a for a in store.get_artifacts_by_type("PushedModel") if _was_pushed(a)]
    return RunResult(
        metrics=load_metrics(evaluation.uri) if evaluation else {},
        blessed=_blessed(_latest(store, "ModelBlessing")),
        pushed_model=_destination(pushed) if pushed is not None and _was_pushed(pushed) else None,
        evaluation_uri=evaluation.uri if evaluation else None,
        serving_model=_destination(max(pushes, key=lambda a: a.id)) if pushes else None)
