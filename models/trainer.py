"""Trainer's module code: `run_fn` trains the configured model kind on Transform's output and exports it.

The exported SavedModel has the signatures of `models.serving`: `serving_default` (serialized raw
`tf.Example`s without the label -> `prediction`, `median`, `lower`, `upper` and the kind's extras;
the interval is split-conformal calibrated on the valid split after training, `models.calibration`)
and `transform_features` (for TFMA's `value_bucket` slices).

With `precision: mixed_float16` in the Trainer config a kind trained in Keras's fit loop trains
under Keras's mixed precision policy (float16 compute, float32 weights and outputs, the losses
float32 and scaled by Keras's LossScaleOptimizer); the model that is calibrated and exported is
rebuilt in float32 with the trained weights (`float32_model`), so the serving signature is float32
either way. Kinds that train themselves (trees) ignore the setting.
"""

import contextlib
import dataclasses
import json
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from models import base, calibration, codebook_analyzer, label_transform, registry, serving, warm_start
from schemas import features

# Builds an uncompiled model from (Trainer config, TrainContext).
Constructor = Callable[[Mapping[str, Any], base.TrainContext], base.ValueModel]


def trainer_config(data, model) -> Dict[str, Any]:
    """The Trainer's `custom_config`: every model setting plus the feature names and label."""
    config = {key: list(value) if isinstance(value, tuple) else value
              for key, value in dataclasses.asdict(model).items()}
    config.update(
        numeric_features=list(data.numeric_features),
        categorical_features=list(data.categorical_features),
        label=data.label,
        num_levels=len(model.codebook_sizes))
    return config


def read_codebook(tft_output: tft.TFTransformOutput, num_levels: int) -> List[np.ndarray]:
    """The centroids Transform fitted, one sorted array per level."""
    return [np.loadtxt(tft_output.vocabulary_file_by_name(codebook_analyzer.codebook_asset_key(l)), ndmin=1)
            for l in range(1, num_levels + 1)]


def _dataset(files, data_accessor, tft_output, batch_size: int, num_epochs=None) -> tf.data.Dataset:
    """(transformed features, transformed label) batches; repeats forever, shuffled, unless num_epochs is
    set: then `num_epochs` passes in file order (deterministic, as validation and calibration need)."""
    return data_accessor.tf_dataset_factory(
        files,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=features.TARGET_KEY, num_epochs=num_epochs,
                                       shuffle=num_epochs is None),
        tft_output.transformed_metadata.schema)


def validation_dataset(files, data_accessor, tft_output, batch_size: int, steps: Optional[int] = None
                       ) -> tf.data.Dataset:
    """What every validation check reads: one pass over the valid split in file order, so each check
    scores the same rows once each (a repeating shuffled stream of `steps` batches would score a
    different subset each time, some rows twice); `steps` > 0 keeps only the first `steps` batches."""
    dataset = _dataset(files, data_accessor, tft_output, batch_size, num_epochs=1)
    return dataset.take(steps) if steps else dataset


def training_sample(dataset: tf.data.Dataset, label_transform_name: str, limit: Optional[int] = 200_000
                    ) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
    """Up to `limit` (None: all) training labels (label units) and their transformed features, from one pass."""
    labels, columns = [], {}
    count = 0
    for batch, target in dataset:
        labels.append(label_transform.inverse(tf.reshape(target, [-1]), label_transform_name).numpy())
        for key, value in batch.items():
            if isinstance(value, tf.Tensor):
                columns.setdefault(key, []).append(value.numpy())
        count += len(labels[-1])
        if limit is not None and count >= limit:
            break
    return np.concatenate(labels)[:limit], {k: np.concatenate(v)[:limit] for k, v in columns.items()}


def train_context(config: Mapping[str, Any], tft_output: tft.TFTransformOutput, sample_dataset) -> base.TrainContext:
    """What the model needs to know before it is built: vocabularies, codebook, a label sample."""
    labels, columns = training_sample(sample_dataset, config["label_transform"])
    return base.TrainContext(
        numeric_keys=tuple(config["numeric_features"]),
        vocab_sizes={key: tft_output.vocabulary_size_by_name(key) + 1 for key in config["categorical_features"]},
        label_transform=config["label_transform"],
        train_labels=labels,
        codebook_levels=tuple(read_codebook(tft_output, config["num_levels"])),
        train_features=columns,
        interval_groups=config.get("interval_groups", 1),
        numeric_encoding=config.get("numeric_encoding", "zscore"))


def build_model(config: Mapping[str, Any], context: base.TrainContext,
                construct: Optional[Constructor] = None) -> base.ValueModel:
    """Builds the configured model kind (or what `construct` builds); compiles it unless it trains itself."""
    model = construct(config, context) if construct else registry.build(config["kind"], config, context)
    if model.trains_itself:
        return model
    loss, loss_weights = model.loss_config()
    model.compile(optimizer=keras.optimizers.Adam(config["learning_rate"]), loss=loss, loss_weights=loss_weights)
    return model


