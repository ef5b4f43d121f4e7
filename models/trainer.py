"""Trainer's module code: `run_fn` trains the RQ-Reg model on Transform's output and exports it for serving.

The exported SavedModel has two signatures:
  - `serving_default`: serialized raw `tf.Example`s (no label) -> `prediction` (mean, label
    units), `median` and `codes` (the most probable code path);
  - `transform_features`: serialized raw examples (with label) -> transformed features; TFMA
    uses it to slice by `value_bucket`.
"""

import os
from typing import Any, Dict, List, Mapping

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from models import codebook_analyzer
from models import model as rq_model
from schemas import features


def trainer_config(data, model) -> Dict[str, Any]:
    """The Trainer's `custom_config`, from the run's config sections."""
    return {
        "numeric_features": list(data.numeric_features),
        "categorical_features": list(data.categorical_features),
        "label": data.label,
        "label_transform": model.label_transform,
        "embedding_dim": model.embedding_dim,
        "hidden_units": list(model.hidden_units),
        "lstm_units": model.lstm_units,
        "regression_weight": model.regression_weight,
        "learning_rate": model.learning_rate,
        "batch_size": model.batch_size,
        "num_levels": len(model.codebook_sizes),
        "seed": model.seed,
    }


def read_codebook(tft_output: tft.TFTransformOutput, num_levels: int) -> List[np.ndarray]:
    """The centroids Transform fitted, one sorted array per level."""
    return [np.loadtxt(tft_output.vocabulary_file_by_name(codebook_analyzer.codebook_asset_key(l)), ndmin=1)
            for l in range(1, num_levels + 1)]


def _dataset(files, data_accessor, tft_output, batch_size: int, num_levels: int) -> tf.data.Dataset:
    dataset = data_accessor.tf_dataset_factory(
        files,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=features.TARGET_KEY),
        tft_output.transformed_metadata.schema)
    return dataset.map(
        lambda x, y: (x, rq_model.training_targets(x[features.CODES_KEY], y, num_levels))).repeat()


def build_model(config: Mapping[str, Any], tft_output: tft.TFTransformOutput) -> rq_model.RQRegModel:
    """Builds and compiles the model from the Trainer config and Transform's vocabularies and codebook."""
    vocab_sizes = {key: tft_output.vocabulary_size_by_name(key) + 1 for key in config["categorical_features"]}
    model = rq_model.RQRegModel(
        numeric_keys=config["numeric_features"],
        vocab_sizes=vocab_sizes,
        codebook_levels=read_codebook(tft_output, config["num_levels"]),
        label_transform_name=config["label_transform"],
        embedding_dim=config["embedding_dim"],
        hidden_units=config["hidden_units"],
        lstm_units=config["lstm_units"])
    loss, loss_weights = rq_model.losses(config["num_levels"], config["regression_weight"])
    model.compile(optimizer=keras.optimizers.Adam(config["learning_rate"]), loss=loss, loss_weights=loss_weights)
    return model


def _serving_signatures(model: rq_model.RQRegModel, tft_output: tft.TFTransformOutput,
                        config: Mapping[str, Any]) -> Dict[str, Any]:
    model.tft_layer = tft_output.transform_features_layer()
    raw_spec = tft_output.raw_feature_spec()
    used = set(config["numeric_features"]) | set(config["categorical_features"])
    serving_spec = {k: v for k, v in raw_spec.items() if k in used}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(serialized):
        raw = tf.io.parse_example(serialized, serving_spec)
        return model.predict_outputs(model.tft_layer(raw))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(serialized):
        raw = tf.io.parse_example(serialized, raw_spec)
        return model.tft_layer(raw)

    return {"serving_default": serve, "transform_features": transform_features}


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """TFX Trainer entry point."""
    config = fn_args.custom_config
    keras.utils.set_random_seed(config["seed"])
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    num_levels = config["num_levels"]
    batch_size = config["batch_size"]
    train = _dataset(fn_args.train_files, fn_args.data_accessor, tft_output, batch_size, num_levels)
    evaluation = _dataset(fn_args.eval_files, fn_args.data_accessor, tft_output, batch_size, num_levels)

    strategy = tf.distribute.MirroredStrategy()
    with strategy.scope():
        model = build_model(config, tft_output)
    model.fit(
        train,
        steps_per_epoch=fn_args.train_steps,
        validation_data=evaluation,
        validation_steps=fn_args.eval_steps,
        callbacks=[keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir, update_freq="epoch")],
        verbose=2)
    signatures = _serving_signatures(model, tft_output, config)
    tf.saved_model.save(model, fn_args.serving_model_dir, signatures=signatures)
    model.save_weights(os.path.join(fn_args.model_run_dir, "weights", "model"))
