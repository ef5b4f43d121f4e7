"""Bench results: aggregation over seeds, the target checks, and RESULTS.md."""

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from rqvalue.bench import compare
from rqvalue.bench.decoding import COLUMNS as DECODING_COLUMNS
from rqvalue.bench.rows import ABLATIONS, BASE_KIND, DURATION_FEATURE, OOD_ROWS, VALIDATION_FRACTION

# Metric key -> (column title, higher is better). Order = table order.
METRICS = {
    "mae": ("MAE", False),
    "mae_median": ("MAE (median)", False),
    "rmse": ("RMSE", False),
    "normalized_gini": ("norm. Gini", True),
    "spearman": ("Spearman", True),
    "xauc": ("XAUC", True),
    "calibration_error": ("decile cal. err.", False),
    "coverage_80": ("80% cov.", None),
    "coverage_80_worst_group": ("worst group cov.", None),
    "ood_max_prediction": ("OOD max pred.", None),
    "train_s": ("train s", None),
    "serve_ms_per_1000": ("serve ms/1k", None),
    "serve_mb_per_1000": ("serve MB/1k", None),
}


# What RQ-Reg must beat every baseline on, per data set family.
TARGETS = {"ltv": ("normalized_gini", "spearman", "mae"), "watch_time": ("xauc", "mae")}


def aggregate(runs: Sequence[Mapping[str, Any]]) -> Dict[str, Dict[str, float]]:
    """metric -> {mean, std (sample std over seeds; 0 for one seed), n}."""
    out = {}
    keys = []
    for run in runs:
        keys += [k for k, v in run.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in keys]
    for key in keys:
        values = np.array([float(r[key]) for r in runs if r.get(key) is not None], dtype=np.float64)
        finite = values[np.isfinite(values)]
        out[key] = {
            "mean": float(finite.mean()) if finite.size else math.nan,
            "std": float(finite.std(ddof=1)) if finite.size > 1 else 0.0,
            "n": int(finite.size),
        }
    return out


def _fmt(value: float, key: str) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    if key in ("best_step", "steps_trained"):
        return f"{value:.0f}"
    if key in ("normalized_gini", "spearman", "xauc", "coverage_80", "coverage_80_worst_group",
               "calibration_error") and abs(value) < 10:
        return f"{value:.3f}"
    if key in ("train_s",):
        return f"{value:.1f}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cell(agg: Mapping[str, Mapping[str, float]], key: str) -> str:
    if key not in agg:
        return "n/a"
    mean, std, n = agg[key]["mean"], agg[key]["std"], agg[key]["n"]
    text = f"{_fmt(mean, key)} ± {_fmt(std, key)}" if n > 1 else _fmt(mean, key)
    if key == "ood_max_prediction" and "prediction_cap" in agg and mean >= 0.999 * agg["prediction_cap"]["mean"]:
        text += " (cap)"
    return text


def target_checks(dataset: str, rows: Mapping[str, Mapping[str, Any]]) -> Dict[str, Any]:
    """Whether `rqreg` beats every non-ablation baseline by more than the larger seed std, per target metric."""
    family = "watch_time" if dataset == "watch_time" else "ltv"
    if BASE_KIND not in rows:
        return {"dataset": dataset, "metrics": list(TARGETS[family]), "met": None, "comparisons": [],
                "reason": "rqreg was not run"}
    ours = rows[BASE_KIND]["aggregate"]
    comparisons = []
    for metric in TARGETS[family]:
        higher = METRICS[metric][1]
        for row_id, row in rows.items():
            if row_id == BASE_KIND or row_id in ABLATIONS or row.get("kind") == BASE_KIND:  # RQ-Reg's own rows
                continue
            theirs = row["aggregate"]
            lead = (ours[metric]["mean"] - theirs[metric]["mean"]) * (1 if higher else -1)
            spread = max(ours[metric]["std"], theirs[metric]["std"])
            comparisons.append({"metric": metric, "baseline": row_id, "rqreg": ours[metric]["mean"],
                                "baseline_mean": theirs[metric]["mean"], "lead": lead, "spread": spread,
                                "met": bool(lead > spread)})
    met = all(c["met"] for c in comparisons) if comparisons else None
    return {"dataset": dataset, "metrics": list(TARGETS[family]), "met": met, "comparisons": comparisons}


