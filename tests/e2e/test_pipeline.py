"""The whole pipeline on a few thousand CDNOW customers: push, serve, cache, and stop on bad data."""

import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components import feature_store_example_gen as ingest
from pipeline import config as config_lib
from pipeline import local_runner, tfma_results

pytestmark = pytest.mark.e2e

UPSTREAM = {"FeatureStoreExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator",
            "ValidationGate", "Transform", "Trainer"}


def _executions(metadata_path):
    """[(run context name, node id, state)] in execution order."""
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    store = metadata_store.MetadataStore(config)
    node_type = store.get_context_type("node").id
    run_type = store.get_context_type("pipeline_run").id
    rows = []
    for execution in sorted(store.get_executions(), key=lambda e: e.id):
        contexts = store.get_contexts_by_execution(execution.id)
        node = next(c.name.split(".", 1)[1] for c in contexts if c.type_id == node_type)
        run = next(c.name for c in contexts if c.type_id == run_type)
        rows.append((run, node, execution.last_known_state))
    return rows


def _executed(rows, run):
    return {node for r, node, state in rows if r == run and state == metadata_store_pb2.Execution.COMPLETE}


def test_run_pushes_a_blessed_model_with_metrics_per_value_bucket(small_run):
    cfg, result = small_run
    assert result.blessed is True
    assert result.pushed_model and os.path.dirname(result.pushed_model) == cfg.serving_dir
    assert os.path.exists(os.path.join(result.pushed_model, "saved_model.pb"))
    overall = result.metrics[tfma_results.OVERALL]
    buckets = {k: v for k, v in result.metrics.items() if k.startswith("value_bucket=")}
    assert "value_bucket=0" in buckets and len(buckets) >= 3
    assert sum(v["example_count"] for v in buckets.values()) == overall["example_count"]
    assert buckets["value_bucket=0"]["mean_label"] == 0.0
    for key in ("mean_absolute_error", "root_mean_squared_error", "normalized_gini", "spearman",
                "mean_label", "mean_prediction"):
        assert np.isfinite(overall[key]), key
    # The served 80% interval, calibrated on the valid split, covers about 80% of the eval split.
    assert 0.7 <= overall["interval_coverage"] <= 1.0


def test_pushed_model_scores_raw_examples_without_label(small_run):
    cfg, result = small_run
    spec = ingest.IngestionSpec.from_data_config(cfg.data)
    frame = ingest.retrieve(spec).head(20)
    unlabeled = frame.assign(**{cfg.data.label: np.nan})
    serialized = [e.SerializeToString() for e in ingest.to_examples(unlabeled, spec)]
    assert all(cfg.data.label not in tf.train.Example.FromString(s).features.feature for s in serialized)
    serve = tf.saved_model.load(result.pushed_model).signatures["serving_default"]
    outputs = serve(examples=tf.constant(serialized))
    prediction = outputs["prediction"].numpy()
    assert prediction.shape == (20,)
    assert np.all(np.isfinite(prediction)) and np.all(prediction >= 0)
    assert outputs["codes"].shape == (20, len(cfg.model.codebook_sizes))
    assert outputs["median"].shape == (20,)
    # Larger first-day spend should not lower the predicted value on average.
    spend = frame["total_spend"].values
    assert np.corrcoef(spend, prediction)[0, 1] > 0


def test_pushed_model_scores_nan_as_missing_and_names_an_unreadable_row(small_run):
    _, result = small_run
    serve = tf.saved_model.load(result.pushed_model).signatures["serving_default"]
    row = tf.train.Example(features=tf.train.Features(feature={
        "total_spend": tf.train.Feature(float_list=tf.train.FloatList(value=[12.5])),
        "first_purchase_weekday": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"Mon"]))}))
    nan, missing = tf.train.Example(), tf.train.Example()
    nan.CopyFrom(row)
    nan.features.feature["total_spend"].float_list.value[:] = [float("nan")]
    missing.CopyFrom(row)
    del missing.features.feature["total_spend"]
    batch = [e.SerializeToString() for e in (row, nan, missing)]
    prediction = serve(examples=tf.constant(batch))["prediction"].numpy()
    assert np.isfinite(prediction).all() and prediction[1] == prediction[2]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"examples\[1\] cannot be read"):
        serve(examples=tf.constant([batch[0], b"\xff\xfe not an example"]))


def test_rerun_with_unchanged_inputs_executes_only_the_resolver(small_run, tmp_path):
    cfg = config_lib.replace(small_run[0], output_dir=str(tmp_path / "out"))
    first = local_runner.run(cfg, report=None)
    assert first.pushed_model
    second = local_runner.run(cfg, report=None)
    rows = _executions(cfg.metadata_path)
    runs = list(dict.fromkeys(r for r, _, _ in rows))
    assert len(runs) == 2
    assert UPSTREAM | {"Evaluator", "Pusher"} <= _executed(rows, runs[0])
    assert _executed(rows, runs[1]) <= {"latest_blessed_model_resolver"}
    assert second.pushed_model == first.pushed_model
    assert os.listdir(cfg.serving_dir) == [os.path.basename(first.pushed_model)]


def test_bad_labels_stop_the_run_before_transform_and_push_nothing(small_run, tmp_path):
    cfg, _ = small_run
    spine = pd.read_parquet(cfg.data.spine)
    spine.loc[0, cfg.data.label] = -5.0
    spine.loc[1, cfg.data.label] = np.nan
    bad_spine = str(tmp_path / "spine.parquet")
    spine.to_parquet(bad_spine)
    bad = config_lib.replace(cfg, data={"spine": bad_spine}, output_dir=str(tmp_path / "out"))
    with pytest.raises(Exception) as raised:
        local_runner.run(bad, report=None)
    message = str(raised.value) + str(raised.value.__cause__ or "")
    assert "label" in message and "nothing was trained or pushed" in message
    executed = {node for _, node, state in _executions(bad.metadata_path)
                if state == metadata_store_pb2.Execution.COMPLETE}
    assert "Transform" not in executed and "Trainer" not in executed
    assert not os.path.exists(bad.serving_dir)
