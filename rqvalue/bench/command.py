"""`rqvalue bench`: every model kind on every embedded data set, several seeds, one table per data set.

The bench runs the pipeline's own code outside the TFX orchestrator, so a full comparison takes
minutes instead of one pipeline run per (model, seed). Its parts:

- `rqvalue.bench.rows`: what runs — data sets, budgets, the rows (every registered kind, the RQ-Reg
  ablations, `--variant` rows);
- `rqvalue.bench.data`: ingestion (Feast point-in-time retrieval, the pipeline's entity-hash split,
  a validation slice carved out of train) and Transform, once per data set and once more per set of
  Transform settings a row changes;
- `rqvalue.bench.train`: one (row, seed) trained and calibrated as the Trainer does it, scored on
  eval, its serving signature timed; `rqvalue.bench.decoding` scores the decoding rules of the same
  trained model;
- `rqvalue.bench.results`: aggregation over seeds, the target checks, RESULTS.md.

This module runs them in order and holds the command line.

Writes `<out>/RESULTS.md` and `<out>/results.json`.
"""

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from typing import Any, Dict, Optional, Sequence

os.environ.setdefault("FEAST_USAGE", "False")

import numpy as np  # noqa: E402

from rqvalue.bench import bgnbd_peer, compare, lightgbm_peers  # noqa: E402
from rqvalue.bench.data import prepare_dataset, reanalyze, transform_key  # noqa: E402
from rqvalue.bench.results import aggregate, render, target_checks  # noqa: E402
from rqvalue.bench.rows import (  # noqa: E402
    ABLATIONS,
    BASE_KIND,
    DATASETS,
    DEFAULT_DATASETS,
    DEFAULT_MODELS,
    DEFAULT_SEEDS,
    VALIDATION_FRACTION,
    Budget,
    Row,
    applies,
    available_rows,
    budget_for,
    parse_variant,
)
from rqvalue.bench.scoring import references  # noqa: E402
from rqvalue.bench.train import train_and_evaluate, warm_up  # noqa: E402


def _hardware() -> str:
    import tensorflow as tf
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    gpus = tf.config.list_physical_devices("GPU")
    return (f"{os.cpu_count()} CPU cores ({cpu}), {'GPU: ' + str(len(gpus)) if gpus else 'no GPU'}, "
            f"Python {platform.python_version()}, TensorFlow {tf.__version__}")


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(type(value))


