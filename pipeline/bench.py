"""`rqvalue bench`: every model kind on every embedded data set, several seeds, one table per data set.

The bench runs the pipeline's own code outside the TFX orchestrator, so a full comparison takes
minutes instead of one pipeline run per (model, seed):

1. Ingestion: `pipeline.datasets.prepare`, then `components.feature_store_example_gen.retrieve`
   (Feast point-in-time join) and `to_examples`, split train/eval by the same entity hash
   (`split_of`) as `FeatureStoreExampleGen`. A validation slice for early stopping is carved out of
   train by a second entity hash (`split_of("validation|" + key, VALIDATION_FRACTION)`), so the
   eval split is used for the final metrics only.
2. Transform: `models.preprocessing.preprocessing_fn` analysed on train with
   `tensorflow_transform.beam` (in memory, curated schema as the raw schema, default ModelConfig's
   transform settings) and written with `WriteTransformFn`; the transformed features of every
   split come from the written `tft.TFTransformOutput.transform_features_layer()`, which is the
   same graph `TransformDataset` applies (and keeps rows aligned with their raw examples).
3. Trainer, per model and seed: `keras.utils.set_random_seed(seed)`; the TrainContext by
   `models.trainer.train_context`; the model by `models.trainer.build_model` with
   `models.trainer.trainer_config(data, model)`; `fit` on (features, `model.training_targets`)
   batches with the kind's `training_callbacks`, early stopping on the validation loss (best
   weights restored, a patience, a step budget); then, as the Trainer does, the interval offsets
   by `models.calibration.calibrate_model` on the validation slice.
4. Evaluation on the eval split with `model.predict_outputs` and `models.metrics`; serving time
   through `models.trainer._serving_signatures(...)["serving_default"]` on serialized raw examples.

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
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("FEAST_USAGE", "False")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

DATASETS = ("cdnow", "synthetic_ltv", "watch_time")
VALIDATION_FRACTION = 0.1
# Kinds that only make sense on some data sets (D2Q needs a video duration).
ONLY_ON = {"d2q": ("watch_time",)}
# Feature that D2Q groups by, per data set (ModelConfig.duration_feature).
DURATION_FEATURE = {"watch_time": "video_duration"}

# RQ-Reg ablations: row id -> (row label, ModelConfig changes). "one level" also slices the codebook.
ONE_LEVEL = "rqreg_one_level"
ABLATIONS = {
    "rqreg_no_rnc": ("rqreg (no RnC)", {"rnc_weight": 0.0}),
    "rqreg_no_ss": ("rqreg (no scheduled sampling)", {"sampling_probability": 0.0}),
    "rqreg_reg": ("rqreg (with regression head)", {"regression_weight": 1.0}),
    ONE_LEVEL: ("rqreg (one level)", {}),
}
BASE_KIND = "rqreg"
# ModelConfig fields that Transform uses (models.preprocessing.transform_config): fixed per data set here.
TRANSFORM_SETTINGS = ("label_transform", "value_buckets", "codebook_sizes", "first_level_median",
                      "codebook_resolution")
# Eval rows scored with every numeric feature far out of range (only the categorical features differ).
OOD_ROWS = 256

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
}
# What RQ-Reg must beat every baseline on, per data set family.
TARGETS = {"ltv": ("normalized_gini", "spearman", "mae"), "watch_time": ("xauc", "mae")}


@dataclasses.dataclass(frozen=True)
class Budget:
    """Data sizes and training budgets of one bench run."""

    rows: Mapping[str, Optional[int]]  # data set -> rows for `prepare` (None: the data set's default)
    max_steps: int  # step budget per training run
    eval_every: int  # steps between validation passes (one Keras "epoch")
    patience: int  # validation passes without improvement before stopping
    batch_size: int
    eval_rows: Optional[int]  # cap on eval examples scored (None: the whole eval split)
    serving_batch: int  # examples per timed serving call
    serving_calls: int  # timed serving calls after one warm-up call
    serving_seeds: int  # serving is timed on the first `serving_seeds` seeds of each row (it does not depend on the seed)


# Defaults measured on the 2-core CPU development machine (shared with other work): the whole default
# bench (3 data sets, 7 kinds + 4 ablations, 3 seeds) took 20-23 min. The cost is dominated by GR
# training (~40 s a run) and RQ-Reg's tree-enumerating prediction (~2 s per 1,000 examples); raising
# the eval size or the step budget raises the time roughly in proportion.
DEFAULT_ROWS = {"cdnow": 10_000, "synthetic_ltv": 10_000, "watch_time": 12_000}
DEFAULT_BUDGET = Budget(rows=DEFAULT_ROWS, max_steps=400, eval_every=40, patience=3, batch_size=256,
                        eval_rows=None, serving_batch=1000, serving_calls=3, serving_seeds=1)
TINY_BUDGET = Budget(rows={"cdnow": 800, "synthetic_ltv": 800, "watch_time": 1500}, max_steps=20,
                     eval_every=10, patience=1, batch_size=64, eval_rows=None, serving_batch=100,
                     serving_calls=1, serving_seeds=1)


def budget_for(scale: float = 1.0, tiny: bool = False) -> Budget:
    """The default (or tiny) budget with data sizes and step budgets multiplied by `scale`."""
    base = TINY_BUDGET if tiny else DEFAULT_BUDGET
    if scale == 1.0:
        return base
    rows = {name: None if n is None else max(200, int(round(n * scale))) for name, n in base.rows.items()}
    if "cdnow" in rows and rows["cdnow"] is not None and rows["cdnow"] >= 23_570:
        rows["cdnow"] = None  # all customers
    return dataclasses.replace(base, rows=rows, max_steps=max(base.eval_every, int(round(base.max_steps * scale))))


# ----------------------------------------------------------------------------------------------
# Rows: which models run where


@dataclasses.dataclass(frozen=True)
class Row:
    """One table row: a registered kind or an RQ-Reg ablation."""

    id: str
    label: str
    kind: str
    changes: Mapping[str, Any]


def available_rows() -> Tuple[List[Row], List[str]]:
    """Every registered kind, then the RQ-Reg ablations; notes on kinds that cannot be built."""
    notes = []
    try:
        from models import registry
        kinds = list(registry.KINDS)
    except Exception as e:  # a kind being added may break the registry's imports
        from pipeline import config as config_lib
        kinds = [k for k in config_lib.MODEL_KINDS]
        notes.append(f"models.registry did not import ({type(e).__name__}: {e}); fell back to "
                     f"pipeline.config.MODEL_KINDS")
    rows = [Row(kind, kind, kind, {}) for kind in kinds]
    if BASE_KIND in kinds:
        rows += [Row(row_id, label, BASE_KIND, changes) for row_id, (label, changes) in ABLATIONS.items()]
    return rows, notes


def parse_variant(text: str) -> Row:
    """A row from `--variant "ID: key=value key=value ..."`: ModelConfig changes (YAML values), kind
    `rqreg` unless `kind=` says otherwise. An rqreg variant is never counted as a baseline."""
    from pipeline import config as config_lib

    row_id, _, spec = text.partition(":")
    row_id, items = row_id.strip(), spec.split()
    if not row_id or not items or any("=" not in item for item in items):
        raise ValueError(f"--variant {text!r}: expected 'ID: key=value [key=value ...]', e.g. "
                         "'lr_low: learning_rate=0.001'")
    fields = {f.name for f in dataclasses.fields(config_lib.ModelConfig)}
    changes: Dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in fields:
            raise ValueError(f"--variant {row_id}: {key!r} is not a model setting (known: {', '.join(sorted(fields))})")
        if key in TRANSFORM_SETTINGS:
            raise ValueError(f"--variant {row_id}: {key!r} is a Transform setting; the bench analyses each data "
                             "set once with the defaults, so a variant cannot change it")
        parsed = yaml.safe_load(value)
        changes[key] = tuple(parsed) if isinstance(parsed, list) else parsed
    kind = changes.pop("kind", BASE_KIND)
    config_lib.ModelConfig(kind=kind, **changes)  # raises ConfigError naming a bad value
    return Row(row_id, f"{row_id} ({' '.join(items)})", kind, changes)


def applies(row: Row, dataset: str) -> bool:
    return dataset in ONLY_ON.get(row.kind, DATASETS)


# ----------------------------------------------------------------------------------------------
# Data: ingestion and Transform, once per data set


@dataclasses.dataclass
class Prepared:
    """One data set after ingestion and Transform."""

    name: str
    data: Any  # pipeline.config.DataConfig
    model: Any  # pipeline.config.ModelConfig (transform settings used)
    transform_dir: str
    tft_output: Any
    splits: Dict[str, Dict[str, np.ndarray]]  # split -> transformed features (incl. the target)
    labels: Dict[str, np.ndarray]  # split -> labels in label units (from the raw examples)
    serialized: Dict[str, List[bytes]]  # split -> serialized raw tf.Examples
    counts: Dict[str, int]
    seconds: float


def _entity_key(frame, spec) -> List[str]:
    from components import feature_store_example_gen as gen
    columns = [frame[c].astype(object).tolist() for c in spec.entity_columns]
    return ["|".join(gen._entity_text(v) for v in values) for values in zip(*columns)]


def ingest(data) -> Tuple[Dict[str, List[bytes]], Dict[str, np.ndarray]]:
    """Serialized raw examples and labels per split: train / validation / eval."""
    from components import feature_store_example_gen as gen

    spec = gen.IngestionSpec.from_data_config(data)
    frame = gen.retrieve(spec)
    examples = gen.to_examples(frame, spec)
    labels = frame[spec.label].astype(float).to_numpy()
    serialized = {"train": [], "validation": [], "eval": []}
    split_labels = {"train": [], "validation": [], "eval": []}
    for example, key, label in zip(examples, _entity_key(frame, spec), labels):
        split = gen.split_of(key, spec.eval_fraction)
        if split == "train" and gen.split_of("validation|" + key, VALIDATION_FRACTION) == "eval":
            split = "validation"
        serialized[split].append(example.SerializeToString())
        split_labels[split].append(label)
    for split, rows in serialized.items():
        if not rows:
            raise ValueError(f"bench: split {split!r} of {data.spine!r} is empty; use more rows")
    return serialized, {k: np.asarray(v, dtype=np.float64) for k, v in split_labels.items()}


def _load_schema(path: str):
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2
    with open(path) as f:
        return text_format.Parse(f.read(), schema_pb2.Schema())


def analyze(data, model, train_serialized: Sequence[bytes], transform_dir: str) -> None:
    """Runs preprocessing_fn's analyzers on train with TFT's Beam implementation; writes the transform fn."""
    import apache_beam as beam
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import metadata_io
    from apache_beam.options.pipeline_options import PipelineOptions
    from tfx_bsl.public import tfxio

    from models import preprocessing

    schema = _load_schema(data.schema)
    custom_config = preprocessing.transform_config(data, model)
    raw_tfxio = tfxio.TFExampleBeamRecord(physical_format="inmem", telemetry_descriptors=["rqvalue", "bench"],
                                          schema=schema)
    options = PipelineOptions(["--direct_running_mode=in_memory", "--direct_num_workers=1"])
    os.makedirs(os.path.dirname(transform_dir), exist_ok=True)
    temp_dir = tempfile.mkdtemp(prefix="tft_tmp_", dir=os.path.dirname(transform_dir))
    try:
        with beam.Pipeline(options=options) as p, tft_beam.Context(temp_dir=temp_dir):
            raw = p | "Create" >> beam.Create(list(train_serialized)) | "Decode" >> raw_tfxio.BeamSource()
            (_, _), transform_fn = ((raw, raw_tfxio.TensorAdapterConfig())
                                    | tft_beam.AnalyzeAndTransformDataset(
                                        lambda inputs: preprocessing.preprocessing_fn(inputs, custom_config),
                                        output_record_batches=True))
            _ = transform_fn | tft_beam.WriteTransformFn(transform_dir)
        # The raw schema, as TFX's Transform executor writes it (raw_feature_spec, serving).
        metadata_io.write_metadata(tft.DatasetMetadata(schema),
                                   os.path.join(transform_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)


def transform(tft_output, serialized: Sequence[bytes], batch: int = 4096) -> Dict[str, np.ndarray]:
    """Transformed features of serialized raw examples (with label), in input order."""
    import tensorflow as tf

    layer = tft_output.transform_features_layer()
    spec = tft_output.raw_feature_spec()
    columns: Dict[str, List[np.ndarray]] = {}
    for start in range(0, len(serialized), batch):
        raw = tf.io.parse_example(tf.constant(list(serialized[start:start + batch])), spec)
        for key, value in layer(raw).items():
            if isinstance(value, tf.Tensor):
                columns.setdefault(key, []).append(value.numpy())
    return {key: np.concatenate(parts) for key, parts in columns.items()}


def prepare_dataset(name: str, work_dir: str, rows: Optional[int], log=print) -> Prepared:
    """Ingestion and Transform of one embedded data set."""
    import tensorflow_transform as tft

    from pipeline import config as config_lib
    from pipeline import datasets

    started = time.time()
    data = datasets.prepare(name, os.path.join(work_dir, "data", name), rows=rows)
    model = config_lib.ModelConfig()
    serialized, labels = ingest(data)
    transform_dir = os.path.join(work_dir, "transform", name)
    shutil.rmtree(transform_dir, ignore_errors=True)
    os.makedirs(os.path.dirname(transform_dir), exist_ok=True)
    analyze(data, model, serialized["train"], transform_dir)
    tft_output = tft.TFTransformOutput(transform_dir)
    splits = {split: transform(tft_output, rows_) for split, rows_ in serialized.items()}
    counts = {split: len(rows_) for split, rows_ in serialized.items()}
    seconds = time.time() - started
    log(f"[{name}] prepared in {seconds:.0f} s: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    return Prepared(name, data, model, transform_dir, tft_output, splits, labels, serialized, counts, seconds)


# ----------------------------------------------------------------------------------------------
# Training and evaluation of one (row, seed)


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


def predict_function(model, columns: Mapping[str, np.ndarray]):
    """`model.predict_outputs` as one tf.function for any batch size (traced once)."""
    import tensorflow as tf

    signature = {k: tf.TensorSpec([None, *v.shape[1:]], tf.as_dtype(v.dtype)) for k, v in columns.items()}
    return tf.function(model.predict_outputs, input_signature=[signature])


def predict(fn, columns: Mapping[str, np.ndarray], batch: int = 1024) -> Dict[str, np.ndarray]:
    """Value outputs of `predict_function` over numpy features, in batches."""
    from models import base

    n = len(next(iter(columns.values())))
    parts: Dict[str, List[np.ndarray]] = {key: [] for key in base.SERVING_KEYS}
    for start in range(0, n, batch):
        outputs = fn({k: v[start:start + batch] for k, v in columns.items()})
        for key in base.SERVING_KEYS:
            parts[key].append(outputs[key].numpy().astype(np.float64))
    return {key: np.concatenate(v) for key, v in parts.items()}


def scores(labels: np.ndarray, outputs: Mapping[str, np.ndarray]) -> Dict[str, float]:
    """The table's accuracy metrics of one set of serving outputs on the eval labels (label units)."""
    from models import metrics

    summary = metrics.summary(labels, outputs["prediction"])
    return {
        "mae": summary["mae"],
        "mae_median": metrics.mae(labels, outputs["median"]),
        "rmse": summary["rmse"],
        "normalized_gini": summary["normalized_gini"],
        "spearman": summary["spearman"],
        "xauc": summary["xauc"],
        **calibration_errors(labels, outputs["prediction"]),
        "coverage_80": metrics.interval_coverage(labels, outputs["lower"], outputs["upper"]),
        "mean_label": summary["mean_label"],
        "mean_prediction": summary["mean_prediction"],
        "eval_count": summary["count"],
    }


