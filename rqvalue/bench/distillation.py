"""Privileged-feature distillation measured through the pipeline itself: base RQ-Reg, the student, the teacher bound.

    python -m rqvalue.bench.distillation --out benchmarks/distillation --rows 3000 --seeds 0 1 2 [--work DIR]

On `cdnow_snapshots` (the first `--rows` customers at four cut-offs), one output folder (under
`--work`, a new folder; default a temporary one) gets, for each seed, pipeline runs with
`--distill` that differ only in the student's weights, so ingestion and Transform run once and the
teacher once per seed; the rest comes from the cache:
  - **base**: the student Trainer with alignment_weight = code_kl_weight = 0, i.e. RQ-Reg's usual
    loss on the serving features (the same Transform, so the comparison isolates the distillation);
  - **student**: alignment_weight = λ (and code_kl_weight as given), for each λ of `--alignment-weights`;
  - **teacher bound**: the teacher's `serving_default` on the eval rows *with* their privileged
    features, read here by the same forward retrieval the pipeline uses for training rows. No
    served model can reach it; it shows how much the privileged window carries.
Every model is scored on the same eval rows (the pipeline's eval split) with `models.metrics`;
per seed, the student − base difference is paired (same data, split, Transform and seed). The eval
split is chosen by entity hash, so every seed has the same eval rows: `models.bootstrap` gives the 95%
interval of each model − base on normalized Gini and Spearman, seeds pooled, a customer's snapshots
resampled together. The students are also scored on the valid split (the Trainer's early-stopping
rows, never eval), and λ is chosen there by mean normalized Gini over seeds; every λ's eval interval
is still shown, marked with the one chosen on valid.
Writes `<out>/RESULTS.md` and `<out>/results.json`.
"""

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from typing import Any, Dict, List, Sequence, Tuple

os.environ.setdefault("FEAST_USAGE", "False")

import numpy as np  # noqa: E402

METRICS = ("normalized_gini", "spearman", "mae", "rmse")
RANKING = ("normalized_gini", "spearman")
TEACHER = "teacher bound (reads the privileged window)"