def _clean(value):
    """NaN/inf -> None so results.json is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _write(result: Dict[str, Any], out_dir: str, started: float, partial: bool) -> None:
    """results.json and RESULTS.md; while `partial`, both say the bench is still running."""
    result["wall_s"] = time.time() - started
    result["finished"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    result["partial"] = partial
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(_clean(result), f, indent=1, default=_json_default)
        f.write("\n")
    with open(os.path.join(out_dir, "RESULTS.md"), "w") as f:
        f.write(render(result))


def _flush_print(message: str) -> None:
    print(message, flush=True)


def run_bench(datasets: Sequence[str], models: Optional[Sequence[str]], seeds: int, budget: Budget,
              out_dir: str, work_dir: str, command: str, log=print, variants: Sequence[Row] = ()) -> Dict[str, Any]:
    """Runs the bench and writes RESULTS.md and results.json under out_dir; returns the results dict.

    `variants` (see `parse_variant`) are run after the selected rows."""
    started = time.time()
    if log is print:
        log = _flush_print
    rows, notes = available_rows()
    known = {r.id for r in rows}
    if models:
        unknown = [m for m in models if m not in known]
        for m in unknown:
            notes.append(f"model {m!r} is not registered in models.registry (yet); skipped")
        rows = [r for r in rows if r.id in models]
    taken = {r.id for r in rows}
    for variant in variants:
        if variant.id in taken:
            raise ValueError(f"--variant {variant.id}: the id is already a row; choose another")
        taken.add(variant.id)
    rows += list(variants)
    result: Dict[str, Any] = {
        "command": command,
        "rows": [dataclasses.asdict(r) for r in rows],
        "datasets": list(datasets),
        "seeds": list(range(seeds)),
        "budget": dataclasses.asdict(budget),
        "validation_fraction": VALIDATION_FRACTION,
        "hardware": _hardware(),
        "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "notes": notes,
        "results": {},
    }
    for dataset in datasets:
        prepared = prepare_dataset(dataset, work_dir, budget.rows.get(dataset), log=log)
        if "warm_up_s" not in result:
            result["warm_up_s"] = warm_up(prepared, budget)
            log(f"[{dataset}] warm-up fit {result['warm_up_s']:.0f} s (not counted in any row)")
        eval_labels = prepared.labels["eval"]
        ds = {"counts": prepared.counts, "prepare_s": prepared.seconds,
              "eval_mean_label": float(eval_labels.mean()), "eval_zero_share": float(np.mean(eval_labels == 0)),
              "references": references(prepared.labels["train"], eval_labels), "rows": {}, "skipped": {}}
        transforms = {}  # Transform settings a row changes -> that Transform of the data set
        evals = {}  # row id -> per-seed eval outputs, for the paired bootstrap
        for row in rows:
            if not applies(row, dataset):
                continue
            data_for_row = prepared
            if row.transform_changes:
                key = transform_key(row.transform_changes)
                if key not in transforms:
                    transforms[key] = reanalyze(prepared, row.transform_changes, work_dir, log=log)
                data_for_row = transforms[key]
            runs = []
            for seed in range(seeds):
                t0 = time.time()
                train = (lightgbm_peers.train_and_evaluate if row.kind in lightgbm_peers.KINDS
                         else bgnbd_peer.train_and_evaluate if row.kind == bgnbd_peer.KIND else train_and_evaluate)
                try:
                    run = train(data_for_row, row, seed, budget, time_serving=seed < budget.serving_seeds)
                except Exception as e:  # one broken kind (e.g. one being written) must not stop the bench
                    message = (f"{row.label} on {dataset}: failed at seed {seed} ({type(e).__name__}: "
                               f"{str(e).splitlines()[0] if str(e) else ''}); row left out")
                    log(f"[{dataset}] {message}\n{traceback.format_exc()}")
                    ds["skipped"][row.id] = message
                    notes.append(message)
                    break
                run["seed"] = seed
                evals.setdefault(row.id, []).append(run.pop("_eval"))
                runs.append(run)
                for note in run.pop("notes", []):
                    if note not in notes:
                        notes.append(note)
                log(f"[{dataset}] {row.label:<30} seed {seed}: MAE {run['mae']:.3f}  Gini {run['normalized_gini']:.3f}"
                    f"  Spearman {run['spearman']:.3f}  XAUC {run['xauc']:.3f}  steps {run.get('best_step', '-')}/"
                    f"{run.get('steps_trained', '-')}  train {run['train_s']:.1f}s  ({time.time() - t0:.0f}s)")
            if len(runs) == seeds:
                ds["rows"][row.id] = {"label": row.label, "kind": row.kind, "changes": dict(row.changes),
                                      "runs": runs, "aggregate": aggregate(runs)}
                ds["targets"] = target_checks(dataset, ds["rows"])
                result["results"][dataset] = ds
                _write(result, out_dir, started, partial=True)
        ds["targets"] = target_checks(dataset, ds["rows"])
        peers = [r for r in ds["rows"] if r != BASE_KIND and r not in ABLATIONS
                 and ds["rows"][r]["kind"] != BASE_KIND]
        variants = [r for r in ds["rows"] if r != BASE_KIND and r not in ABLATIONS
                    and ds["rows"][r]["kind"] == BASE_KIND]
        if BASE_KIND in ds["rows"] and (peers or variants):
            t0 = time.time()
            labels = prepared.labels["eval"][:budget.eval_rows] if budget.eval_rows else prepared.labels["eval"]
            groups = prepared.keys["eval"][:labels.size]
            if peers:
                ds["bootstrap"] = compare.compare(labels, groups, evals, BASE_KIND, peers)
            # Each RQ-Reg variant against the default RQ-Reg and every peer, on the same resamples.
            ds["variant_bootstrap"] = {variant: compare.compare(labels, groups, evals, variant, [BASE_KIND, *peers])
                                       for variant in variants}
            log(f"[{dataset}] paired bootstrap of {BASE_KIND} vs {len(peers)} peers and of {len(variants)} "
                f"variants in {time.time() - t0:.0f} s")
        result["results"][dataset] = ds
        del prepared, transforms, evals
    _write(result, out_dir, started, partial=False)
    log(f"bench: wrote {os.path.join(out_dir, 'RESULTS.md')} and results.json in {result['wall_s'] / 60:.1f} min")
    return result


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Registers `bench` on an argparse subparsers object (the `rqvalue` command line)."""
    parser = subparsers.add_parser(
        "bench", help="train and evaluate every model kind on every embedded data set (several seeds); "
                      "writes RESULTS.md and results.json",
        description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DEFAULT_DATASETS),
                        help=f"data sets (default: {' '.join(DEFAULT_DATASETS)}, every customer)")
    parser.add_argument("--models", nargs="+", default=None,
                        help="row ids: registered kinds (rqreg, ziln, mse, logmse, twostage, ...) and ablations "
                             f"({', '.join(ABLATIONS)}), bench-only peers, or 'all'; default: "
                             f"{' '.join(DEFAULT_MODELS)}")
    parser.add_argument("--variant", action="append", default=[], metavar='"ID: key=value ..."',
                        help="an extra row with ModelConfig changes, e.g. --variant 'lr_low: learning_rate=0.001' "
                             "or --variant 'ziln_slow: kind=ziln learning_rate=0.001' (repeatable)")
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help=f"seeds per model (default {DEFAULT_SEEDS})")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiplies data sizes and step budgets (default 1.0)")
    parser.add_argument("--rows", type=int, default=None, metavar="N",
                        help="customers (cdnow, cdnow_snapshots) or rows of every selected data set, instead of "
                             "the defaults (e.g. a smaller cdnow_snapshots for a search of variants)")
    parser.add_argument("--tiny", action="store_true", help="smallest sizes and budgets (for tests)")
    parser.add_argument("--decodings", action="store_true",
                        help="also score every decoding rule on the RQ-Reg and GR runs (off by default: time)")
    parser.add_argument("--no-decodings", action="store_true", help="do not score the decoding rules (the default)")
    parser.add_argument("--no-serving-memory", action="store_true",
                        help="skip measuring each row's serving memory in a fresh process (saves ~10-30 s a row)")
    parser.add_argument("--serving-memory-rows", nargs="+", default=None, metavar="ID",
                        help="measure the serving memory of these row ids only (default: rqreg mse; 'all': "
                             "every row)")
    parser.add_argument("--out", default="benchmarks", help="folder for RESULTS.md and results.json")
    parser.add_argument("--work-dir", default=None,
                        help="folder for prepared data and transform outputs (default: a temporary folder)")
    parser.set_defaults(func=main)
    return parser