def _best(rows: Mapping[str, Mapping[str, Any]], metric: str, include_ablations: bool = True) -> Optional[str]:
    higher = METRICS[metric][1]
    candidates = [(r["aggregate"][metric]["mean"], rid) for rid, r in rows.items()
                  if metric in r["aggregate"] and math.isfinite(r["aggregate"][metric]["mean"])
                  and (include_ablations or rid not in ABLATIONS)]
    if not candidates:
        return None
    return (max if higher else min)(candidates)[1]


def render(result: Mapping[str, Any]) -> str:
    """RESULTS.md from the results.json content."""
    seeds = len(result["seeds"])
    b = result["budget"]
    lines = [
        "# Benchmark: RQ-Reg and the baselines on the embedded data sets",
        "",
        f"Produced by `{result['command']}` (`rqvalue/bench/`) on {result['finished']}, "
        f"whole run {result['wall_s'] / 60:.1f} min wall time (ingestion, Transform, every training run, "
        "evaluation and serving timing; the default `rqvalue bench` is sized to stay under 45 min on 2 CPU cores).",
        "",
        "**What.** The rows the command selects (by default `rqvalue.bench.rows.DEFAULT_MODELS`: RQ-Reg, the "
        "ZILN, MSE and two-stage networks and the pipeline's `gbdt` kind, and the bench-only peers "
        "LightGBM Tweedie, LightGBM two-stage (`rqvalue/bench/lightgbm_peers.py`) and BG/NBD + Gamma-Gamma "
        "(`rqvalue/bench/bgnbd_peer.py`, cdnow_snapshots only); `--models all` adds every other registered kind "
        "and four RQ-Reg ablations), trained and evaluated with the pipeline's own code: Feast "
        "point-in-time retrieval and `to_examples`, the ingestion's entity-hash train/eval split, "
        "`preprocessing_fn` analysed with `tensorflow_transform.beam` on train (default ModelConfig transform "
        "settings; every split is then transformed by the written transform graph via "
        "`transform_features_layer()`), `trainer.trainer_config` / `train_context` / `build_model`, and the Trainer's serving "
        "signature for timing. Metrics come from `models/metrics.py` on the eval split, in label units.",
        "",
        "**How.**",
        f"- Split: eval = entities with `split_of(key, eval_fraction=0.2)` == eval (as in the pipeline); a "
        f"validation slice of {VALIDATION_FRACTION:.0%} of the train entities (a second entity hash) is used "
        "only for early stopping; eval is used only for the metrics below.",
        f"- Seeds: {', '.join(str(s) for s in result['seeds'])} (`keras.utils.set_random_seed`; the data and "
        "split are fixed). Cells are mean ± sample std over seeds.",
        f"- Budget per run: batch {b['batch_size']}, at most {b['max_steps']} steps, validation every "
        f"{b['eval_every']} steps, stop after {b['patience']} validations without improvement, best "
        "validation-loss weights restored. Other settings are ModelConfig defaults (the pipeline's "
        "`train_steps` default of 2,000 is not used); on watch_time, `duration_feature` is "
        f"`{DURATION_FEATURE.get('watch_time', '')}` (D2Q's duration groups).",
        "- Rows per data set (`prepare(rows=...)`, entities or impressions): "
        + ", ".join(f"{k}: {'all' if v is None or v != v else f'{v:,}'}" for k, v in b["rows"].items()
                    if k in result["datasets"])
        + ".",
        f"- Hardware: {result['hardware']}. The machine was shared with other work while this ran, so "
        "the times (training s, serving ms per 1,000 examples) are noisy; compare them within a table only.",
        "",
        "**Columns.** MAE, RMSE, norm. Gini, Spearman, XAUC and decile calibration use `prediction` (the "
        "predictive mean); MAE (median) uses `median`. XAUC is `models.metrics.xauc` (label-tied pairs "
        "excluded from the denominator). *decile cal. err.* = mean over the 10 prediction deciles of "
        "|mean prediction − mean label|, divided by the overall mean label (results.json also has "
        "`calibration_error_positive`, the relative error averaged over deciles with a positive mean label). "
        "*80% cov.* = share of eval labels inside the served [lower, upper], split-conformal calibrated on "
        "the validation slice (`models.calibration`; nominal 0.80; results.json also has "
        "`coverage_80_top_bucket`, on the eval labels of the top value bucket, and the validation coverage "
        "before calibration). The interval is calibrated within up to `interval_groups` groups of the "
        "model's own prediction (quantile thresholds on the validation slice, at least "
        "`calibration.MIN_GROUP_ROWS` rows each); *worst group cov.* = the lowest eval coverage among those "
        "groups (results.json: `coverage_80_by_group`), i.e. how well the interval holds where the model "
        "predicts high or low values, not only on average. *OOD max pred.* = the largest `prediction` when every numeric "
        f"transformed feature of the first {OOD_ROWS} eval rows is set to 10× its largest |value| "
        "(predictions are clipped at 10× the largest training label; (cap) marks a model that reaches the "
        "clip). *train s* = wall time of `fit` (including validation passes); *serve ms/1k* = median time "
        "of the `serving_default` signature on "
        f"{b['serving_batch']:,} serialized raw eval examples ({b['serving_calls']} timed calls after one "
        f"warm-up call), measured on the first {b['serving_seeds']} seed(s) only (it does not depend on the "
        "seed, and RQ-Reg's tree enumeration makes it slow to time); *serve MB/1k* = peak resident memory of "
        "one `serving_default` call on the same raw eval examples minus the resident memory before it, per "
        "1,000 examples, with the model exported as the Trainer exports it and loaded in a fresh process "
        "(`models/serving_cost.py`), measured on the same seed(s)"
        + ("" if b.get("serving_memory", True) else " (not measured in this run: --no-serving-memory)")
        + (f" (rows {', '.join(b['serving_memory_rows'])} only)" if b.get("serving_memory_rows") else "") + ".",
        "",
    ]
    if result.get("partial"):
        lines[1:1] = ["", "**Partial results: the bench was still running when this file was written.**"]
    if result.get("notes"):
        lines += ["**Notes.**", ""] + [f"- {n}" for n in result["notes"]] + [""]
    for dataset in result["results"]:
        ds = result["results"][dataset]
        counts = ds["counts"]
        lines += [
            f"## {dataset}",
            "",
            f"{counts['train']:,} train, {counts['validation']:,} validation, {counts['eval']:,} eval examples; "
            f"eval mean label {ds['eval_mean_label']:.2f}, {ds['eval_zero_share']:.1%} zeros. "
            f"Ingestion + Transform {ds['prepare_s']:.0f} s.",
            "",
            "| model | " + " | ".join(title for title, _ in METRICS.values()) + " | steps |",
            "|---|" + "---|" * (len(METRICS) + 1),
        ]
        for row_id, row in ds["rows"].items():
            agg = row["aggregate"]
            steps = _cell(agg, "best_step")
            lines.append(f"| {row['label']} | " + " | ".join(_cell(agg, k) for k in METRICS) + f" | {steps} |")
        lines += ["", "*steps*: step of the restored (best-validation) weights (mean ± std); for gbdt and the "
                      "LightGBM rows, the number of trees kept by early stopping (two-stage: both stages). The "
                      "LightGBM rows' *serve ms/1k* is LightGBM's predict on transformed rows, not a TensorFlow "
                      "signature, so they have no *serve MB/1k*."]
        lines += compare.render(dataset, ds)
        lines += _searched(ds)
        for kind, default in ((BASE_KIND, _default_decoding()), ("gr", str(_default_field("gr_first_tokens")))):
            if kind in ds["rows"]:
                lines += decoding_table(ds["rows"][kind]["runs"], default, kind)
        constant = {row["label"]: sum(run.get("distinct_predictions", 2) <= 1 for run in row["runs"])
                    for row in ds["rows"].values()}
        constant = {label: n for label, n in constant.items() if n}
        if constant:
            lines += ["", "**Degenerate:** " + "; ".join(
                f"{label} predicts one constant value for every eval example in {n} of its {seeds} seeds"
                for label, n in constant.items()) + " (a constant ranks nothing: Spearman 0, XAUC 0.5)."]
        diffs = [run["serving_vs_predict_max_abs_diff"] for row in ds["rows"].values() for run in row["runs"]
                 if run.get("serving_vs_predict_max_abs_diff") is not None]
        if diffs:
            lines += ["", f"Serving check: on the timed batch, the `serving_default` signature (serialized raw "
                          f"examples → transform layer → model) and `predict_outputs` on the transformed eval "
                          f"features differ by at most {max(diffs):.3g} (label units) over all rows."]
        ref = ds.get("references", {})
        if ref:
            lines += ["", "For scale, constant predictions on the same eval split: " + "; ".join(
                f"{name} ({_fmt(r['value'], 'mae')}): MAE {_fmt(r['mae'], 'mae')}, RMSE {_fmt(r['rmse'], 'rmse')}"
                for name, r in ref.items()) + "."]
            if ds["eval_zero_share"] >= 0.5:
                lines[-1] += (" With over half the labels zero, the MAE-optimal constant is 0, and MAE rewards "
                              "predicting (near) 0 for most rows; Gini, Spearman and XAUC judge the ranking.")
        lines.append("")
        best = []
        for metric in ("mae", "mae_median", "rmse", "normalized_gini", "spearman", "xauc", "calibration_error"):
            row_id = _best(ds["rows"], metric)
            label = ds["rows"][row_id]["label"] if row_id else "n/a"
            best.append(f"{METRICS[metric][0]}: {label}{' (degenerate)' if label in constant else ''}")
        lines += ["Best per metric (mean over seeds): " + "; ".join(best) + ".", ""]
    lines += compare.targets(result["results"])
    lines += ["## Targets (seed spread)", "",
              "Is RQ-Reg (`rqreg`, default settings) ahead of every baseline (not the ablations) on normalized "
              "Gini, Spearman and MAE (LTV data sets) and on XAUC and MAE (watch time), by more than the "
              "seed-to-seed spread? Criterion: the mean difference in RQ-Reg's favour is larger than the larger "
              "of the two models' standard deviations over seeds. MAE is the MAE of `prediction` (the mean); "
              "a degenerate (constant) baseline still counts.", ""]
    for dataset in result["results"]:
        check = result["results"][dataset]["targets"]
        if check["met"] is None or check["met"] != check["met"]:  # not evaluated (NaN after a JSON round trip)
            lines += [f"- **{dataset}: not evaluated** ({check.get('reason', 'no baselines')}).", ""]
            continue
        verdict = "MET" if check["met"] else "NOT MET"
        lines += [f"- **{dataset}: {verdict}** on {', '.join(check['metrics'])}.", ""]
        lines += ["  | metric | baseline | RQ-Reg | baseline | lead | spread | ahead by more than spread |",
                  "  |---|---|---|---|---|---|---|"]
        for c in check["comparisons"]:
            lines.append(f"  | {METRICS[c['metric']][0]} | {c['baseline']} | {_fmt(c['rqreg'], c['metric'])} | "
                         f"{_fmt(c['baseline_mean'], c['metric'])} | {c['lead']:+.4g} | {c['spread']:.4g} | "
                         f"{'yes' if c['met'] else 'no'} |")
        lines.append("")
        missed = [c for c in check["comparisons"] if not c["met"]]
        if missed:
            lines += ["  Missed: " + "; ".join(
                f"{METRICS[c['metric']][0]} vs {c['baseline']} ({'behind' if c['lead'] <= 0 else 'ahead within spread'})"
                for c in missed) + ".", ""]
    lines += ["The evaluation was not tuned to pass these targets: budgets and settings were fixed before "
              "the run, the eval split is never seen during training or early stopping.", "",
              "What was tried to close the gaps, each measured with `--variant` rows of this bench (numbers in "
              "the README, sections \"The model\", \"The RQ codebook\" and \"Benchmark\"): the Huber regression "
              "term (weight 1 vs 0), learning rate 1e-3 vs 3e-3, an 800-step budget, codebook sizes from 8/8/8 "
              "to 64/16/16 and two vs three levels, smoothed code targets (`code_smoothing` 0.5-1.5), four "
              "decoding rules, and twice the data (`--scale 2`).", ""]
    return "\n".join(lines)


