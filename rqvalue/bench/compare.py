"""Bench comparisons: RQ-Reg against every peer by a paired bootstrap, and proper scores of the quantiles.

Each (row, seed) leaves its eval outputs (`prediction`, `median`, `lower`, `upper`, in label units)
in memory; after a data set's rows have run, `compare` pools them over seeds and asks, for every
peer, how sure the difference is: `models.bootstrap.paired_bootstrap` resamples the eval entities
(on cdnow_snapshots a customer's four snapshots are drawn together; elsewhere an entity is one row),
the same resample for both models and every seed, `RESAMPLES` times.

Scores (lower is better for the losses):
- normalized Gini and Spearman of `prediction`: difference RQ-Reg − peer (> 0: RQ-Reg ahead);
- pinball loss of the quantiles: `q10` at 10%, `median` at 50%, `q90` at 90%. q10 and q90 are
  the model's own bounds made conformal 10% / 90% quantiles one tail at a time on the validation
  rows (`scoring.quantiles`); the served 80% interval's `lower` / `upper` share one budget of misses,
  so on zero-inflated labels (a lower bound of 0 misses nothing) its upper bound is near the 80%
  quantile, and scoring it as a 90% quantile would rank models by how their interval splits its
  misses. Outputs without q10/q90 are scored on lower/upper;
- CRPS of the distribution those quantiles describe (`models.scoring_rules.quantile_knots`:
  linear between the 10/50/90% quantiles, the outer 10% tails as point masses at the bounds): the same
  rule for every model, so it compares what each model serves. RQ-Reg's exact CRPS from its code tree
  (every leaf's value and probability) and ZILN's exact CRPS from its lognormal mixture are reported
  beside it (`crps_model`, "CRPS (own distribution)"; both before the mean map), and compared
  between the two where both rows have it;
- for the losses the difference is peer − RQ-Reg (> 0: RQ-Reg better).

A target counts as met only where the 95% interval lies above zero.
"""

from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95
RANKING = ("normalized_gini", "spearman")
LOSSES = ("crps", "pinball_10", "pinball_50", "pinball_90")
# Per-row CRPS of a model's own whole distribution (RQ-Reg's code tree, ZILN's mixture), in its eval outputs.
MODEL_CRPS = "crps_model"
TITLES = {MODEL_CRPS: "CRPS (own distribution)", "normalized_gini": "norm. Gini", "spearman": "Spearman", "crps": "CRPS (quantiles)",
          "pinball_10": "pinball 10%", "pinball_50": "pinball 50%", "pinball_90": "pinball 90%"}