def main(args) -> int:
    """Runs `rqvalue bench` from parsed arguments."""
    if args.seeds < 1:
        print("rqvalue bench: --seeds must be at least 1", file=sys.stderr)
        return 2
    if not args.scale > 0:
        print("rqvalue bench: --scale must be positive", file=sys.stderr)
        return 2
    if args.rows is not None and args.rows < 1:
        print("rqvalue bench: --rows must be positive", file=sys.stderr)
        return 2
    budget = budget_for(args.scale, args.tiny)
    if args.rows is not None:
        budget = dataclasses.replace(budget, rows={**budget.rows, **{name: args.rows for name in args.datasets}})
    budget = dataclasses.replace(budget, decodings=bool(args.decodings and not args.no_decodings))
    if args.no_serving_memory:
        budget = dataclasses.replace(budget, serving_memory=False)
    if args.serving_memory_rows:
        rows = None if args.serving_memory_rows == ["all"] else tuple(args.serving_memory_rows)
        budget = dataclasses.replace(budget, serving_memory_rows=rows)
    try:
        variants = [parse_variant(text) for text in args.variant]
    except ValueError as e:  # ConfigError too
        print(f"rqvalue bench: {e}", file=sys.stderr)
        return 2
    models = None if args.models == ["all"] else (args.models or list(DEFAULT_MODELS))
    command = "rqvalue bench " + " ".join(
        [f"--datasets {' '.join(args.datasets)}" if list(args.datasets) != list(DEFAULT_DATASETS) else "",
         f"--models {' '.join(args.models)}" if args.models else "",
         " ".join(f"--variant '{text}'" for text in args.variant),
         f"--seeds {args.seeds}" if args.seeds != DEFAULT_SEEDS else "",
         f"--scale {args.scale:g}" if args.scale != 1.0 else "",
         f"--rows {args.rows}" if args.rows is not None else "",
         "--tiny" if args.tiny else "",
         "--decodings" if budget.decodings else "",
         "--no-serving-memory" if args.no_serving_memory else "",
         f"--serving-memory-rows {' '.join(args.serving_memory_rows)}" if args.serving_memory_rows else "",
         f"--out {args.out}"]).strip()
    command = " ".join(command.split())
    work_dir = args.work_dir
    temporary = work_dir is None
    if temporary:
        work_dir = tempfile.mkdtemp(prefix="rqvalue_bench_")
    try:
        run_bench(args.datasets, models, args.seeds, budget, os.path.abspath(args.out),
                  os.path.abspath(work_dir), command, variants=variants)
    finally:
        if temporary:
            shutil.rmtree(work_dir, ignore_errors=True)
    return 0

