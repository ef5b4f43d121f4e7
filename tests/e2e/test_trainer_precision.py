"""TFX's Trainer executor with precision mixed_float16 on a real Transform output: it trains and exports float32."""

import json

import numpy as np
import pytest
import tensorflow as tf

from components import feature_store_example_gen as ingest
from models import trainer
from pipeline import mlmd

pytestmark = pytest.mark.e2e


def _artifacts(store, type_name, producer=None):
    """The small run's artifacts of a type as TFX artifacts (those under `producer`'s folder, if given)."""
    from tfx.types import artifact_utils

    artifact_type = store.get_artifact_type(type_name)
    found = [a for a in store.get_artifacts_by_type(type_name) if producer is None or f"/{producer}/" in a.uri]
    return [artifact_utils.deserialize_artifact(artifact_type, max(found, key=lambda a: a.id))]


def test_trainer_executor_trains_in_mixed_float16_and_exports_a_float32_signature(small_run, tmp_path):
    from tfx.components.trainer import executor
    from tfx.proto import trainer_pb2
    from tfx.types import standard_artifacts
    from tfx.utils import json_utils, path_utils, proto_utils

    cfg, _ = small_run
    store = mlmd.open_readonly(cfg.metadata_path)
    inputs = {"examples": _artifacts(store, "Examples", producer="Transform"),
              "transform_graph": _artifacts(store, "TransformGraph"),
              "schema": _artifacts(store, "Schema")}
    model, model_run = standard_artifacts.Model(), standard_artifacts.ModelRun()
    model.uri, model_run.uri = str(tmp_path / "model"), str(tmp_path / "model_run")
    custom_config = {**trainer.trainer_config(cfg.data, cfg.model), "precision": "mixed_float16"}
    exec_properties = {
        "run_fn": "models.trainer.run_fn",
        "train_args": proto_utils.proto_to_json(trainer_pb2.TrainArgs(splits=["train"], num_steps=20)),
        "eval_args": proto_utils.proto_to_json(trainer_pb2.EvalArgs(splits=["valid"], num_steps=5)),
        "custom_config": json_utils.dumps(custom_config),
    }
    executor.GenericExecutor(executor.GenericExecutor.Context(tmp_dir=str(tmp_path / "tmp"), unique_id="1")).Do(
        inputs, {"model": [model], "model_run": [model_run]}, exec_properties)

    import tf_keras as keras
    assert keras.mixed_precision.global_policy().name == "float32"  # the run leaves the process as it found it
    exported = tf.saved_model.load(path_utils.serving_model_path(model.uri))
    assert all(v.dtype == tf.float32 for v in exported.variables if v.dtype.is_floating)
    serve = exported.signatures["serving_default"]
    assert {spec.dtype for spec in serve.structured_outputs.values() if spec.dtype.is_floating} == {tf.float32}
    spec = ingest.IngestionSpec.from_data_config(cfg.data)
    frame = ingest.retrieve(spec).head(50).assign(**{cfg.data.label: np.nan})
    outputs = serve(examples=tf.constant([e.SerializeToString() for e in ingest.to_examples(frame, spec)]))
    lower, median, upper, prediction = (outputs[k].numpy() for k in ("lower", "median", "upper", "prediction"))
    assert prediction.dtype == np.float32 and prediction.shape == (50,)
    assert np.all(np.isfinite(prediction)) and np.all(prediction >= 0) and np.ptp(prediction) > 0
    assert np.all(lower <= median) and np.all(median <= upper)
    assert json.loads(exec_properties["custom_config"])["precision"] == "mixed_float16"