@contextlib.contextmanager
def precision_policy(precision: str):
    """Builds what is built inside under the Keras dtype policy `precision` (float32 or mixed_float16).

    Layers keep the policy they were made with, and `compile` wraps the optimizer in a
    LossScaleOptimizer for a mixed_float16 model; the global policy is restored on exit.
    """
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def float32_model(model: base.ValueModel, config: Mapping[str, Any], context: base.TrainContext,
                  batch: Tuple[Mapping[str, tf.Tensor], Mapping[str, tf.Tensor]],
                  construct: Optional[Constructor] = None) -> base.ValueModel:
    """`model` if it computes in float32; else the same kind rebuilt under the float32 policy with its weights.

    Mixed precision is a training setting: calibration and serving run in float32 (the code tree
    multiplies probabilities along paths, and TF Serving on CPUs is slow in float16).

    Args:
      model: the trained model.
      config, context: what it was built from.
      batch: one training batch (features, targets). The copy takes one training step on it, so
        that it has every variable training created (some are used in training only), before
        all of them are set to the trained values.
      construct: what built the model, if not the registry (as for `build_model`).
    """
    if model.compute_dtype == "float32":
        return model
    with precision_policy("float32"):
        copy = build_model(config, context, construct)
    copy.run_eagerly = True  # one step: cheaper than tracing a training function
    copy.train_on_batch(*batch)
    weights = model.get_weights()
    if [w.shape for w in weights] != [tuple(v.shape) for v in copy.weights]:
        raise RuntimeError(f"{config['kind']}: the float32 rebuild does not have the trained model's variables")
    copy.set_weights(weights)
    return copy


def _fit_keras(model: base.ValueModel, strategy, fn_args: tfx.components.FnArgs, tft_output: tft.TFTransformOutput,
               config: Mapping[str, Any], context: base.TrainContext,
               construct: Optional[Constructor] = None) -> base.ValueModel:
    """Keras fit on the train split, validated on the valid split; warm-starts from the base model.

    Returns:
      The trained model, in float32 (`float32_model`) if it trained in mixed precision.
    """
    batch_size = config["batch_size"]
    train = _dataset(fn_args.train_files, fn_args.data_accessor, tft_output, batch_size)
    evaluation = validation_dataset(fn_args.eval_files, fn_args.data_accessor, tft_output, batch_size,
                                    fn_args.eval_steps)
    train = train.map(lambda x, y: (x, model.training_targets(x, y)))
    if config.get("warm_start") and fn_args.base_model:
        with strategy.scope():
            model(next(iter(train))[0])  # build the variables before loading into them
            loaded, kept = warm_start.load(model, fn_args.base_model)
        print(f"    warm start from {fn_args.base_model}: {loaded} weight tensors loaded, {kept} newly initialised")
    evaluation = evaluation.map(lambda x, y: (x, model.training_targets(x, y)))
    # Validate every `validation_every` steps on the whole valid split; stop when it stops improving
    # and keep the best weights.
    every = min(config["validation_every"], fn_args.train_steps)
    history = model.fit(
        train,
        epochs=max(fn_args.train_steps // every, 1),
        steps_per_epoch=every,
        validation_data=evaluation,
        callbacks=[keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir, update_freq="epoch"),
                   keras.callbacks.EarlyStopping(monitor="val_loss", patience=config["patience"],
                                                 restore_best_weights=True),
                   *model.training_callbacks(fn_args.train_steps)],
        verbose=0).history
    best = int(np.argmin(history["val_loss"]))
    print(f"    {config['kind']}: {len(history['val_loss']) * every} steps, best validation loss "
          f"{history['val_loss'][best]:.4f} after {(best + 1) * every} steps")
    return float32_model(model, config, context, next(iter(train)), construct)


def _fit_on_rows(model: base.ValueModel, fn_args: tfx.components.FnArgs, tft_output: tft.TFTransformOutput,
                 config: Mapping[str, Any]) -> None:
    """A kind that trains itself (trees) gets every train and valid row; what it searched goes to the run dir."""
    if config.get("warm_start") and fn_args.base_model:
        print(f"    warm start does not apply to {config['kind']}: its trees are grown anew on this run's data "
              f"(the base model {fn_args.base_model} is not read)")
    rows = []
    for files in (fn_args.train_files, fn_args.eval_files):
        labels, columns = training_sample(
            _dataset(files, fn_args.data_accessor, tft_output, 1024, num_epochs=1), config["label_transform"],
            limit=None)
        rows.append((columns, labels))
    summary = model.fit_on_rows(*rows)
    tf.io.gfile.makedirs(fn_args.model_run_dir)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, f"{config['kind']}_search.json"), "w") as f:
        json.dump(summary, f, indent=1)


def run_fn(fn_args: tfx.components.FnArgs, construct: Optional[Constructor] = None) -> None:
    """TFX Trainer entry point; `construct` replaces the registry's model of `kind` (distillation's teacher, student)."""
    config = fn_args.custom_config
    keras.utils.set_random_seed(config["seed"])
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    one_pass = _dataset(fn_args.train_files, fn_args.data_accessor, tft_output, 1024, num_epochs=1)
    context = train_context(config, tft_output, one_pass)

    precision = config.get("precision", "float32")
    if precision != "float32" and registry.trains_itself(config["kind"]):
        print(f"    trainer.precision {precision} does not apply to {config['kind']}: it trains outside Keras's "
              "fit loop, in float32")
        precision = "float32"
    strategy = tf.distribute.MirroredStrategy()
    with strategy.scope(), precision_policy(precision):
        model = build_model(config, context, construct)
    if model.trains_itself:
        _fit_on_rows(model, fn_args, tft_output, config)
    else:
        model = _fit_keras(model, strategy, fn_args, tft_output, config, context, construct)
    calibration.calibrate_model(model, _dataset(fn_args.eval_files, fn_args.data_accessor, tft_output, 1024,
                                                num_epochs=1), mean=config["mean_calibration"])
    signatures = serving.signatures(model, tft_output, config)
    signatures.update(model.export_signatures(tft_output))
    tf.saved_model.save(model, fn_args.serving_model_dir, signatures=signatures)
    model.save_weights(os.path.join(fn_args.model_run_dir, "weights", "model"))
    warm_start.save(model, fn_args.serving_model_dir)