def _searched(ds: Mapping[str, Any]) -> List[str]:
    """What the LightGBM rows searched on the validation rows, and what each seed chose."""
    lines = []
    for row in ds["rows"].values():
        searched = [run.get("searched") for run in row["runs"] if run.get("searched")]
        if not searched:
            continue
        stages = searched[0] if "grid" not in searched[0] else {"model": searched[0]}
        parts = []
        for stage in stages:
            first = stages[stage]
            chosen = [(s if "grid" in s else s[stage])["chosen"] for s in searched]
            parts.append(f"{stage}: grid {first['grid']} chosen by {first['criterion']}; per seed: "
                         + "; ".join(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                               for k, v in c.items()) for c in chosen))
        how = searched[0].get("how", "learning rate 0.05, early stopping 50 rounds")
        lines += ["", f"*{row['label']}* searched ({how}): " + " | ".join(parts)]
    return lines


def _default_decoding() -> str:
    return _default_field("decoding")


def _default_field(name: str) -> Any:
    from pipeline import config as config_lib
    return getattr(config_lib.ModelConfig(), name)


def decoding_table(runs: Sequence[Mapping[str, Any]], default: str, kind: str = "rqreg") -> List[str]:
    """Markdown lines of the decoding table from the runs of a kind's default row (none if not measured)."""
    per_rule: Dict[str, List[Mapping[str, float]]] = {}
    for run in runs:
        for decoding, values in (run.get("decodings") or {}).items():
            per_rule.setdefault(decoding, []).append(values)
    if not per_rule:
        return []
    if kind == "gr":
        title = (f"GR decoding on the same trained models ({len(runs)} seed(s); `gr_first_tokens` = K: the "
                 f"prediction averages the greedy paths of the K likeliest first tokens, K = 1 is the paper's "
                 f"greedy decode; the default, K = {default}, is the gr row above; interval recalibrated per rule):")
        header = "| first tokens K |"
    else:
        title = (f"RQ-Reg decoding rules on the same trained models ({len(runs)} seed(s); the default, "
                 f"`{default}`, is the rqreg row above; interval recalibrated per rule; `beam` keeps the "
                 f"{runs[0].get('beam_width', '?')} most probable code prefixes per level):")
        header = "| decoding |"
    lines = ["", title, "", header + " " + " | ".join(DECODING_COLUMNS.values()) + " |",
             "|---|" + "---|" * len(DECODING_COLUMNS)]
    for decoding, values in per_rule.items():
        agg = aggregate(values)
        lines.append(f"| {decoding} | " + " | ".join(_cell(agg, key) for key in DECODING_COLUMNS) + " |")
    return lines
