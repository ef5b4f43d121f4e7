"""BG/NBD + Gamma-Gamma in the bench: the classic probabilistic CLV model, on the multi-snapshot task.

On `cdnow_snapshots` each example is a customer at one cut-off (a month end), and its raw features
already hold the customer's RFM summary as of that cut-off, in days, as `lifetimes` defines it:
`frequency` (repeat purchase days), `recency_days` (last − first purchase day), `customer_age_days`
(T: cut-off − first purchase day) and `monetary_value` (mean spend of the repeat purchase days). They
are read from the serialized raw examples (not Transform's scaled columns).

Cut-offs are handled one at a time: for each cut-off (the example's prediction time), a
`BetaGeoFitter` is fitted on the train customers' summaries as of that cut-off, and a
`GammaGammaFitter` on those of them with a repeat purchase and a positive monetary value; the eval
customers at the same cut-off get E[purchases in the next `HORIZON_DAYS` days | their history] ×
E[spend per purchase | their history] (Gamma-Gamma gives the population mean to customers without a
repeat purchase); time enters the models in weeks. No cut-off's model sees another cut-off's rows, and the validation rows are not
used for fitting. Both models take a small L2 penalty (`PENALIZER`), fixed, not tuned.

Then, as every kind: the mean map fitted on the validation rows (`models.mean_calibration`), and an
80% interval conformally calibrated on the validation rows around the point prediction
(`models.calibration.grouped_offsets` with lower = median = upper = the prediction).
"""

import time
from typing import Any, Dict

import numpy as np

from rqvalue.bench import compare, scoring
from rqvalue.bench.data import Prepared
from rqvalue.bench.rows import Budget, Row

KIND = "bgnbd_gamma_gamma"
HORIZON_DAYS = 365  # pipeline.datasets.cdnow_snapshots.HORIZON_DAYS
PENALIZER = 0.001
DAYS_PER_UNIT = 7.0  # the models see weeks: days make the likelihood badly conditioned (overflow)
RFM = ("frequency", "recency_days", "customer_age_days", "monetary_value")


def rfm(prepared: Prepared, split: str) -> Dict[str, np.ndarray]:
    """The RFM summary of every row of a split, from its serialized raw example."""
    import tensorflow as tf

    spec = {key: prepared.tft_output.raw_feature_spec()[key] for key in RFM}
    parsed = tf.io.parse_example(tf.constant(list(prepared.serialized[split])), spec)
    return {key: np.asarray(tf.sparse.to_dense(v) if isinstance(v, tf.SparseTensor) else v,
                            dtype=np.float64).reshape(-1) for key, v in parsed.items()}


def expected_purchases(params: Dict[str, float], t: float, frequency, recency, age) -> np.ndarray:
    """BG/NBD's E[purchases in (T, T + t] | x, t_x, T], [n], in a form that stays finite for large x.

    Fader, Hardie & Lee (2005), eq. 10, holds 2F1(r + x, b + x; a + b + x − 1; z) with
    z = t / (α + T + t), which `lifetimes` evaluates directly and which overflows for customers with
    many repeat purchases. Euler's transformation 2F1(A, B; C; z) = (1 − z)^(C − A − B)·2F1(C − A,
    C − B; C; z) turns ((α + T)/(α + T + t))^(r + x)·2F1(...) into (1 − z)^(a − 1)·2F1(a + b − 1 − r,
    a − 1; a + b + x − 1; z), whose first two parameters do not grow with x. The denominator's
    ((α + T)/(α + t_x))^(r + x) is formed in log space (an overflow to inf gives 0 purchases, its limit).
    """
    from scipy import special

    r, alpha, a, b = (float(params[k]) for k in ("r", "alpha", "a", "b"))
    x, t_x, age = (np.asarray(v, dtype=np.float64) for v in (frequency, recency, age))
    z = t / (alpha + age + t)
    tail = np.power(1.0 - z, a - 1.0) * special.hyp2f1(a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, z)
    numerator = (a + b + x - 1.0) / (a - 1.0) * (1.0 - tail)
    with np.errstate(over="ignore"):
        odds = np.where(x > 0, a / np.maximum(b + x - 1.0, 1e-12)
                        * np.exp((r + x) * np.log((alpha + age) / (alpha + t_x))), 0.0)
    return numerator / (1.0 + odds)


