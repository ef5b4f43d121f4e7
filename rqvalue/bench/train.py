"""Bench training: one (row, seed) trained as the Trainer does it, then scored on eval (`scoring`).

`keras.utils.set_random_seed(seed)`; the TrainContext by `models.trainer.train_context`; the model by
`models.trainer.build_model` with `models.trainer.trainer_config(data, model)`; `fit` on (features,
`model.training_targets`) batches with the kind's `training_callbacks`, early stopping on the
validation loss (best weights restored, a patience, a step budget). A kind that trains itself (trees,
`models.registry.trains_itself`) gets, as in the Trainer's `_fit_on_rows`, every train and validation
row through `fit_on_rows` (its own grid search, each setting early-stopped on the validation rows);
the bench's step budget does not apply to it. Then, as the Trainer does, the interval offsets by
`models.calibration.calibrate_model` on the validation slice. Evaluation on the eval split with
`model.predict_outputs` and `models.metrics`; serving time through
`models.serving.signatures(...)["serving_default"]` on serialized raw examples, and its peak memory
in a fresh process (`scoring.serving_memory`, `models.serving_cost`).
"""

import dataclasses
import math
import time
from typing import Any, Dict, List, Mapping, Tuple

import numpy as np

from rqvalue.bench import compare, decoding, scoring
from rqvalue.bench.data import Prepared
from rqvalue.bench.rows import DURATION_FEATURE, ONE_LEVEL, OOD_ROWS, Budget, Row


def model_settings(prepared: Prepared, row: Row, seed: int, budget: Budget) -> Tuple[Dict[str, Any], List[str]]:
    """The Trainer config of a row: `trainer_config(data, ModelConfig(...))` as the pipeline builds it."""
    from models import trainer
    from pipeline import config as config_lib

    notes = []
    fields = {f.name for f in dataclasses.fields(config_lib.ModelConfig)}
    changes = {"seed": seed, "batch_size": budget.batch_size, "train_steps": budget.max_steps}
    if prepared.name in DURATION_FEATURE and "duration_feature" in fields:
        changes["duration_feature"] = DURATION_FEATURE[prepared.name]
    changes.update(row.changes)
    try:
        model = dataclasses.replace(prepared.model, kind=row.kind, **changes)
        config = trainer.trainer_config(prepared.data, model)
    except config_lib.ConfigError as e:  # a kind registered before pipeline.config knows it
        model = dataclasses.replace(prepared.model, **changes)
        config = trainer.trainer_config(prepared.data, model)
        config["kind"] = row.kind
        notes.append(f"{row.kind}: {e}; run with kind set in the Trainer config directly")
    if row.id == ONE_LEVEL:
        config["codebook_sizes"] = list(config["codebook_sizes"][:1])
        config["num_levels"] = 1
    return config, notes