def trained_models(metadata_path: str) -> List[Tuple[str, Dict[str, Any], str]]:
    """(node id, Trainer custom_config, serving model directory) of every completed Trainer execution."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = metadata_path
    store = metadata_store.MetadataStore(connection)
    node_type = store.get_context_type("node").id
    found = []
    for execution in store.get_executions():
        if "custom_config" not in execution.custom_properties or "run_fn" not in execution.custom_properties:
            continue
        if execution.last_known_state not in (metadata_store_pb2.Execution.COMPLETE,
                                              metadata_store_pb2.Execution.CACHED):
            continue
        node = next(c.name.split(".", 1)[1] for c in store.get_contexts_by_execution(execution.id)
                    if c.type_id == node_type)
        outputs = [e.artifact_id for e in store.get_events_by_execution_ids([execution.id])
                   if e.type == metadata_store_pb2.Event.OUTPUT
                   and any(step.key == "model" for step in e.path.steps)]
        for artifact in store.get_artifacts_by_id(outputs):
            found.append((node, json.loads(execution.custom_properties["custom_config"].string_value),
                          os.path.join(artifact.uri, "Format-Serving")))
    return found


def _model_of(found, node: str, **settings) -> str:
    """The one model directory of `node` whose custom_config holds `settings`."""
    dirs = {path for n, config, path in found if n == node and all(config.get(k) == v for k, v in settings.items())}
    if len(dirs) != 1:
        raise RuntimeError(f"{node} {settings}: {len(dirs)} trained models found, expected one: {sorted(dirs)}")
    return dirs.pop()


def _score(model_dir: str, serialized: Sequence[bytes], batch: int = 2048) -> np.ndarray:
    import tensorflow as tf

    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    return np.concatenate([serve(examples=tf.constant(list(serialized[i:i + batch])))["prediction"].numpy()
                           for i in range(0, len(serialized), batch)])


def _split_rows(cfg):
    """Eval and valid rows: {split: (serialized examples without label, labels, entity key of each row)}, and the
    eval examples with their privileged features (read by the pipeline's forward retrieval)."""
    from components import feature_store_example_gen as ingest
    from components import privileged_retrieval

    spec = ingest.IngestionSpec.from_data_config(cfg.data)
    frame = ingest.retrieve(spec)
    splits = ingest.entity_keys_of(frame, spec).map(
        lambda key: ingest.split_of(key, spec.eval_fraction, spec.validation_fraction)).to_numpy()
    encode = lambda frame_, spec_: [e.SerializeToString() for e in ingest.to_examples(frame_, spec_)]  # noqa: E731
    out, unlabeled = {}, {}
    for split in ("eval", "valid"):
        rows = frame[splits == split].reset_index(drop=True)
        unlabeled[split] = rows.assign(**{spec.label: np.nan})
        out[split] = (encode(unlabeled[split], spec), rows[spec.label].astype(float).to_numpy(),
                      ingest.entity_keys_of(rows, spec).to_numpy())
    privileged = privileged_retrieval.PrivilegedSpec.from_config(cfg.distillation)
    values = privileged_retrieval.forward_values(unlabeled["eval"], spec.feast_repo, spec.timestamp_column, privileged)
    with_privileged = unlabeled["eval"].assign(**{name: values[name] for name in privileged.names})
    teacher_spec = dataclasses.replace(spec, numeric_features=(*spec.numeric_features, *privileged.names))
    return out, encode(with_privileged, teacher_spec)


def run_seed(data, seed: int, out: str, args) -> Dict[str, Any]:
    """One seed (module docstring): eval and valid scores ({split: {model: summary}}; no teacher on valid), and the
    eval labels, entity keys and per-row predictions of every model (for the bootstrap)."""
    from models import metrics
    from pipeline import config as config_lib
    from pipeline import datasets, local_runner
    from pipeline.pipeline import TEACHER_ID

    model = config_lib.ModelConfig(seed=seed, **({"train_steps": args.train_steps} if args.train_steps else {}))
    section = {**datasets.distillation("cdnow_snapshots"), "code_kl_weight": 0.0}
    base_cfg = config_lib.RunConfig(data=data, model=model, output_dir=os.path.join(out, "runs"),
                                    distillation=config_lib.DistillationConfig(**section))
    weights = [("base", 0.0, 0.0)] + [(f"student (λ={w:g}, KL={args.code_kl_weight:g})", w, args.code_kl_weight)
                                      for w in args.alignment_weights]
    models_of: Dict[str, str] = {}
    for name, alignment, kl in weights:
        cfg = config_lib.replace(base_cfg, distillation={"alignment_weight": alignment, "code_kl_weight": kl})
        started = time.time()
        local_runner.run(cfg, report=None)
        found = trained_models(cfg.metadata_path)
        models_of[name] = _model_of(found, "Trainer", seed=seed, alignment_weight=alignment, code_kl_weight=kl)
        print(f"seed {seed}: {name} trained (or cached) in {time.time() - started:.0f} s", flush=True)
    teacher = _model_of(trained_models(base_cfg.metadata_path), TEACHER_ID, seed=seed)
    rows, privileged = _split_rows(base_cfg)
    (plain, labels, groups), (valid_plain, valid_labels, _) = rows["eval"], rows["valid"]
    predictions = {name: _score(path, plain) for name, path in models_of.items()}
    predictions[TEACHER] = _score(teacher, privileged)
    return {"eval": {name: metrics.summary(labels, p) for name, p in predictions.items()},
            "valid": {name: metrics.summary(valid_labels, _score(path, valid_plain)) for name, path in models_of.items()},
            "labels": labels, "groups": groups, "predictions": predictions}


def choose_weight(valid: Dict[int, Dict[str, Dict[str, float]]], students: Sequence[str],
                  metric: str = "normalized_gini") -> str:
    """The student with the highest mean over seeds of `metric` on the valid split (the first of equals)."""
    return max(students, key=lambda name: (np.mean([valid[s][name][metric] for s in sorted(valid)]),
                                           -students.index(name)))


def intervals(labels, groups, predictions: Sequence[Dict[str, np.ndarray]], base: str, others: Sequence[str],
              resamples: int = 1000) -> List[Dict[str, Any]]:
    """95% paired bootstrap interval of other − base (seeds pooled, entities resampled together) for each of
    `others` on normalized Gini and Spearman; `predictions` holds one {model: [n] predictions} per seed."""
    from models import bootstrap

    out = []
    for name in others:
        for metric in RANKING:
            ours = np.stack([p[name] for p in predictions])
            theirs = np.stack([p[base] for p in predictions])
            found = bootstrap.paired_bootstrap(labels, ours, theirs, metric, groups, resamples, seed=0, level=0.95)
            out.append({"model": name, "metric": metric, **found})
    return out


def render(results: Dict[int, Dict[str, Dict[str, float]]], command: str,
           valid: Dict[int, Dict[str, Dict[str, float]]] = None, chosen: str = None,
           interval_rows: Sequence[Dict[str, Any]] = ()) -> str:
    """RESULTS.md: eval mean ± standard deviation over seeds, paired student − base differences per seed, and
    (when given) the students' valid scores with the one chosen there and the bootstrap intervals."""
    seeds = sorted(results)
    names = list(results[seeds[0]])
    lines = ["# Privileged-feature distillation on cdnow_snapshots", "", f"Command: `{command}`", "",
             f"Eval rows: {int(results[seeds[0]][names[0]]['count'])} per seed; seeds {seeds}.", "",
             "| model | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    for name in names:
        cells = []
        for metric in METRICS:
            values = np.array([results[s][name][metric] for s in seeds])
            cells.append(f"{values.mean():.4f} ± {values.std(ddof=1) if len(values) > 1 else 0.0:.4f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Paired differences per seed (student − base; Gini and Spearman: higher is better, MAE and RMSE: "
              "lower is better):", "", "| student | seed | " + " | ".join(METRICS) + " |",
              "|---|---|" + "---|" * len(METRICS)]
    for name in names[1:-1]:
        for s in seeds:
            diffs = [results[s][name][m] - results[s]["base"][m] for m in METRICS]
            lines.append(f"| {name} | {s} | " + " | ".join(f"{d:+.4f}" for d in diffs) + " |")
    if valid:
        lines += ["", "Valid split (the Trainer's early-stopping rows; not eval), mean over seeds — λ is chosen here, "
                  "by normalized Gini:", "", "| model | " + " | ".join(RANKING) + " |", "|---|" + "---|" * len(RANKING)]
        for name in names[:-1]:
            cells = [f"{np.mean([valid[s][name][m] for s in seeds]):.4f}" for m in RANKING]
            lines.append(f"| {name}{' (chosen)' if name == chosen else ''} | " + " | ".join(cells) + " |")
    if interval_rows:
        lines += ["", "95% paired bootstrap intervals on eval (model − base; seeds pooled, each customer's snapshots "
                  f"resampled together, {interval_rows[0]['resamples']} resamples over {interval_rows[0]['clusters']} "
                  "customers). Every λ is shown; only the chosen one was picked without looking at eval:", "",
                  "| model | metric | difference | 95% interval | excludes 0 |", "|---|---|---|---|---|"]
        for row in interval_rows:
            mark = " (chosen on valid)" if row["model"] == chosen else ""
            excludes = "yes" if row["low"] > 0 or row["high"] < 0 else "no"
            lines.append(f"| {row['model']}{mark} | {row['metric']} | {row['difference']:+.4f} | "
                         f"[{row['low']:+.4f}, {row['high']:+.4f}] | {excludes} |")
    return "\n".join(lines) + "\n"


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rqvalue.bench.distillation", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder for RESULTS.md and results.json")
    parser.add_argument("--work", help="folder for the data and the pipeline runs (default: a temporary one); "
                                       "a folder of an earlier call is reused, its runs come from the cache")
    parser.add_argument("--rows", type=int, default=3000, help="CDNOW customers (each at four cut-offs)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-steps", type=int, help="override model.train_steps")
    parser.add_argument("--alignment-weights", type=float, nargs="+", default=[1.0], help="λ of each student")
    parser.add_argument("--code-kl-weight", type=float, default=0.0)
    args = parser.parse_args(argv)
    from pipeline import datasets

    work = os.path.abspath(args.work) if args.work else tempfile.mkdtemp(prefix="rqvalue-distillation-")
    data = datasets.prepare("cdnow_snapshots", os.path.join(work, "data"), rows=args.rows)
    runs = {seed: run_seed(data, seed, work, args) for seed in args.seeds}
    seeds = sorted(runs)
    labels, groups = runs[seeds[0]]["labels"], runs[seeds[0]]["groups"]
    for seed in seeds:  # the split is by entity hash: every seed has the same eval rows, in the same order
        if not (np.array_equal(runs[seed]["labels"], labels) and np.array_equal(runs[seed]["groups"], groups)):
            raise RuntimeError(f"seed {seed}: eval rows differ from seed {seeds[0]}'s; the bootstrap needs the same rows")
    names = list(runs[seeds[0]]["eval"])
    students = names[1:-1]
    chosen = choose_weight({s: runs[s]["valid"] for s in seeds}, students)
    interval_rows = intervals(labels, groups, [runs[s]["predictions"] for s in seeds], "base", names[1:])
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    command = "python -m rqvalue.bench.distillation " + " ".join(argv if argv is not None else sys.argv[1:])
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"eval": {str(s): runs[s]["eval"] for s in seeds}, "valid": {str(s): runs[s]["valid"] for s in seeds},
                   "chosen_on_valid": chosen, "bootstrap": interval_rows}, f, indent=1)
    text = render({s: runs[s]["eval"] for s in seeds}, command, {s: runs[s]["valid"] for s in seeds}, chosen,
                  interval_rows)
    with open(os.path.join(out, "RESULTS.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
