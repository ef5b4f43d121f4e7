"""The scoring pipeline's shape, where it writes, and BulkInferrer's bounded batches."""

import json

import pytest
import tensorflow as tf
from tfx.proto import bulk_inferrer_pb2
from tfx.utils import proto_utils

from components import bulk_scoring
from pipeline import config as config_lib
from pipeline import scoring

DATA = config_lib.DataConfig(feast_repo="/repo", spine="/spine.csv", entity_columns=("customer_id",),
                             feature_refs=("v:a", "v:b"), numeric_features=("a",), categorical_features=("b",),
                             label="LTV 365")


def _config(**changes):
    return config_lib.RunConfig(data=DATA, output_dir="/out", pipeline_name="rqvalue-mine",
                                beam_args=("--direct_running_mode=in_memory", "--direct_num_workers=1"), **changes)


def _run(**changes):
    return scoring.ScoringRun(as_of="2024-06-01T00:00:00+00:00", model_uri="/out/pipeline_root/Trainer/model/9",
                              model_version="1795", output_keys=("codes", "lower", "median", "prediction", "upper"),
                              **changes)


def test_components_paths_and_no_cache():
    pipeline = scoring.create_scoring_pipeline(_config(), _run())
    assert [c.id for c in pipeline.components] == ["ScoringExampleGen", "pushed_model_importer", "BulkInferrer",
                                                   "PredictionsWriter"]
    assert pipeline.pipeline_info.pipeline_name == "rqvalue-mine-scoring"
    assert pipeline.pipeline_info.pipeline_root == "/out/scoring/pipeline_root"
    assert pipeline.metadata_connection_config.sqlite.filename_uri == "/out/scoring/metadata.sqlite"
    assert pipeline.enable_cache is False
    assert pipeline.beam_pipeline_args == []  # the in-memory DirectRunner: Beam's defaults (runners.component_beam_args)
    writer = json.loads(pipeline.components[3].exec_properties["spec_json"])
    assert writer["view_name"] == "predicted_ltv_365" and writer["predictions_dir"] == "/out/predictions"
    assert writer["model_version"] == "1795"
    spec = json.loads(pipeline.components[0].exec_properties["spec_json"])
    assert spec["as_of"] == "2024-06-01T00:00:00+00:00" and spec["chunk_rows"] == 250_000


def test_a_cloud_pipeline_root_and_a_named_view():
    cfg = _config(pipeline_root_uri="gs://bucket/rq/", scoring=config_lib.ScoringConfig(view_name="ltv_scores"))
    pipeline = scoring.create_scoring_pipeline(cfg, _run())
    assert pipeline.pipeline_info.pipeline_root == "gs://bucket/rq/scoring"
    assert json.loads(pipeline.components[3].exec_properties["spec_json"])["view_name"] == "ltv_scores"


def test_bulk_inferrer_scores_the_score_split_with_the_serving_signature_in_bounded_batches():
    inferrer = scoring.create_scoring_pipeline(_config(), _run()).components[2]
    assert inferrer.executor_spec.executor_class is bulk_scoring.BoundedBatchExecutor
    model_spec = proto_utils.json_to_proto(inferrer.exec_properties["model_spec"], bulk_inferrer_pb2.ModelSpec())
    assert list(model_spec.model_signature_name) == ["serving_default"]
    data_spec = proto_utils.json_to_proto(inferrer.exec_properties["data_spec"], bulk_inferrer_pb2.DataSpec())
    assert list(data_spec.example_splits) == ["score"]
    executor = bulk_scoring.BoundedBatchExecutor()
    spec = executor._get_inference_spec("/m", {"model_spec": inferrer.exec_properties["model_spec"]})
    assert (spec.batch_parameters.min_batch_size, spec.batch_parameters.max_batch_size) == (256, 1024)


def test_bulk_inferrer_scores_with_the_packed_signature_when_the_run_names_it():
    inferrer = scoring.create_scoring_pipeline(_config(), _run(signature="score_packed")).components[2]
    model_spec = proto_utils.json_to_proto(inferrer.exec_properties["model_spec"], bulk_inferrer_pb2.ModelSpec())
    assert list(model_spec.model_signature_name) == ["score_packed"]


VALUES = (5.0, 4.0, 1.0, 9.0)  # the tiny model's prediction, median, lower and upper


@pytest.fixture(scope="module", params=[False, True], ids=["serving_default", "and_packed"])
def tiny_model(request, tmp_path_factory):
    """A SavedModel with the serving contract's signature (VALUES for every row), and with the packed one."""
    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(examples):
        n = tf.shape(examples)[0]
        return {key: tf.fill([n], value) for key, value in zip(("prediction", "median", "lower", "upper"), VALUES)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def packed(examples):
        return {"scores": tf.tile([VALUES], [tf.shape(examples)[0], 1])}

    signatures = {"serving_default": serve, **({"score_packed": packed} if request.param else {})}
    path = str(tmp_path_factory.mktemp("model") / "model")
    tf.saved_model.save(module, path, signatures=signatures)
    return path, request.param


def test_signature_outputs_are_read_without_loading_the_model(tiny_model):
    path, packed = tiny_model
    assert bulk_scoring.signature_outputs(path) == ["lower", "median", "prediction", "upper"]
    assert bulk_scoring.scoring_signature(path) == ("score_packed" if packed else "serving_default")


def test_scoring_settings_come_from_the_config_file():
    data = {"feast_repo": "r", "spine": "s.csv", "entity_columns": ["id"], "feature_refs": ["v:a"],
            "numeric_features": ["a"]}
    cfg = config_lib.from_dict({"data": data, "scoring": {"view_name": "ltv_scores", "chunk_rows": 1000}})
    assert (cfg.scoring.view_name, cfg.scoring.chunk_rows, cfg.scoring.batch_rows) == ("ltv_scores", 1000, 100_000)
    for bad, message in (({"chunk_rows": 0}, "scoring.chunk_rows"), ({"view_name": "my view"}, "scoring.view_name"),
                         ({"views": "x"}, "scoring: unknown field")):
        try:
            config_lib.from_dict({"data": data, "scoring": bad})
        except config_lib.ConfigError as e:
            assert message in str(e)
        else:
            raise AssertionError(f"{bad} accepted")


def test_the_batch_bounds_reach_beam(tiny_model):
    # tfx_bsl's wrapper drops the handler's batch parameters unless the executor forwards them.
    from tfx_bsl.beam import run_inference

    spec = bulk_scoring.BoundedBatchExecutor()._get_inference_spec(
        tiny_model[0], {"model_spec": proto_utils.proto_to_json(bulk_inferrer_pb2.ModelSpec())})
    wrapped = run_inference._ModelHandlerWrapper(run_inference._PredictModelHandler(spec, None))
    assert wrapped.batch_elements_kwargs() == {}
    with bulk_scoring.forwarded_batch_parameters():
        assert wrapped.batch_elements_kwargs() == {"min_batch_size": 256, "max_batch_size": 1024}
    assert wrapped.batch_elements_kwargs() == {}


def test_bulk_inference_logs_of_either_signature_decode_into_the_values(tiny_model, tmp_path):
    from rqvalue.bench import bulk_inference

    path, packed = tiny_model
    rows = [tf.train.Example().SerializeToString()] * 300  # more than one batch of 256
    result = bulk_inference.measure(path, rows, bulk_scoring.scoring_signature(path))
    assert result["signature"] == ("score_packed" if packed else "serving_default")
    assert result["rows"] == 300 and result["first_predictions"] == [5.0, 5.0, 5.0]
