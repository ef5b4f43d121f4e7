"""LightGBM peers in the bench: a Tweedie model and a two-stage model, on the bench's own rows.

What a practitioner would try first on tabular LTV, trained on exactly the train / validation / eval
rows the pipeline's kinds see (`rqvalue.bench.data.Prepared`), reading the same features: the
transformed numeric features (Transform's scaling changes no tree split) and the categorical
features' vocabulary ids as LightGBM categories. Label-derived columns (the transformed target, its
codes and value bucket) are never features.

- `lightgbm_tweedie`: objective Tweedie; the variance power and the tree size (num_leaves,
  min_data_in_leaf) are searched over `TWEEDIE_GRID`, each setting early-stopped on the validation
  rows' Tweedie deviance, and the setting with the best validation normalized Gini is kept (the
  eval rows are never seen).
- `lightgbm_two_stage`: P(y > 0) from a binary model times E[y | y > 0] from a Gamma model trained
  on the positive rows; each stage's tree size is searched over `STAGE_GRID`, early-stopped and
  chosen on its own validation loss (log loss; Gamma deviance on the positive validation rows).

Both then get what every kind gets after training: the mean map fitted on the validation rows
(`models.mean_calibration`, the ModelConfig default method), and an 80% interval. The interval comes
from three LightGBM quantile models (10/50/90%, early-stopped on their validation pinball loss;
shared by both rows of a seed) with the same split-conformal calibration per predicted-value group
(`models.calibration.grouped_offsets`) as the Keras kinds. `serve ms/1k` is LightGBM's predict on
1,000 transformed eval rows (no tf.Example parsing, no Transform graph): not comparable with the
TensorFlow kinds' signature timing, and labelled so.
"""

import itertools
import time
from typing import Any, Dict, List, Mapping, Tuple

import numpy as np

from rqvalue.bench import compare, scoring
from rqvalue.bench.data import Prepared
from rqvalue.bench.rows import OOD_ROWS, PEERS, Budget, Row

# One thread: on a shared 2-core machine LightGBM's two OpenMP threads were measured >10x slower than one.
LEARNING_RATE = 0.05
MAX_ROUNDS = 2000
EARLY_STOPPING_ROUNDS = 50
TWEEDIE_GRID = {"tweedie_variance_power": (1.2, 1.5, 1.8), "num_leaves": (15, 63), "min_data_in_leaf": (50,)}
STAGE_GRID = {"num_leaves": (15, 63), "min_data_in_leaf": (20, 100)}
QUANTILE_SETTING = {"num_leaves": 31, "min_data_in_leaf": 50}
QUANTILES = (0.1, 0.5, 0.9)
KINDS = tuple(kind for kind in PEERS if kind.startswith("lightgbm"))

# Quantile models per (data set, row count, seed): both LightGBM rows of a seed share them.
_QUANTILE_CACHE: Dict[Tuple[str, int, int], Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray], float]] = {}


def feature_matrix(prepared: Prepared, split: str) -> Tuple[np.ndarray, List[str], List[int]]:
    """(rows × features float matrix, feature names, indices of the categorical columns) of one split."""
    from schemas import features

    columns = prepared.splits[split]
    names = [features.transformed_name(k) for k in (*prepared.data.numeric_features,
                                                     *prepared.data.categorical_features)]
    matrix = np.stack([np.asarray(columns[name], dtype=np.float64).reshape(len(columns[name]), -1)[:, 0]
                       for name in names], axis=1)
    categorical = list(range(len(prepared.data.numeric_features), len(names)))
    return matrix, names, categorical


def _params(seed: int, **changes) -> Dict[str, Any]:
    return {"learning_rate": LEARNING_RATE, "feature_fraction": 0.9, "bagging_fraction": 0.8, "bagging_freq": 1,
            "seed": seed, "num_threads": 1, "verbosity": -1, "deterministic": True, "force_row_wise": True,
            **changes}


def _fit(params: Mapping[str, Any], x, y, vx, vy, categorical, metric: str):
    import lightgbm as lgb

    train = lgb.Dataset(x, y, categorical_feature=categorical, free_raw_data=False)
    valid = lgb.Dataset(vx, vy, categorical_feature=categorical, reference=train, free_raw_data=False)
    return lgb.train({**params, "metric": metric}, train, num_boost_round=MAX_ROUNDS, valid_sets=[valid],
                     callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)])


def _grid(grid: Mapping[str, Tuple]) -> List[Dict[str, Any]]:
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def _tweedie(seed: int, x, y, vx, vy, categorical) -> Tuple[Any, Dict[str, Any]]:
    from models import metrics

    tried, best = [], None
    for setting in _grid(TWEEDIE_GRID):
        booster = _fit(_params(seed, objective="tweedie", **setting), x, y, vx, vy, categorical, "tweedie")
        gini = metrics.normalized_gini(vy, booster.predict(vx, num_iteration=booster.best_iteration))
        tried.append({**setting, "trees": booster.best_iteration, "validation_gini": gini})
        if best is None or gini > best[0]:
            best = (gini, booster, tried[-1])
    return best[1], {"grid": TWEEDIE_GRID, "criterion": "validation normalized Gini", "tried": tried,
                     "chosen": best[2]}


def _stage(seed: int, objective: str, metric: str, x, y, vx, vy, categorical) -> Tuple[Any, Dict[str, Any]]:
    tried, best = [], None
    for setting in _grid(STAGE_GRID):
        booster = _fit(_params(seed, objective=objective, **setting), x, y, vx, vy, categorical, metric)
        loss = float(booster.best_score["valid_0"][metric])
        tried.append({**setting, "trees": booster.best_iteration, f"validation_{metric}": loss})
        if best is None or loss < best[0]:
            best = (loss, booster, tried[-1])
    return best[1], {"grid": STAGE_GRID, "criterion": f"validation {metric}", "tried": tried, "chosen": best[2]}