def calibration_errors(labels: np.ndarray, predictions: np.ndarray) -> Dict[str, float]:
    """Decile calibration two ways (models.metrics.decile_calibration divides by each decile's mean
    label, which is 0 for deciles of zeros):
      - calibration_error: mean over deciles of |pred_mean - label_mean|, divided by the overall mean
        label (always defined; the table's column);
      - calibration_error_positive: mean of |pred_mean - label_mean| / label_mean over the deciles whose
        mean label is positive (the ZILN notebook's decile MAPE without the undefined deciles)."""
    from models import metrics

    deciles = metrics.decile_calibration(labels, predictions, n=min(10, labels.size))
    gap = np.abs(deciles["pred_mean"] - deciles["label_mean"])
    positive = deciles["label_mean"] > 0
    overall = float(np.mean(labels))
    return {
        "calibration_error": float(gap.mean() / overall) if overall > 0 else math.nan,
        "calibration_error_positive": float(np.mean(gap[positive] / deciles["label_mean"][positive]))
        if positive.any() else math.nan,
        "calibration_positive_deciles": int(positive.sum()),
    }


def out_of_range(columns: Mapping[str, np.ndarray], numeric_keys: Sequence[str], limit: int
                 ) -> Dict[str, np.ndarray]:
    """Eval features (the first `limit` rows) with every numeric transformed feature set to 10x its max |value|."""
    from schemas import features
    rows = {k: v[:limit] for k, v in columns.items()}
    for key in numeric_keys:
        name = features.transformed_name(key)
        rows[name] = np.full_like(rows[name], 10.0 * float(np.max(np.abs(columns[name]))))
    return rows


