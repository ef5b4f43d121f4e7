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
per seed, the student − base difference is paired (same data, split, Transform and seed).
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


def _eval_rows(cfg):
    """(serialized eval examples without label, the same with the privileged features, labels)."""
    from components import feature_store_example_gen as ingest
    from components import privileged_retrieval

    spec = ingest.IngestionSpec.from_data_config(cfg.data)
    frame = ingest.retrieve(spec)
    splits = ingest.entity_keys_of(frame, spec).map(
        lambda key: ingest.split_of(key, spec.eval_fraction, spec.validation_fraction))
    rows = frame[(splits == "eval").to_numpy()].reset_index(drop=True)
    labels = rows[spec.label].astype(float).to_numpy()
    unlabeled = rows.assign(**{spec.label: np.nan})
    privileged = privileged_retrieval.PrivilegedSpec.from_config(cfg.distillation)
    values = privileged_retrieval.forward_values(unlabeled, spec.feast_repo, spec.timestamp_column, privileged)
    with_privileged = unlabeled.assign(**{name: values[name] for name in privileged.names})
    teacher_spec = dataclasses.replace(spec, numeric_features=(*spec.numeric_features, *privileged.names))
    encode = lambda frame_, spec_: [e.SerializeToString() for e in ingest.to_examples(frame_, spec_)]  # noqa: E731
    return encode(unlabeled, spec), encode(with_privileged, teacher_spec), labels


def run_seed(data, seed: int, out: str, args) -> Dict[str, Dict[str, float]]:
    """The scores of base, each student and the teacher bound for one seed (module docstring)."""
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
    plain, privileged, labels = _eval_rows(base_cfg)
    scores = {name: metrics.summary(labels, _score(path, plain)) for name, path in models_of.items()}
    scores["teacher bound (reads the privileged window)"] = metrics.summary(labels, _score(teacher, privileged))
    return scores


def render(results: Dict[int, Dict[str, Dict[str, float]]], command: str) -> str:
    """RESULTS.md: per-seed rows, mean ± standard deviation over seeds, paired student − base differences."""
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
    results = {seed: run_seed(data, seed, work, args) for seed in args.seeds}
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    command = "python -m rqvalue.bench.distillation " + " ".join(argv if argv is not None else sys.argv[1:])
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({str(k): v for k, v in results.items()}, f, indent=1)
    text = render(results, command)
    with open(os.path.join(out, "RESULTS.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
