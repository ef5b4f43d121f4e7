"""The inspect views of runs: `runs`, `artifacts`, `metrics` and `anomalies`."""

import os
from typing import Any, Dict, List, Optional, Sequence

from pipeline import mlmd, tfma_results
from rqvalue.console import BUCKET_NOTE, METRIC_COLUMNS, metric_cells
from rqvalue.inspect.sections import Section, cell, iso_time, relative_uri, run_header, run_title

MATRIX_RUNS = 10  # runs shown side by side in the text view of `runs`


# Components in pipeline order (pipeline/pipeline.py); others follow in order of first execution.
_COMPONENT_ORDER = ("FeatureStoreExampleGen", "StatisticsGen", "ImportSchemaGen", "SchemaGen", "LabelRules",
                    "PrivilegedSchema", "ExampleValidator", "ValidationGate", "rolling_window_resolver",
                    "analyzer_cache_resolver", "warm_start_resolver", "Transform", "TeacherTrainer", "Trainer",
                    "latest_blessed_model_resolver", "Evaluator", "Pusher")


def runs_view(store: mlmd.RunHistory, run_ref: Optional[str]) -> tuple:
    del run_ref
    data = {"output_dir": store.output_dir, "runs": [_run_record(r) for r in store.runs]}
    summary = Section(headers=["run", "name", "pipeline", "seconds", "status", "executed", "cached", "stopped at"])
    for run in data["runs"]:
        states = [c["state"] for c in run["components"]]
        summary.rows.append([str(run["id"]), run["name"], run["pipeline"], f"{run['duration_s']:.0f}",
                             run["status"], str(states.count("executed")), str(states.count("cached")),
                             run["failed_component"] or "-"])
    shown = store.runs[-MATRIX_RUNS:]
    matrix = Section(title="Components per run (- = not reached)",
                     headers=["component"] + [str(r.short_id) for r in shown])
    for component in _component_order(shown):
        cells = [(r.step(component).state if r.step(component) else "-") for r in shown]
        matrix.rows.append([component] + [c.upper() if c in ("failed", "canceled", mlmd.INTERRUPTED) else c
                                          for c in cells])
    if len(store.runs) > len(shown):
        matrix.notes.append(f"(the last {len(shown)} runs; --json lists every run)")
    latest = store.runs[-1].short_id
    if any(r["status"] == mlmd.INTERRUPTED for r in data["runs"]):
        summary.notes.append("interrupted: the run stopped while a component ran (killed, out of memory, power "
                             "loss); what it finished is reused by the next run, what it left unfinished is not")
    summary.notes.append(f"RUN for the other views: a run id or name; default the latest (run {latest})")
    return data, [summary, matrix]


def _run_record(run: mlmd.Run) -> Dict[str, Any]:
    started = run.created_ms
    finished = max([s.execution.last_update_time_since_epoch for s in run.steps] or [started])
    return {
        "id": run.short_id,
        "name": run.name,
        "pipeline": run.pipeline,
        "started": iso_time(started),
        "finished": iso_time(finished),
        "duration_s": round((finished - started) / 1000.0, 1),
        "status": run.status,
        "failed_component": run.failed.component if run.failed else None,
        "components": [{"component": s.component, "state": s.state, "execution_id": s.execution.id}
                       for s in run.steps],
    }


def _component_order(runs: Sequence[mlmd.Run]) -> List[str]:
    seen = list(dict.fromkeys(s.component for r in runs for s in r.steps))
    known = [c for c in _COMPONENT_ORDER if c in seen]
    return known + [c for c in seen if c not in known]


def artifacts_view(store: mlmd.RunHistory, run_ref: Optional[str]) -> tuple:
    run = store.run(run_ref)
    records = store.artifacts(run)
    data = {"run": run_header(run), "artifacts": records}
    section = Section(title=run_title(run), headers=["id", "type", "component", "key", "in this run", "from run",
                                                     "properties", "uri"])
    for r in records:
        section.rows.append([str(r["id"]), r["type"], r["component"] or "?", r["key"] or "?", r["in_run"],
                             cell(r["produced_in_run"]), _properties_text(r["properties"]),
                             relative_uri(r["uri"], store.output_dir)])
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
            parts.append(f"{name}={cell(value)}")
    return " ".join(parts)