def _predict(model, x) -> np.ndarray:
    if isinstance(model, tuple):  # two-stage: P(y > 0) × E[y | y > 0]
        return _predict(model[0], x) * _predict(model[1], x)
    return np.asarray(model.predict(x, num_iteration=model.best_iteration), dtype=np.float64)


def _quantiles(prepared: Prepared, seed: int, x, y, vx, vy, ex, categorical
               ) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray], float]:
    """(validation quantiles, eval quantiles, training seconds): lower / median / upper, uncrossed."""
    key = (prepared.name, len(y), seed)
    if key not in _QUANTILE_CACHE:
        started = time.perf_counter()
        boosters = [_fit(_params(seed, objective="quantile", alpha=tau, **QUANTILE_SETTING), x, y, vx, vy,
                         categorical, "quantile") for tau in QUANTILES]
        seconds = time.perf_counter() - started
        out = []
        for rows in (vx, ex):
            q = np.sort(np.stack([np.maximum(_predict(b, rows), 0.0) for b in boosters], axis=1), axis=1)
            out.append({"lower": q[:, 0], "median": q[:, 1], "upper": q[:, 2]})
        _QUANTILE_CACHE.clear()
        _QUANTILE_CACHE[key] = (out[0], out[1], seconds)
    return _QUANTILE_CACHE[key]


def train_and_evaluate(prepared: Prepared, row: Row, seed: int, budget: Budget, time_serving: bool = True
                       ) -> Dict[str, Any]:
    """One LightGBM peer (`row.kind` in KINDS) trained, calibrated and scored like a bench row."""
    from models import calibration, mean_calibration

    x, names, categorical = feature_matrix(prepared, "train")
    vx, _, _ = feature_matrix(prepared, "validation")
    ex, _, _ = feature_matrix(prepared, "eval")
    y, vy, labels = prepared.labels["train"], prepared.labels["validation"], prepared.labels["eval"]
    started = time.perf_counter()
    if row.kind == "lightgbm_tweedie":
        model, searched = _tweedie(seed, x, y, vx, vy, categorical)
        trees = model.best_iteration
    elif row.kind == "lightgbm_two_stage":
        classifier, first = _stage(seed, "binary", "binary_logloss", x, (y > 0).astype(float), vx,
                                   (vy > 0).astype(float), categorical)
        amount, second = _stage(seed, "gamma", "gamma", x[y > 0], y[y > 0], vx[vy > 0], vy[vy > 0], categorical)
        model, searched = (classifier, amount), {"probability": first, "amount": second}
        trees = classifier.best_iteration + amount.best_iteration
    else:
        raise ValueError(f"lightgbm peers: unknown kind {row.kind!r} (known: {', '.join(KINDS)})")
    train_s = time.perf_counter() - started
    quantiles_valid, quantiles_eval, quantile_s = _quantiles(prepared, seed, x, y, vx, vy, ex, categorical)

    method = prepared.model.mean_calibration
    knots = mean_calibration.fit(vy, _predict(model, vx), method)
    valid_prediction = mean_calibration.apply(knots, _predict(model, vx))
    started = time.perf_counter()
    prediction = mean_calibration.apply(knots, _predict(model, ex))
    predict_s = time.perf_counter() - started
    transform = prepared.model.label_transform
    grouped = calibration.grouped_offsets(vy, quantiles_valid["lower"], quantiles_valid["upper"],
                                          quantiles_valid["median"], valid_prediction, transform,
                                          groups=prepared.model.interval_groups)
    lower, upper = calibration.apply_grouped(quantiles_eval["lower"], quantiles_eval["upper"],
                                             quantiles_eval["median"], prediction, grouped, transform)
    outputs = {"prediction": prediction, "median": quantiles_eval["median"], "lower": lower, "upper": upper}
    outputs.update(scoring.quantiles(vy, {**quantiles_valid, "prediction": valid_prediction},
                                     {**quantiles_eval, "prediction": prediction}, transform,
                                     prepared.model.interval_groups))
    result = {
        **scoring.scores(labels, outputs),
        **compare.mean_losses(labels, outputs),
        **scoring.group_coverage(labels, outputs, grouped),
        "coverage_80_validation_uncalibrated": calibration.coverage(vy, quantiles_valid["lower"],
                                                                    quantiles_valid["upper"]),
        "interval_thresholds": list(grouped.thresholds),
        "distinct_predictions": int(np.unique(prediction).size),
        "train_s": train_s,
        "quantile_train_s": quantile_s,
        "predict_s": predict_s,
        "trees": trees,
        "best_step": trees,
        "steps_trained": trees,
        "searched": searched,
        "features": names,
        "mean_knots": knots,
        "_eval": outputs,
    }
    # As for the other kinds (`scoring.out_of_range`): every numeric feature of the first OOD_ROWS eval
    # rows at 10x its largest |value|; trees cannot extrapolate, but the check is the same.
    ood = ex[:OOD_ROWS].copy()
    numeric = len(prepared.data.numeric_features)
    ood[:, :numeric] = 10.0 * np.max(np.abs(ex[:, :numeric]), axis=0)
    result["ood_max_prediction"] = float(np.max(mean_calibration.apply(knots, _predict(model, ood))))
    if time_serving:
        batch = ex[:budget.serving_batch]
        timings = []
        for _ in range(budget.serving_calls + 1):
            t0 = time.perf_counter()
            _predict(model, batch)
            timings.append(time.perf_counter() - t0)
        result["serve_ms_per_1000"] = float(np.median(timings[1:])) * 1000.0 * 1000.0 / len(batch)
    return result
