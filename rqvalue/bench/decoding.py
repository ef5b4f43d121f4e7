"""A benchmark section: decoding rules compared on the same trained models.

Decoding only changes how the serving outputs are read off a trained sequence model, so each
default run of a kind with several rules is scored once per rule, with the interval recalibrated
on the validation slice for each (its quantiles differ by rule), and the serving signature timed
again. The table says which rule serves the best predictions at which cost. The rules per kind
(`RULES`): RQ-Reg's `decoding` (`models.choices.DECODINGS`), and GR's `first_tokens`, the number of
likeliest first tokens whose greedy paths the prediction averages (1 is the paper's greedy decode).
"""

import time
from typing import Any, Dict, Mapping, Sequence, Tuple

import numpy as np

from rqvalue.bench import scoring

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


def rules(kind: str, model) -> Tuple[str, Tuple[Any, ...]]:
    """(model attribute, its values to compare) for a kind with several decoding rules; ("", ()) otherwise."""
    from models import choices

    if kind == "rqreg" and hasattr(model, "decoding"):
        return "decoding", tuple(choices.DECODINGS)
    if kind == "gr" and hasattr(model, "first_tokens"):
        return "first_tokens", tuple(sorted({1, model.first_tokens}))
    return "", ()


def evaluate(model, attribute: str, values: Sequence[Any], prepared, config: Mapping[str, Any], budget,
             eval_x: Mapping[str, np.ndarray], labels: np.ndarray, validation, time_serving: bool,
             own: Mapping[str, Any]) -> Dict[str, Dict[str, float]]:
    """Metrics of one trained model with `attribute` set to each of `values`; leaves the model as it was.

    `own` holds the run's metrics under the model's own setting, which are reused, not recomputed.
    Results are keyed by str(value)."""
    from models import calibration

    original = getattr(model, attribute)
    # The calibration of the model's own setting, restored at the end (cheaper than refitting it).
    calibrated = [(variable, variable.numpy()) for variable in (model.interval_thresholds, model.interval_offsets,
                                                                  model.mean_knots)]
    results = {}
    try:
        for decoding in values:
            if decoding == original:
                results[str(decoding)] = {key: own[key] for key in (*COLUMNS, "predict_s") if key in own}
                continue
            setattr(model, attribute, decoding)
            predict_fn = scoring.predict_function(model, eval_x)
            calibration.calibrate_model(model, validation, log=None, predict=predict_fn,
                                        mean=config["mean_calibration"])
            started = time.perf_counter()
            outputs = scoring.predict(predict_fn, eval_x)
            result = {**scoring.scores(labels, outputs), "predict_s": time.perf_counter() - started}
            if time_serving:
                result["serve_ms_per_1000"], _ = scoring.serving_time(model, prepared, config, budget)
            results[str(decoding)] = result
    finally:
        setattr(model, attribute, original)
        for variable, value in calibrated:
            variable.assign(value)
    return results