def metrics_view(store: mlmd.RunHistory, run_ref: Optional[str]) -> tuple:

    run = store.run(run_ref)
    evaluation = store.artifact(run, "ModelEvaluation", "evaluation", "metrics", "Evaluator")
    blessing = store.artifact(run, "ModelBlessing", "blessing", "metrics", "Evaluator")
    baseline = next((a for a in store.artifacts(run) if "Evaluator.baseline_model" in a["used_by"]), None)
    candidate = tfma_results.load_metrics(evaluation["path"], model_name="candidate")
    base = tfma_results.load_metrics(evaluation["path"], model_name="baseline") if baseline else {}
    slices = [{"slice": name, "candidate": candidate[name], "baseline": base.get(name)}
              for name in sorted(candidate, key=tfma_results.slice_order)]
    pushed = next((a["properties"] for a in store.artifacts(run) if a["type"] == "PushedModel"), {})
    data = {
        "run": run_header(run),
        "evaluation_uri": evaluation["uri"],
        "blessed": blessing["properties"].get("blessed"),
        "pushed_model": pushed.get("pushed_destination") if pushed.get("pushed") else None,
        "baseline_model_uri": baseline["uri"] if baseline else None,
        "baseline_from_run": baseline["produced_in_run"] if baseline else None,
        "slices": slices,
        "failed_thresholds": tfma_results.failed_thresholds(evaluation["path"]),
    }
    return data, _metrics_sections(run, data)


def _metrics_sections(run: mlmd.Run, data: Dict[str, Any]) -> List[Section]:
    with_baseline = data["baseline_model_uri"] is not None
    table = Section(title=run_title(run) + " — evaluation on the eval split",
                    headers=["slice"] + (["model"] if with_baseline else []) + [t for _, t, _, _ in METRIC_COLUMNS])
    for item in data["slices"]:
        models = [("candidate", item["candidate"])] + ([("baseline", item["baseline"] or {})] if with_baseline else [])
        for i, (model, values) in enumerate(models):
            cells = metric_cells(values)
            table.rows.append([item["slice"] if i == 0 else ""] + ([model] if with_baseline else []) + cells)
    table.notes.append(BUCKET_NOTE)
    baseline = (f"the model of run {data['baseline_from_run']} ({data['baseline_model_uri']})"
                if with_baseline else "none (no earlier blessed model)")
    pushed = data["pushed_model"] or ("none" if data["blessed"] is False else "none (no Pusher output)")
    verdict = Section(notes=[f"blessed: {cell(data['blessed'])}", f"pushed model: {pushed}", f"baseline: {baseline}"])
    if data["failed_thresholds"]:
        verdict.notes.append("failed thresholds:")
        verdict.notes += [f"  {f['slice']}: {f['metric']} = {cell(f['value'])}, needs {f['threshold']}"
                          + (f" ({f['message']})" if f["message"] else "") for f in data["failed_thresholds"]]
    else:
        verdict.notes.append("failed thresholds: none")
    return [table, verdict]


def anomalies_view(store: mlmd.RunHistory, run_ref: Optional[str]) -> tuple:
    from components.validation_gate import describe_anomalies

    run = store.run(run_ref)
    anomalies = store.artifact(run, "ExampleAnomalies", "anomalies", "anomalies", "ExampleValidator")
    splits = anomalies["properties"].get("split_names", [])
    problems = describe_anomalies(anomalies["path"], splits)
    gate = run.step("ValidationGate")
    data = {"run": run_header(run), "anomalies_uri": anomalies["uri"], "splits": splits,
            "anomalies": problems, "validation_gate": gate.state if gate else None}
    notes = ([f"  {p}" for p in problems] if problems else ["no anomalies"])
    head = f"ExampleValidator checked splits {', '.join(splits)} against the schema"
    if gate and gate.state == "failed":
        head += "; ValidationGate stopped the run"
    return data, [Section(title=run_title(run), notes=[head + ":" if problems else head] + notes)]