def best_weights_callback(patience: int):
    """Early stopping on val_loss that always ends with the best weights restored (Keras'
    EarlyStopping restores them only when it stops before the step budget)."""
    import tf_keras as keras

    class BestWeights(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best = math.inf
            self.best_weights = None
            self.best_epoch = -1
            self.wait = 0
            self.epochs = 0

        def on_epoch_end(self, epoch, logs=None):
            loss = float((logs or {}).get("val_loss", math.nan))
            self.epochs = epoch + 1
            if math.isfinite(loss) and loss < self.best:
                self.best, self.best_epoch, self.wait = loss, epoch, 0
                self.best_weights = self.model.get_weights()
                return
            self.wait += 1
            if self.wait >= patience or not math.isfinite(loss):
                self.model.stop_training = True

        def on_train_end(self, logs=None):
            if self.best_weights is not None:
                self.model.set_weights(self.best_weights)

    return BestWeights()


def _features_only(columns: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    from schemas import features
    return {k: v for k, v in columns.items() if k != features.TARGET_KEY}


def _slice_codes(columns: Mapping[str, np.ndarray], levels: int) -> Dict[str, np.ndarray]:
    from schemas import features
    out = dict(columns)
    if features.CODES_KEY in out:
        out[features.CODES_KEY] = out[features.CODES_KEY][:, :levels]
    return out


def warm_up(prepared: Prepared, budget: Budget) -> float:
    """A throwaway 2-step fit: the first `fit` of a process pays a one-time cost (~15 s here) that would
    otherwise land in the first row's training time. Returns its seconds."""
    import tensorflow as tf
    import tf_keras as keras

    from models import registry, trainer
    from schemas import features

    started = time.time()
    kind = "mse" if "mse" in registry.KINDS else registry.KINDS[0]
    config, _ = model_settings(prepared, Row(kind, kind, kind, {}), 0, budget)
    x, y = _features_only(prepared.splits["train"]), prepared.splits["train"][features.TARGET_KEY]
    context = trainer.train_context(config, prepared.tft_output, tf.data.Dataset.from_tensor_slices((x, y)).batch(1024))
    model = trainer.build_model(config, context)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(64).map(lambda a, b: (a, model.training_targets(a, b)))
    model.fit(data.repeat(), steps_per_epoch=2, epochs=1, validation_data=data.take(1), verbose=0)
    keras.backend.clear_session()
    return time.time() - started


def fit_on_rows(model, split: Mapping[str, Mapping[str, np.ndarray]], prepared: Prepared) -> Dict[str, Any]:
    """Trains a kind that trains itself on every train row, tuned and early-stopped on every validation
    row (labels in label units, as the Trainer's `_fit_on_rows` reads them); the run's fit fields."""
    started = time.perf_counter()
    summary = model.fit_on_rows((_features_only(split["train"]), prepared.labels["train"]),
                                (_features_only(split["validation"]), prepared.labels["validation"]), log=None)
    train_s = time.perf_counter() - started
    settings = [key for key in summary["search"][0] if key not in ("valid_loss", "trees", "seconds")]
    grid = {key: sorted({setting[key] for setting in summary["search"]}) for key in settings}
    chosen = {**{key: summary[key] for key in settings}, "trees": summary["trees"]}
    return {
        "train_s": train_s,
        "trees": summary["trees"],
        "steps_trained": summary["trees"],
        "best_step": summary["trees"],
        "best_val_loss": summary["valid_loss"],
        "searched": {"grid": grid, "chosen": chosen, "tried": summary["search"],
                     "criterion": f"validation {summary['loss']} loss",
                     "how": f"YDF, up to {model.max_trees} trees, each setting stopped when the validation loss rises"},
    }


def tree_crps(model, columns: Mapping[str, np.ndarray], labels: np.ndarray, batch: int = 512) -> np.ndarray:
    """Per-row exact CRPS [n] of RQ-Reg's code tree: every code path's decoded value (label units) with its
    probability (`leaf_probabilities`), by `models.scoring_rules.crps_discrete`."""
    import tensorflow as tf

    from models import scoring_rules

    signature = {k: tf.TensorSpec([None, *v.shape[1:]], tf.as_dtype(v.dtype)) for k, v in columns.items()}
    probabilities = tf.function(model.leaf_probabilities, input_signature=[signature])
    values = model._leaf_values.numpy()
    parts = []
    for start in range(0, labels.size, batch):
        chunk = {k: v[start:start + batch] for k, v in columns.items()}
        parts.append(scoring_rules.crps_discrete(values, probabilities(chunk).numpy(), labels[start:start + batch]))
    return np.concatenate(parts)


def ziln_crps(model, columns: Mapping[str, np.ndarray], labels: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Per-row exact CRPS [n] of ZILN's predictive mixture (1 − p)·δ₀ + p·LogNormal(μ, σ), from the
    parameters its head serves (`distribution_parameters`), by the closed form of
    `models.scoring_rules.crps_zero_inflated_lognormal`."""
    import tensorflow as tf

    from models import scoring_rules

    signature = {k: tf.TensorSpec([None, *v.shape[1:]], tf.as_dtype(v.dtype)) for k, v in columns.items()}
    parameters = tf.function(model.distribution_parameters, input_signature=[signature])
    parts = []
    for start in range(0, labels.size, batch):
        chunk = {k: v[start:start + batch] for k, v in columns.items()}
        p = {k: v.numpy() for k, v in parameters(chunk).items()}
        parts.append(scoring_rules.crps_zero_inflated_lognormal(p["probability"], p["loc"], p["scale"],
                                                                labels[start:start + batch]))
    return np.concatenate(parts)


def model_crps(model, columns: Mapping[str, np.ndarray], labels: np.ndarray):
    """Per-row CRPS [n] of the model's own predictive distribution where it serves one whole (RQ-Reg:
    its code tree; ZILN: its lognormal mixture), before the mean map; None for other models."""
    if hasattr(model, "leaf_probabilities"):
        return tree_crps(model, columns, labels)
    if hasattr(model, "distribution_parameters"):
        return ziln_crps(model, columns, labels)
    return None


def train_and_evaluate(prepared: Prepared, row: Row, seed: int, budget: Budget, time_serving: bool = True
                       ) -> Dict[str, Any]:
    """One training run and its eval metrics (label units); with time_serving, also the serving time."""
    import tensorflow as tf
    import tf_keras as keras

    from models import trainer
    from schemas import features

    config, notes = model_settings(prepared, row, seed, budget)
    levels = config["num_levels"]
    split = {name: _slice_codes(columns, levels) for name, columns in prepared.splits.items()}
    keras.utils.set_random_seed(seed)
    train_x, train_y = _features_only(split["train"]), split["train"][features.TARGET_KEY]
    val_x, val_y = _features_only(split["validation"]), split["validation"][features.TARGET_KEY]
    sample = tf.data.Dataset.from_tensor_slices((train_x, train_y)).batch(1024)
    context = trainer.train_context(config, prepared.tft_output, sample)
    model = trainer.build_model(config, context)
    if model.trains_itself:
        fitted = fit_on_rows(model, split, prepared)
    else:
        fitted = _fit_keras(model, config, budget, seed, (train_x, train_y), (val_x, val_y))
    result = _evaluate(model, prepared, row, config, budget, split, (val_x, val_y), context, time_serving)
    result.update(fitted, notes=notes)
    keras.backend.clear_session()
    return result


def _fit_keras(model, config: Mapping[str, Any], budget: Budget, seed: int, training, validating
               ) -> Dict[str, Any]:
    """Keras fit with the bench's step budget and early stopping; the run's fit fields."""
    import tensorflow as tf

    (train_x, train_y), (val_x, val_y) = training, validating
    batch_size = config["batch_size"]
    train = (tf.data.Dataset.from_tensor_slices((train_x, train_y))
             .shuffle(len(train_y), seed=seed, reshuffle_each_iteration=True).repeat().batch(batch_size, drop_remainder=True)
             .map(lambda x, y: (x, model.training_targets(x, y))).prefetch(2))
    validation = (tf.data.Dataset.from_tensor_slices((val_x, val_y)).batch(1024)
                  .map(lambda x, y: (x, model.training_targets(x, y))).cache())
    stopper = best_weights_callback(budget.patience)
    # The step budget is the bench's, unless the row sets `train_steps` itself (a variant).
    epochs = max(1, config["train_steps"] // budget.eval_every)
    started = time.perf_counter()
    model.fit(train, steps_per_epoch=budget.eval_every, epochs=epochs, validation_data=validation,
              callbacks=[stopper, *model.training_callbacks(config["train_steps"])], verbose=0)
    return {"train_s": time.perf_counter() - started, "steps_trained": stopper.epochs * budget.eval_every,
            "best_step": (stopper.best_epoch + 1) * budget.eval_every, "best_val_loss": stopper.best}


def _evaluate(model, prepared: Prepared, row: Row, config: Mapping[str, Any], budget: Budget,
              split: Mapping[str, Mapping[str, np.ndarray]], validating, context, time_serving: bool
              ) -> Dict[str, Any]:
    """A trained model calibrated on the validation slice, scored on eval, its serving timed and measured."""
    import tensorflow as tf

    from models import calibration, serving

    val_x, val_y = validating
    eval_x = _features_only(split["eval"])
    # One traced prediction function for calibration and every eval prediction below.
    predict_fn = scoring.predict_function(model, eval_x)
    calibrated = calibration.calibrate_model(
        model, tf.data.Dataset.from_tensor_slices((val_x, val_y)).batch(1024), log=None, predict=predict_fn,
        mean=config["mean_calibration"])

    labels = prepared.labels["eval"]
    if budget.eval_rows:
        eval_x = {k: v[:budget.eval_rows] for k, v in eval_x.items()}
        labels = labels[:budget.eval_rows]
    started = time.perf_counter()
    outputs = scoring.predict(predict_fn, eval_x)
    predict_s = time.perf_counter() - started
    raw = scoring.uncalibrated(model, predict_fn, {"validation": val_x, "eval": eval_x}, calibrated["grouped"])
    outputs.update(scoring.quantiles(prepared.labels["validation"], raw["validation"], raw["eval"],
                                     model.label_transform_name, model.interval_groups, model.prediction_cap))
    prediction = outputs["prediction"]
    result = {
        **scoring.scores(labels, outputs),
        "coverage_80_top_bucket": scoring.top_bucket_coverage(labels, outputs, eval_x, config),
        **scoring.group_coverage(labels, outputs, calibrated["grouped"]),
        "coverage_80_validation_uncalibrated": calibrated["coverage_before"],
        "interval_thresholds": calibrated["thresholds"],
        "interval_offset_lower": calibrated["offset_lower"],
        "interval_offset_upper": calibrated["offset_upper"],
        "distinct_predictions": int(np.unique(prediction).size),
    }
    result["codebook_sizes"] = [int(np.size(level)) for level in context.codebook_levels]
    result.update(compare.mean_losses(labels, outputs))
    own = model_crps(model, eval_x, labels)
    if own is not None:
        result["crps_model"] = float(np.mean(own))
        if hasattr(model, "leaf_probabilities"):
            result["crps_tree"] = result["crps_model"]
        outputs = {**outputs, compare.MODEL_CRPS: own}
    result["_eval"] = outputs  # per-row eval outputs for the paired bootstrap (not written to results.json)
    ood = scoring.predict(predict_fn, scoring.out_of_range(eval_x, context.numeric_keys, OOD_ROWS))
    result["ood_max_prediction"] = float(np.max(ood["prediction"]))
    result["prediction_cap"] = float(context.prediction_cap)
    if time_serving:
        signatures = serving.signatures(model, prepared.tft_output, config)
        ms, served = scoring.serving_time(model, prepared, config, budget, signatures)
        if budget.measures_memory(row.id):
            result.update(scoring.serving_memory(model, signatures, prepared, budget.serving_batch))
        n = min(len(served["prediction"]), len(prediction))
        result["serve_ms_per_1000"] = ms
        # The serving signature (raw examples -> transform layer -> model) must agree with predict_outputs.
        result["serving_vs_predict_max_abs_diff"] = float(np.max(np.abs(
            served["prediction"][:n].astype(np.float64) - prediction[:n])))
    attribute, values = decoding.rules(row.id, model)
    if len(values) > 1 and budget.decodings:
        result["beam_width"] = config.get("beam_width")
        result["decodings"] = decoding.evaluate(
            model, attribute, values, prepared, config, budget, eval_x, labels,
            tf.data.Dataset.from_tensor_slices((val_x, val_y)).batch(1024), time_serving, own=result)
    result["predict_s"] = predict_s
    return result
