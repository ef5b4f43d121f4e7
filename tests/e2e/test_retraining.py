"""Retraining as data arrives: three weekly spans, one run each, then a run with nothing new.

Watch-time impressions from 2024-01-01 (a Monday) in 7-day spans; the spine file grows by one week
before each run, and Transform and the Trainer see a rolling window of the latest two spans.
"""

import dataclasses
import os

import pandas as pd
import pytest
from ml_metadata.proto import metadata_store_pb2

from pipeline import config as config_lib
from pipeline import datasets, local_runner, mlmd

pytestmark = pytest.mark.e2e

WEEK1, WEEK2, WEEK3 = 20240101, 20240108, 20240115
# Every candidate is blessed, so each run warm-starts from the previous run's model.
OPEN_GATE = dict(min_normalized_gini=-1.0, min_spearman=-1.0, gini_tolerance=2.0)


def _node_executions(store, pipeline_name: str, node: str):
    context = store.get_context_by_type_and_name("node", f"{pipeline_name}.{node}")
    return sorted(store.get_executions_by_context(context.id), key=lambda e: e.id)


def _inputs(store, execution, key: str):
    ids = [e.artifact_id for e in store.get_events_by_execution_ids([execution.id])
           if e.type == metadata_store_pb2.Event.INPUT and e.path.steps[0].key == key]
    return store.get_artifacts_by_id(ids)


def _outputs(store, execution, key: str):
    ids = [e.artifact_id for e in store.get_events_by_execution_ids([execution.id])
           if e.type == metadata_store_pb2.Event.OUTPUT and e.path.steps[0].key == key]
    return store.get_artifacts_by_id(ids)


def _spans(artifacts):
    return sorted(a.properties["span"].int_value for a in artifacts)


@pytest.fixture(scope="module")
def retraining(tmp_path_factory):
    """Runs the pipeline four times as weeks arrive; returns (config, store, ingested span per run)."""
    root = tmp_path_factory.mktemp("retraining")
    data = datasets.prepare("watch_time", str(root / "data"), rows=2400)
    full = pd.read_parquet(data.spine)
    spine_path = str(root / "spine.parquet")
    cfg = config_lib.RunConfig(
        data=dataclasses.replace(data, spine=spine_path, span_days=7, window_spans=2),
        model=config_lib.ModelConfig(codebook_sizes=(8, 4, 4), train_steps=30, eval_steps=5, batch_size=64),
        gate=config_lib.GateConfig(**OPEN_GATE),
        output_dir=str(root / "out"),
        pipeline_name="retraining")
    weeks = [pd.Timestamp("2024-01-08", tz="UTC"), pd.Timestamp("2024-01-15", tz="UTC"),
             pd.Timestamp("2024-01-22", tz="UTC"), pd.Timestamp("2024-01-22", tz="UTC")]
    ingested = []
    for end in weeks:
        full[full["prediction_time"] < end].to_parquet(spine_path, index=False)
        local_runner.run(cfg, report=None)
        store = mlmd.open_readonly(cfg.metadata_path)
        ingested.append(_spans(_outputs(store, _node_executions(store, cfg.pipeline_name,
                                                                "FeatureStoreExampleGen")[-1], "examples")))
    return cfg, mlmd.open_readonly(cfg.metadata_path), ingested


def test_each_run_ingests_the_newest_week(retraining):
    _, _, ingested = retraining
    assert ingested == [[WEEK1], [WEEK2], [WEEK3], [WEEK3]]


def test_transform_and_trainer_see_the_rolling_window(retraining):
    cfg, store, _ = retraining
    transforms = [e for e in _node_executions(store, cfg.pipeline_name, "Transform")
                  if e.last_known_state == metadata_store_pb2.Execution.COMPLETE]
    assert [_spans(_inputs(store, e, "examples")) for e in transforms] == [[WEEK1], [WEEK1, WEEK2], [WEEK2, WEEK3]]


def test_each_training_warm_starts_from_the_previous_blessed_model(retraining):
    cfg, store, _ = retraining
    trainers = [e for e in _node_executions(store, cfg.pipeline_name, "Trainer")
                if e.last_known_state == metadata_store_pb2.Execution.COMPLETE]
    assert len(trainers) == 3
    models = [_outputs(store, e, "model")[0].id for e in trainers]
    base_models = [[a.id for a in _inputs(store, e, "base_model")] for e in trainers]
    assert base_models == [[], [models[0]], [models[1]]]
    blessings = store.get_artifacts_by_type("ModelBlessing")
    assert {b.custom_properties["current_model_id"].int_value for b in blessings
            if b.custom_properties["blessed"].int_value == 1} >= set(models[:2])


def test_analysis_of_earlier_spans_comes_from_the_analyzer_cache(retraining):
    cfg, store, _ = retraining
    transforms = [e for e in _node_executions(store, cfg.pipeline_name, "Transform")
                  if e.last_known_state == metadata_store_pb2.Execution.COMPLETE]
    caches_in = [[a.id for a in _inputs(store, e, "analyzer_cache")] for e in transforms]
    caches_out = [_outputs(store, e, "updated_analyzer_cache")[0] for e in transforms]
    assert caches_in == [[], [caches_out[0].id], [caches_out[1].id]]
    # The third run's cache carries the second week's entries (per analyzer accumulators of that
    # span's train split) over unchanged, and adds the third week's.
    week2 = _outputs(store, _node_executions(store, cfg.pipeline_name, "FeatureStoreExampleGen")[1], "examples")[0]
    entries = [{name: _read_tree(os.path.join(cache.uri, name)) for name in os.listdir(cache.uri)}
               for cache in caches_out]
    [week2_entry] = [name for name in entries[2] if f"-examples-{os.path.basename(week2.uri)}-Split-train-" in name]
    assert entries[2][week2_entry] == entries[1][week2_entry] and entries[2][week2_entry]
    assert len(entries[2]) == 2 and week2_entry in entries[1]


def _read_tree(path):
    return {name: open(os.path.join(path, name), "rb").read() for name in sorted(os.listdir(path))}


def test_a_run_without_a_new_span_trains_nothing(retraining):
    cfg, store, _ = retraining
    for node in ("FeatureStoreExampleGen", "Transform", "Trainer", "Evaluator", "Pusher"):
        last = _node_executions(store, cfg.pipeline_name, node)[-1]
        assert last.last_known_state == metadata_store_pb2.Execution.CACHED, node
    assert len(store.get_artifacts_by_type("Model")) == 3
