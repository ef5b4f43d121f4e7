"""The gbdt kind through the whole pipeline, on the shared small run's data: Trainer, TFMA, gate, Pusher, serving."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from test_pipeline import UPSTREAM, _executed, _executions

from components import feature_store_example_gen as ingest
from models import base
from pipeline import config as config_lib
from pipeline import local_runner, tfma_results

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gbdt_run(small_run, tmp_path_factory):
    """The small run's store and artifacts copied, then run again with model.kind gbdt: ingestion,
    validation and Transform come from the cache, so only the Trainer onwards runs (about a minute)."""
    cfg, _ = small_run
    out = str(tmp_path_factory.mktemp("gbdt_run") / "out")
    shutil.copytree(cfg.output_dir, out)
    # A tolerant gate: the check here is that a tree model passes through it to the Pusher, not its ranking.
    gbdt = config_lib.replace(cfg, model={"kind": "gbdt"}, gate={"gini_tolerance": 1.0}, output_dir=out)
    return gbdt, local_runner.run(gbdt, report=None)


def test_gbdt_reuses_the_upstream_artifacts_and_is_evaluated_blessed_and_pushed(gbdt_run):
    cfg, result = gbdt_run
    rows = _executions(cfg.metadata_path)
    runs = list(dict.fromkeys(r for r, _, _ in rows))
    executed = _executed(rows, runs[-1])
    assert {"Trainer", "Evaluator", "Pusher"} <= executed
    assert not executed & (UPSTREAM - {"Trainer"})  # same data and Transform: from the cache
    assert result.blessed is True and result.pushed_model
    assert os.path.dirname(result.pushed_model) == cfg.serving_dir
    overall = result.metrics[tfma_results.OVERALL]
    for key in ("mean_absolute_error", "normalized_gini", "spearman", "mean_prediction"):
        assert np.isfinite(overall[key]), key
    assert overall["normalized_gini"] > 0.1
    assert 0.7 <= overall["interval_coverage"] <= 1.0
    searches = [os.path.join(root, name) for root, _, names in os.walk(cfg.pipeline_root) for name in names
                if name == "gbdt_search.json"]
    assert len(searches) == 1
    with open(searches[0]) as f:
        search = json.load(f)
    assert len(search["search"]) == (len(cfg.model.gbdt_max_depths) * len(cfg.model.gbdt_shrinkages)
                                     * len(cfg.model.gbdt_min_examples))


def test_pushed_gbdt_serves_raw_examples_in_a_process_without_tree_ops(gbdt_run):
    cfg, result = gbdt_run
    spec = ingest.IngestionSpec.from_data_config(cfg.data)
    frame = ingest.retrieve(spec).head(50)
    serialized = [e.SerializeToString() for e in ingest.to_examples(frame.assign(**{cfg.data.label: np.nan}), spec)]
    loaded = tf.saved_model.load(result.pushed_model)
    outputs = loaded.signatures["serving_default"](examples=tf.constant(serialized))
    assert set(base.SERVING_KEYS) <= set(outputs)
    values = {key: outputs[key].numpy() for key in base.SERVING_KEYS}
    assert all(v.shape == (50,) and np.all(np.isfinite(v)) for v in values.values())
    assert np.all(values["lower"] <= values["prediction"] + 1e-4)
    assert np.all(values["prediction"] <= values["upper"] + 1e-4)
    # The export holds only TensorFlow's own ops: no custom op library is needed to load or serve it.
    graph_ops = {node.op for f in loaded.signatures["serving_default"].graph.as_graph_def().library.function
                 for node in f.node_def}
    assert not any(op.startswith("SimpleML") for op in graph_ops)