def serving_time(model, prepared: Prepared, config: Mapping[str, Any], budget: Budget
                 ) -> Tuple[float, Dict[str, np.ndarray]]:
    """(median ms per 1,000 examples of the serving signature, its outputs on the timed batch)."""
    import tensorflow as tf

    from models import trainer

    serve = trainer._serving_signatures(model, prepared.tft_output, config)["serving_default"]
    pool = prepared.serialized["eval"]
    n = min(budget.serving_batch, len(pool))
    batch = tf.constant(pool[:n])
    first = {k: v.numpy() for k, v in serve(batch).items()}  # warm-up (traces the function)
    times = []
    for _ in range(budget.serving_calls):
        started = time.perf_counter()
        outputs = serve(batch)
        _ = outputs["prediction"].numpy()
        times.append(time.perf_counter() - started)
    ms_per_1000 = 1000.0 * float(np.median(times)) * 1000.0 / n
    return ms_per_1000, first


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


def train_and_evaluate(prepared: Prepared, row: Row, seed: int, budget: Budget, time_serving: bool = True
                       ) -> Dict[str, Any]:
    """One training run and its eval metrics (label units); with time_serving, also the serving time."""
    import tensorflow as tf
    import tf_keras as keras

    from models import calibration, trainer
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

    batch_size = config["batch_size"]
    train = (tf.data.Dataset.from_tensor_slices((train_x, train_y))
             .shuffle(len(train_y), seed=seed, reshuffle_each_iteration=True).repeat().batch(batch_size, drop_remainder=True)
             .map(lambda x, y: (x, model.training_targets(x, y))).prefetch(2))
    validation = (tf.data.Dataset.from_tensor_slices((val_x, val_y)).batch(1024)
                  .map(lambda x, y: (x, model.training_targets(x, y))).cache())
    stopper = best_weights_callback(budget.patience)
    epochs = max(1, budget.max_steps // budget.eval_every)
    started = time.perf_counter()
    model.fit(train, steps_per_epoch=budget.eval_every, epochs=epochs, validation_data=validation,
              callbacks=[stopper, *model.training_callbacks(budget.max_steps)], verbose=0)
    train_s = time.perf_counter() - started
    calibrated = calibration.calibrate_model(
        model, tf.data.Dataset.from_tensor_slices((val_x, val_y)).batch(1024), log=None)

    eval_x = _features_only(split["eval"])
    labels = prepared.labels["eval"]
    if budget.eval_rows:
        eval_x = {k: v[:budget.eval_rows] for k, v in eval_x.items()}
        labels = labels[:budget.eval_rows]
    started = time.perf_counter()
    predict_fn = predict_function(model, eval_x)
    outputs = predict(predict_fn, eval_x)
    predict_s = time.perf_counter() - started
    prediction = outputs["prediction"]
    result = {
        **scores(labels, outputs),
        "coverage_80_top_bucket": _top_bucket_coverage(labels, outputs, eval_x, config),
        **_group_coverage(labels, outputs, calibrated["thresholds"]),
        "coverage_80_validation_uncalibrated": calibrated["coverage_before"],
        "interval_thresholds": calibrated["thresholds"],
        "interval_offset_lower": calibrated["offset_lower"],
        "interval_offset_upper": calibrated["offset_upper"],
        "distinct_predictions": int(np.unique(prediction).size),
    }
    ood = predict(predict_fn, out_of_range(eval_x, context.numeric_keys, OOD_ROWS))
    result["ood_max_prediction"] = float(np.max(ood["prediction"]))
    result["prediction_cap"] = float(context.prediction_cap)
    if time_serving:
        ms, served = serving_time(model, prepared, config, budget)
        n = min(len(served["prediction"]), len(prediction))
        result["serve_ms_per_1000"] = ms
        # The serving signature (raw examples -> transform layer -> model) must agree with predict_outputs.
        result["serving_vs_predict_max_abs_diff"] = float(np.max(np.abs(
            served["prediction"][:n].astype(np.float64) - prediction[:n])))
    from pipeline import bench_decoding
    attribute, values = bench_decoding.rules(row.id, model)
    if len(values) > 1:
        result["beam_width"] = config.get("beam_width")
        result["decodings"] = bench_decoding.evaluate(
            model, attribute, values, prepared, config, budget, eval_x, labels,
            tf.data.Dataset.from_tensor_slices((val_x, val_y)).batch(1024), time_serving, own=result)
    result.update(
        train_s=train_s,
        predict_s=predict_s,
        steps_trained=stopper.epochs * budget.eval_every,
        best_step=(stopper.best_epoch + 1) * budget.eval_every,
        best_val_loss=stopper.best,
        notes=notes,
    )
    keras.backend.clear_session()
    return result


def _top_bucket_coverage(labels: np.ndarray, outputs: Mapping[str, np.ndarray], eval_x: Mapping[str, np.ndarray],
                         config: Mapping[str, Any]) -> float:
    """80% interval coverage on the eval rows of the top `value_bucket` (NaN if there are none)."""
    from models import metrics
    from schemas import features

    top = np.asarray(eval_x[features.VALUE_BUCKET_KEY]).reshape(-1) == config["value_buckets"] - 1
    if not top.any():
        return math.nan
    return metrics.interval_coverage(labels[top], outputs["lower"][top], outputs["upper"][top])


def _group_coverage(labels: np.ndarray, outputs: Mapping[str, np.ndarray], thresholds: Sequence[float]
                    ) -> Dict[str, Any]:
    """80% interval coverage on eval within each predicted-value group of the model's calibration
    (`coverage_80_by_group`, lowest prediction first) and the lowest of them (`coverage_80_worst_group`)."""
    from models import calibration

    grouped = calibration.GroupedOffsets(tuple(thresholds), (calibration.Offsets(),) * (len(thresholds) + 1))
    by_group = calibration.group_coverage(labels, outputs["lower"], outputs["upper"], outputs["prediction"], grouped)
    finite = [c for c in by_group if math.isfinite(c)]
    return {"coverage_80_by_group": list(by_group), "coverage_80_worst_group": min(finite) if finite else math.nan}


def references(train_labels: np.ndarray, eval_labels: np.ndarray) -> Dict[str, Dict[str, float]]:
    """MAE and RMSE on eval of constant predictions: 0, the train median and the train mean."""
    from models import metrics

    out = {}
    for name, value in (("all zeros", 0.0), ("train median", float(np.median(train_labels))),
                        ("train mean", float(np.mean(train_labels)))):
        constant = np.full_like(eval_labels, value)
        out[name] = {"value": value, "mae": metrics.mae(eval_labels, constant),
                     "rmse": metrics.rmse(eval_labels, constant)}
    return out


# ----------------------------------------------------------------------------------------------
# Aggregation and the report


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
        f"Produced by `{result['command']}` (`pipeline/bench.py`) on {result['finished']}, "
        f"whole run {result['wall_s'] / 60:.1f} min wall time (ingestion, Transform, every training run, "
        "evaluation and serving timing; the default bench is sized to stay under 30 min on this machine).",
        "",
        "**What.** Every model kind in `models.registry.KINDS` that applies to a data set (D2Q only on watch "
        "time), plus four RQ-Reg ablations, trained and evaluated with the pipeline's own code: Feast "
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
        "seed, and RQ-Reg's tree enumeration makes it slow to time).",
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
        lines += ["", "*steps*: step of the restored (best-validation) weights (mean ± std)."]
        from pipeline import bench_decoding
        for kind, default in ((BASE_KIND, _default_decoding()), ("gr", str(_default_field("gr_first_tokens")))):
            if kind in ds["rows"]:
                lines += bench_decoding.render(ds["rows"][kind]["runs"], default, kind)
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
    lines += ["## Targets", "",
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
              "the run, the eval split is never seen during training or early stopping.", ""]
    return "\n".join(lines)


def _default_decoding() -> str:
    return _default_field("decoding")


def _default_field(name: str) -> Any:
    from pipeline import config as config_lib
    return getattr(config_lib.ModelConfig(), name)


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


def rewrite_markdown(out_dir: str) -> str:
    """Re-renders <out_dir>/RESULTS.md from <out_dir>/results.json (after a change to `render`)."""
    with open(os.path.join(out_dir, "results.json")) as f:
        result = json.load(f)
    path = os.path.join(out_dir, "RESULTS.md")
    with open(path, "w") as f:
        f.write(render(_unclean(result)))
    return path


def _unclean(value):
    """None -> NaN for the numbers _clean turned into null."""
    if value is None:
        return math.nan
    if isinstance(value, dict):
        return {k: _unclean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unclean(v) for v in value]
    return value


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
        for row in rows:
            if not applies(row, dataset):
                continue
            runs = []
            for seed in range(seeds):
                t0 = time.time()
                try:
                    run = train_and_evaluate(prepared, row, seed, budget, time_serving=seed < budget.serving_seeds)
                except Exception as e:  # one broken kind (e.g. one being written) must not stop the bench
                    message = (f"{row.label} on {dataset}: failed at seed {seed} ({type(e).__name__}: "
                               f"{str(e).splitlines()[0] if str(e) else ''}); row left out")
                    log(f"[{dataset}] {message}\n{traceback.format_exc()}")
                    ds["skipped"][row.id] = message
                    notes.append(message)
                    break
                run["seed"] = seed
                runs.append(run)
                for note in run.pop("notes", []):
                    if note not in notes:
                        notes.append(note)
                log(f"[{dataset}] {row.label:<30} seed {seed}: MAE {run['mae']:.3f}  Gini {run['normalized_gini']:.3f}"
                    f"  Spearman {run['spearman']:.3f}  XAUC {run['xauc']:.3f}  steps {run['best_step']}/"
                    f"{run['steps_trained']}  train {run['train_s']:.1f}s  ({time.time() - t0:.0f}s)")
            if len(runs) == seeds:
                ds["rows"][row.id] = {"label": row.label, "kind": row.kind, "changes": dict(row.changes),
                                      "runs": runs, "aggregate": aggregate(runs)}
                ds["targets"] = target_checks(dataset, ds["rows"])
                result["results"][dataset] = ds
                _write(result, out_dir, started, partial=True)
        ds["targets"] = target_checks(dataset, ds["rows"])
        result["results"][dataset] = ds
        del prepared
    _write(result, out_dir, started, partial=False)
    log(f"bench: wrote {os.path.join(out_dir, 'RESULTS.md')} and results.json in {result['wall_s'] / 60:.1f} min")
    return result


# ----------------------------------------------------------------------------------------------
# Command line


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Registers `bench` on an argparse subparsers object (the `rqvalue` command line)."""
    parser = subparsers.add_parser(
        "bench", help="train and evaluate every model kind on every embedded data set (several seeds); "
                      "writes RESULTS.md and results.json",
        description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS),
                        help="data sets (default: all three)")
    parser.add_argument("--models", nargs="+", default=None,
                        help="row ids: registered kinds (rqreg, ziln, mse, logmse, twostage, ...) and ablations "
                             f"({', '.join(ABLATIONS)}); default: all")
    parser.add_argument("--variant", action="append", default=[], metavar='"ID: key=value ..."',
                        help="an extra row with ModelConfig changes, e.g. --variant 'lr_low: learning_rate=0.001' "
                             "or --variant 'ziln_slow: kind=ziln learning_rate=0.001' (repeatable)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per model (default 3)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiplies data sizes and step budgets (default 1.0)")
    parser.add_argument("--tiny", action="store_true", help="smallest sizes and budgets (for tests)")
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
    budget = budget_for(args.scale, args.tiny)
    try:
        variants = [parse_variant(text) for text in args.variant]
    except ValueError as e:  # ConfigError too
        print(f"rqvalue bench: {e}", file=sys.stderr)
        return 2
    command = "rqvalue bench " + " ".join(
        [f"--datasets {' '.join(args.datasets)}" if list(args.datasets) != list(DATASETS) else "",
         f"--models {' '.join(args.models)}" if args.models else "",
         " ".join(f"--variant '{text}'" for text in args.variant),
         f"--seeds {args.seeds}" if args.seeds != 3 else "",
         f"--scale {args.scale:g}" if args.scale != 1.0 else "",
         "--tiny" if args.tiny else "",
         f"--out {args.out}"]).strip()
    command = " ".join(command.split())
    work_dir = args.work_dir
    temporary = work_dir is None
    if temporary:
        work_dir = tempfile.mkdtemp(prefix="rqvalue_bench_")
    try:
        run_bench(args.datasets, args.models, args.seeds, budget, os.path.abspath(args.out),
                  os.path.abspath(work_dir), command, variants=variants)
    finally:
        if temporary:
            shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m pipeline.bench")
    _sub = _parser.add_subparsers(dest="command", required=True)
    add_parser(_sub)
    _args = _parser.parse_args(["bench", *sys.argv[1:]])
    sys.exit(main(_args))