def distribution_losses(labels: np.ndarray, outputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Per-row CRPS of the 10/50/90% quantiles and pinball losses at 10/50/90%, [n] each."""
    from models import scoring_rules

    q10, q90 = outputs.get("q10", outputs["lower"]), outputs.get("q90", outputs["upper"])
    quantiles = np.stack([q10, outputs["median"], q90], axis=1)
    x, cdf = scoring_rules.quantile_knots(quantiles, (0.1, 0.5, 0.9))
    out = {
        "crps": scoring_rules.crps_piecewise(x, cdf, labels),
        "pinball_10": scoring_rules.pinball_loss(labels, q10, 0.1),
        "pinball_50": scoring_rules.pinball_loss(labels, outputs["median"], 0.5),
        "pinball_90": scoring_rules.pinball_loss(labels, q90, 0.9),
    }
    if MODEL_CRPS in outputs:
        out[MODEL_CRPS] = np.asarray(outputs[MODEL_CRPS], dtype=np.float64)
    return out


def mean_losses(labels: np.ndarray, outputs: Mapping[str, np.ndarray]) -> Dict[str, float]:
    """Mean of each `distribution_losses` score, plus the coverage of the 80% interval per prediction decile."""
    from models import scoring_rules

    out = {key: float(np.mean(value)) for key, value in distribution_losses(labels, outputs).items()
           if key != MODEL_CRPS}
    by_decile = scoring_rules.coverage_by_group(labels, outputs["lower"], outputs["upper"], outputs["prediction"],
                                                min(10, labels.size))
    out["coverage_80_by_decile"] = [float(c) for c in by_decile]
    return out


def compare(labels: np.ndarray, groups: Optional[Sequence], evals: Mapping[str, Sequence[Mapping[str, np.ndarray]]],
            base: str, peers: Sequence[str], resamples: int = RESAMPLES, seed: int = 0) -> List[Dict[str, Any]]:
    """Paired bootstrap of `base` against each peer on every score, pooled over seeds.

    Args:
      labels: [n] eval labels.
      groups: [n] entity of each eval row (resampled together); None: rows independent.
      evals: row id -> one outputs dict per seed (prediction, median, lower, upper; [n] each).
      base: the row compared (RQ-Reg).
      peers: the rows it is compared with.

    Returns:
      one dict per (peer, score): peer, metric, difference (in `base`'s favour), low, high, met.
    """
    from models import bootstrap

    ours = evals[base]
    our_losses = [distribution_losses(labels, o) for o in ours]
    out = []
    for peer in peers:
        theirs = evals[peer]
        their_losses = [distribution_losses(labels, o) for o in theirs]
        own = (MODEL_CRPS,) if all(MODEL_CRPS in loss for loss in (*our_losses, *their_losses)) else ()
        for metric in (*RANKING, *LOSSES, *own):
            if metric in RANKING:
                a = np.stack([o["prediction"] for o in ours])
                b = np.stack([o["prediction"] for o in theirs])
                interval = bootstrap.paired_bootstrap(labels, a, b, metric, groups, resamples, seed, LEVEL)
            else:  # peer − ours: > 0 when RQ-Reg's loss is lower
                a = np.stack([loss[metric] for loss in their_losses])
                b = np.stack([loss[metric] for loss in our_losses])
                interval = bootstrap.paired_bootstrap(labels, a, b, "mean", groups, resamples, seed, LEVEL)
            out.append({"peer": peer, "metric": metric, "seeds": [len(ours), len(theirs)], **interval,
                        "met": bool(interval["low"] > 0.0)})
    return out


def render(dataset: str, ds: Mapping[str, Any]) -> List[str]:
    """Markdown lines: the bootstrap tables of one data set (none if they were not computed): RQ-Reg vs
    each peer, then each RQ-Reg variant (`--variant`) vs RQ-Reg and each peer."""
    rows = ds.get("bootstrap") or []
    lines = _table(rows, ds, "RQ-Reg") + _distribution_table(ds) if rows else []
    for variant, variant_rows in (ds.get("variant_bootstrap") or {}).items():
        lines += _table(variant_rows, ds, ds["rows"].get(variant, {}).get("label", variant))
    return lines


def _table(rows: Sequence[Mapping[str, Any]], ds: Mapping[str, Any], base: str) -> List[str]:
    """Markdown lines: the paired bootstrap of `base` against each peer."""
    first = rows[0]
    lines = ["", f"**{base} vs each peer, paired bootstrap** ({first['resamples']:,} resamples of "
                 f"{first['clusters']:,} eval entities, pooled over seeds; 95% interval; ranking: {base} − peer, "
                 f"losses: peer − {base}, so > 0 is {base} ahead; *met* = interval above 0):", "",
             "| peer | " + " | ".join(TITLES[m] for m in (*RANKING, *LOSSES, MODEL_CRPS)) + " |",
             "|---|" + "---|" * (len(RANKING) + len(LOSSES) + 1)]
    by_peer: Dict[str, Dict[str, Mapping[str, Any]]] = {}
    for row in rows:
        by_peer.setdefault(row["peer"], {})[row["metric"]] = row
    for peer, metrics in by_peer.items():
        label = ds["rows"].get(peer, {}).get("label", peer)
        lines.append(f"| {label} | " + " | ".join(_interval(metrics.get(m)) for m in (*RANKING, *LOSSES, MODEL_CRPS))
                     + " |")
    return lines


def _interval(row: Optional[Mapping[str, Any]]) -> str:
    if row is None:
        return "n/a"
    scale = max(abs(row["difference"]), abs(row["low"]), abs(row["high"]))
    digits = 4 if scale < 1 else 3 if scale < 10 else 2
    return (f"{row['difference']:+.{digits}f} [{row['low']:+.{digits}f}, {row['high']:+.{digits}f}]"
            f"{' met' if row['met'] else ''}")


def _distribution_table(ds: Mapping[str, Any]) -> List[str]:
    """Mean scores of every row (mean ± std over seeds), and its 80% coverage per prediction decile."""
    keys = ("crps", MODEL_CRPS, "pinball_10", "pinball_50", "pinball_90")
    lines = ["", "Distribution scores on eval (lower is better; *CRPS (quantiles)* and the pinball losses score "
                 "the model's 10/50/90% quantiles, its 10% and 90% ones made conformal one tail at a time on the "
                 "validation rows (`rqvalue/bench/scoring.py` `quantiles`), not the served interval's bounds; "
                 "*CRPS (own distribution)*: exact CRPS of the "
                 "model's whole predictive distribution, before the mean map: RQ-Reg's from its code tree (every "
                 "leaf's value and probability), ZILN's from its mixture (1 − p)·δ₀ + p·LogNormal(μ, σ) in "
                 "closed form; n/a for models that serve quantiles only). 80% coverage per prediction decile: "
                 "seed 0, lowest decile first.", "",
             "| model | CRPS (quantiles) | CRPS (own distribution) | pinball 10% | pinball 50% | pinball 90% | "
             "80% cov. by decile |", "|---|---|---|---|---|---|---|"]
    for row in ds["rows"].values():
        agg = dict(row["aggregate"])
        agg.setdefault(MODEL_CRPS, agg.get("crps_tree"))  # results written before crps_model existed
        deciles = row["runs"][0].get("coverage_80_by_decile") or []
        lines.append(f"| {row['label']} | " + " | ".join(_mean_std(agg.get(k)) for k in keys) + " | "
                     + " ".join(f"{c:.2f}" for c in deciles) + " |")
    return lines


def _mean_std(cell: Optional[Mapping[str, float]]) -> str:
    if not cell or cell["mean"] != cell["mean"]:
        return "n/a"
    return f"{cell['mean']:.4g} ± {cell['std']:.2g}" if cell["n"] > 1 else f"{cell['mean']:.4g}"


def targets(results: Mapping[str, Any]) -> List[str]:
    """The Targets section: which bootstrap targets are met, with the numbers."""
    lines = ["## Targets (paired bootstrap)", "",
             "A target counts as met only if the 95% bootstrap interval of RQ-Reg's lead excludes zero "
             "(lies above it). §4: normalized Gini ahead of every peer on cdnow and cdnow_snapshots; §5: "
             "CRPS and pinball losses lower than every peer on every data set.", ""]
    for dataset, ds in results.items():
        rows = ds.get("bootstrap") or []
        if not rows:
            lines += [f"- **{dataset}**: not evaluated (RQ-Reg or the peers were not run).", ""]
            continue
        for title, metrics in (("normalized Gini (§4)", ("normalized_gini",)), ("Spearman", ("spearman",)),
                               ("CRPS and pinball (§5)", (*LOSSES, MODEL_CRPS))):
            chosen = [r for r in rows if r["metric"] in metrics]
            met = [r for r in chosen if r["met"]]
            missed = [r for r in chosen if not r["met"]]
            verdict = "MET" if not missed else "NOT MET"
            detail = "; ".join(f"{TITLES[r['metric']]} vs {ds['rows'].get(r['peer'], {}).get('label', r['peer'])} "
                               f"{_interval(r)}" for r in missed) or "every interval above 0"
            lines.append(f"- **{dataset}, {title}: {verdict}** ({len(met)} of {len(chosen)} met). "
                         f"{'Missed: ' + detail if missed else detail}.")
        lines.append("")
    return lines
