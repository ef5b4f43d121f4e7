"""A benchmark section: RQ-Reg's decoding rules compared on the same trained models.

Decoding only changes how the serving outputs are read off the code distribution
(`models.model.DECODINGS`), so each default RQ-Reg run of the benchmark is scored once per rule,
with the interval recalibrated on the validation slice for each (its quantiles differ by rule),
and the serving signature timed again. The table says which rule serves the best predictions at
which cost.
"""

import time
from typing import Any, Dict, List, Mapping, Sequence

import numpy as np

# Table columns: metric key -> column title.
COLUMNS = {
    "mae": "MAE",
    "mae_median": "MAE (median)",
    "normalized_gini": "norm. Gini",
    "spearman": "Spearman",
    "xauc": "XAUC",
    "calibration_error": "decile cal. err.",
    "coverage_80": "80% cov.",
    "serve_ms_per_1000": "serve ms/1k",
}


def evaluate(model, prepared, config: Mapping[str, Any], budget, eval_x: Mapping[str, np.ndarray],
             labels: np.ndarray, validation, time_serving: bool, own: Mapping[str, Any]
             ) -> Dict[str, Dict[str, float]]:
    """Metrics of every decoding rule of one trained RQ-Reg model; leaves the model as it was.

    `own` holds the run's metrics under the model's own decoding, which are reused, not recomputed."""
    from models import calibration
    from models import model as rq_model
    from pipeline import bench

    original = model.decoding
    results = {}
    try:
        for decoding in rq_model.DECODINGS:
            if decoding == original:
                results[decoding] = {key: own[key] for key in (*COLUMNS, "predict_s") if key in own}
                continue
            model.decoding = decoding
            calibration.calibrate_model(model, validation, log=None)
            started = time.perf_counter()
            outputs = bench.predict(bench.predict_function(model, eval_x), eval_x)
            result = {**bench.scores(labels, outputs), "predict_s": time.perf_counter() - started}
            if time_serving:
                result["serve_ms_per_1000"], _ = bench.serving_time(model, prepared, config, budget)
            results[decoding] = result
    finally:
        model.decoding = original
        calibration.calibrate_model(model, validation, log=None)
    return results


def render(runs: Sequence[Mapping[str, Any]], default: str) -> List[str]:
    """Markdown lines of the decoding table from the runs of the default RQ-Reg row (none if not measured)."""
    from pipeline import bench

    per_rule: Dict[str, List[Mapping[str, float]]] = {}
    for run in runs:
        for decoding, values in (run.get("decodings") or {}).items():
            per_rule.setdefault(decoding, []).append(values)
    if not per_rule:
        return []
    lines = ["", f"RQ-Reg decoding rules on the same trained models ({len(runs)} seed(s); the default, "
                 f"`{default}`, is the rqreg row above; interval recalibrated per rule; `beam` keeps the "
                 f"{runs[0].get('beam_width', '?')} most probable code prefixes per level):", "",
             "| decoding | " + " | ".join(COLUMNS.values()) + " |",
             "|---|" + "---|" * len(COLUMNS)]
    for decoding, values in per_rule.items():
        agg = bench.aggregate(values)
        lines.append(f"| {decoding} | " + " | ".join(bench._cell(agg, key) for key in COLUMNS) + " |")
    return lines