def _fit_predict(train: Dict[str, np.ndarray], rows: Dict[str, np.ndarray]) -> np.ndarray:
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    bgf = BetaGeoFitter(penalizer_coef=PENALIZER)
    bgf.fit(train["frequency"], train["recency_days"] / DAYS_PER_UNIT, train["customer_age_days"] / DAYS_PER_UNIT)
    repeat = (train["frequency"] > 0) & (train["monetary_value"] > 0)
    ggf = GammaGammaFitter(penalizer_coef=PENALIZER)
    ggf.fit(train["frequency"][repeat], train["monetary_value"][repeat])
    purchases = expected_purchases(dict(bgf.params_), HORIZON_DAYS / DAYS_PER_UNIT, rows["frequency"],
                                   rows["recency_days"] / DAYS_PER_UNIT, rows["customer_age_days"] / DAYS_PER_UNIT)
    if not np.all(np.isfinite(purchases)):
        raise ValueError(f"{KIND}: BG/NBD gave {int(np.sum(~np.isfinite(purchases)))} non-finite expected purchase "
                         f"counts (parameters {dict(bgf.params_)})")
    has_value = (rows["frequency"] > 0) & (rows["monetary_value"] > 0)
    value = np.where(has_value, np.asarray(ggf.conditional_expected_average_profit(
        np.where(has_value, rows["frequency"], 1.0), np.where(has_value, rows["monetary_value"], 1.0))),
        float(np.asarray(ggf.conditional_expected_average_profit()).mean()))
    return np.maximum(purchases * value, 0.0)


def train_and_evaluate(prepared: Prepared, row: Row, seed: int, budget: Budget, time_serving: bool = True
                       ) -> Dict[str, Any]:
    """BG/NBD + Gamma-Gamma fitted per cut-off on train, scored on eval like a bench row (seed unused)."""
    from models import calibration, mean_calibration

    if prepared.times is None or not all(key in prepared.tft_output.raw_feature_spec() for key in RFM):
        raise ValueError(f"{KIND}: needs the RFM features {RFM} and prediction times (data set cdnow_snapshots)")
    parts = {split: rfm(prepared, split) for split in ("train", "validation", "eval")}
    started = time.perf_counter()
    predictions = {split: np.zeros(prepared.labels[split].size) for split in ("validation", "eval")}
    cutoffs = np.unique(prepared.times["train"])
    for cutoff in cutoffs:
        at = prepared.times["train"] == cutoff
        train = {key: value[at] for key, value in parts["train"].items()}
        for split in predictions:
            rows = prepared.times[split] == cutoff
            if rows.any():
                predictions[split][rows] = _fit_predict(train, {k: v[rows] for k, v in parts[split].items()})
    train_s = time.perf_counter() - started
    unseen = set(np.unique(prepared.times["eval"])) - set(cutoffs)
    if unseen:
        raise ValueError(f"{KIND}: eval cut-offs {sorted(unseen)} have no train rows")
    vy, labels = prepared.labels["validation"], prepared.labels["eval"]
    knots = mean_calibration.fit(vy, predictions["validation"], prepared.model.mean_calibration)
    valid, prediction = (mean_calibration.apply(knots, predictions[s]) for s in ("validation", "eval"))
    transform = prepared.model.label_transform
    grouped = calibration.grouped_offsets(vy, valid, valid, valid, valid, transform,
                                          groups=prepared.model.interval_groups)
    lower, upper = calibration.apply_grouped(prediction, prediction, prediction, prediction, grouped, transform)
    outputs = {"prediction": prediction, "median": prediction, "lower": lower, "upper": upper}
    outputs.update(scoring.quantiles(vy, {key: valid for key in ("prediction", "median", "lower", "upper")},
                                     {key: prediction for key in ("prediction", "median", "lower", "upper")},
                                     transform, prepared.model.interval_groups))
    return {
        **scoring.scores(labels, outputs),
        **compare.mean_losses(labels, outputs),
        **scoring.group_coverage(labels, outputs, grouped),
        "mean_prediction_uncalibrated": float(predictions["eval"].mean()),
        "mean_knots": knots,
        "cutoffs": [str(c) for c in cutoffs],
        "distinct_predictions": int(np.unique(prediction).size),
        "train_s": train_s,
        "_eval": outputs,
    }
