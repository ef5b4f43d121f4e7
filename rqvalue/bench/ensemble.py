"""Does averaging RQ-Reg over seeds (or with a tree model) rank better than the trees?

    python -m rqvalue.bench.ensemble --dataset cdnow_snapshots --seeds 4 --out benchmarks/ensemble

One data set, prepared once as `rqvalue bench` prepares it (same split, Transform and budget); RQ-Reg
trained with `--seeds` seeds and LightGBM Tweedie with two (the bench's rows, unchanged). Scored on
the eval rows with `models.metrics`:
  - each seed alone, and the ensemble of the first k seeds (the mean of their predicted means) for
    every k, the cost of a k-model ensemble being k trainings and k served models;
  - the blend of the two-seed RQ-Reg ensemble and LightGBM (equal weights): how much the two model
    families know that the other does not.
Each ensemble against LightGBM (its seeds pooled) gets the 95% paired bootstrap interval of the
difference in normalized Gini and Spearman (1,000 resamples, an entity's rows resampled together).
Nothing is chosen on eval: the ensembles and the blend weight are fixed in advance.
Writes `<out>/RESULTS.md` and `<out>/results.json`.
"""

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from typing import Any, Dict, List, Sequence

import numpy as np

PEER = "lightgbm_tweedie"
PEER_SEEDS = 2
RANKING = ("normalized_gini", "spearman")


def _scores(labels: np.ndarray, prediction: np.ndarray) -> Dict[str, float]:
    from models import metrics

    return {"normalized_gini": metrics.normalized_gini(labels, prediction),
            "spearman": metrics.spearman(labels, prediction)}


def _interval(labels, groups, ours: np.ndarray, theirs: np.ndarray, metric: str) -> Dict[str, float]:
    from models import bootstrap

    return bootstrap.paired_bootstrap(labels, ours, theirs, metric, groups, 1000, 0, 0.95)


def measure(dataset: str, seeds: int, rows, work_dir: str, log=print) -> Dict[str, Any]:
    from rqvalue.bench import data, lightgbm_peers, train
    from rqvalue.bench import rows as rows_lib

    budget = dataclasses.replace(rows_lib.DEFAULT_BUDGET, serving_memory=False, decodings=False)
    prepared = data.prepare_dataset(dataset, work_dir, rows if rows else budget.rows.get(dataset), log=log)
    labels, groups = prepared.labels["eval"], prepared.keys["eval"]
    by_id = {row.id: row for row in rows_lib.available_rows()[0]}
    predictions: Dict[str, List[np.ndarray]] = {"rqreg": [], PEER: []}
    train_s: Dict[str, List[float]] = {"rqreg": [], PEER: []}
    for row_id, count, fit in (("rqreg", seeds, train.train_and_evaluate),
                               (PEER, PEER_SEEDS, lightgbm_peers.train_and_evaluate)):
        for seed in range(count):
            started = time.time()
            run = fit(prepared, by_id[row_id], seed, budget, time_serving=False)
            predictions[row_id].append(np.asarray(run.pop("_eval")["prediction"], dtype=np.float64))
            train_s[row_id].append(float(run["train_s"]))
            log(f"[{dataset}] {row_id} seed {seed}: Gini {run['normalized_gini']:.4f} ({time.time() - started:.0f} s)")
    return {"dataset": dataset, "counts": prepared.counts, "seeds": seeds, "train_s": train_s,
            "table": ensemble_table(labels, groups, predictions["rqreg"], predictions[PEER])}


def ensemble_table(labels: np.ndarray, groups, ours: Sequence[np.ndarray], theirs: Sequence[np.ndarray]
                   ) -> List[Dict[str, Any]]:
    """Rows of the table: the peer (seeds pooled), each of our seeds, the ensembles of our first k
    seeds (k >= 2) and the blend of our two-seed ensemble with the peer; all but the peer with
    their bootstrap intervals against it."""
    peer = np.stack(theirs)
    candidates = {f"RQ-Reg seed {s}": ours[s][None] for s in range(len(ours))}
    for k in range(2, len(ours) + 1):
        candidates[f"RQ-Reg ensemble of {k} seeds"] = np.mean(ours[:k], axis=0)[None]
    candidates["RQ-Reg ×2 + LightGBM blend"] = (0.5 * np.mean(ours[:2], axis=0) + 0.5 * np.mean(peer, axis=0))[None]
    table = [{"model": "LightGBM Tweedie (seeds pooled)",
              **{m: float(np.mean([_scores(labels, p)[m] for p in peer])) for m in RANKING}}]
    for name, prediction in candidates.items():
        table.append({"model": name, **_scores(labels, prediction[0]),
                      **{f"{m}_vs_lightgbm": _interval(labels, groups, prediction, peer, m) for m in RANKING}})
    return table


def render(result: Dict[str, Any], command: str) -> str:
    def cell(interval):
        verdict = " above 0" if interval["low"] > 0 else (" below 0" if interval["high"] < 0 else "")
        return f"{interval['difference']:+.4f} [{interval['low']:+.4f}, {interval['high']:+.4f}]{verdict}"

    lines = [f"# RQ-Reg ensembles against LightGBM on {result['dataset']}", "",
             f"Command: `{command}`", "",
             "Rows: " + ", ".join(f"{k} {v:,}" for k, v in result["counts"].items()) + "; training s per run: "
             + ", ".join(f"{k} {np.mean(v):.1f}" for k, v in result["train_s"].items()) + ".", "",
             "| model | norm. Gini | Spearman | Gini − LightGBM [95%] | Spearman − LightGBM [95%] |",
             "|---|---:|---:|---|---|"]
    for row in result["table"]:
        versus = ([cell(row[f"{m}_vs_lightgbm"]) for m in RANKING] if "normalized_gini_vs_lightgbm" in row
                  else ["", ""])
        lines.append(f"| {row['model']} | {row['normalized_gini']:.4f} | {row['spearman']:.4f} | "
                     + " | ".join(versus) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="cdnow_snapshots")
    parser.add_argument("--seeds", type=int, default=4, help="RQ-Reg seeds (at least 2)")
    parser.add_argument("--rows", type=int, default=None, help="customers or rows (default: the bench's)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--work-dir", default=None)
    args = parser.parse_args(argv)
    if args.seeds < 2:
        parser.error("--seeds: an ensemble needs at least 2")
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="rqvalue_ensemble_")
    result = measure(args.dataset, args.seeds, args.rows, work_dir)
    os.makedirs(args.out, exist_ok=True)
    shown = [f"--dataset {args.dataset}", f"--seeds {args.seeds}", f"--out {args.out}"]
    command = "python -m rqvalue.bench.ensemble " + " ".join(shown + ([f"--rows {args.rows}"] if args.rows else []))
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(result, f, indent=1, default=float)
    with open(os.path.join(args.out, "RESULTS.md"), "w") as f:
        f.write(render(result, command))
    print(render(result, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
