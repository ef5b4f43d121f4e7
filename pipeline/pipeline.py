"""`create_pipeline(config, fingerprint)`: the TFX pipeline as a pure function of the run config (no I/O).

FeatureStoreExampleGen -> StatisticsGen -> ImportSchemaGen|SchemaGen -> ExampleValidator ->
ValidationGate -> Transform -> Trainer -> (latest blessed other model) -> Evaluator -> Pusher.
"""

from tfx import v1 as tfx

from components.baseline_resolver import baseline_resolver
from components.feature_store_example_gen import FeatureStoreExampleGen, IngestionSpec
from components.validation_gate import ValidationGate
from models import preprocessing, trainer
from pipeline.config import RunConfig
from pipeline.evaluation import eval_config

PREPROCESSING_FN = "models.preprocessing.preprocessing_fn"
RUN_FN = "models.trainer.run_fn"


def create_pipeline(config: RunConfig, fingerprint: str) -> tfx.dsl.Pipeline:
    """Builds the pipeline.

    Args:
      config: the run configuration.
      fingerprint: `components.feature_store_example_gen.input_fingerprint` of the data, so a
        change of the spine or the feature data re-runs ingestion while an unchanged one is cached.
    """
    data, model = config.data, config.model
    example_gen = FeatureStoreExampleGen(
        spec_json=IngestionSpec.from_data_config(data).to_json(), fingerprint=fingerprint)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    if data.schema:
        schema_gen = tfx.components.ImportSchemaGen(schema_file=data.schema)
    else:
        schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"],
                                              infer_feature_shape=False)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    validation_gate = ValidationGate(anomalies=example_validator.outputs["anomalies"])

    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config=preprocessing.transform_config(data, model),
        disable_statistics=True)
    transform.add_upstream_node(validation_gate)

    trainer_component = tfx.components.Trainer(
        run_fn=RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(splits=["train"], num_steps=model.train_steps),
        eval_args=tfx.proto.EvalArgs(splits=["valid"], num_steps=model.eval_steps),
        custom_config=trainer.trainer_config(data, model))

    model_resolver = baseline_resolver(trainer_component.outputs["model"])

    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer_component.outputs["model"],
        baseline_model=model_resolver.outputs["model"],
        example_splits=["eval"],
        eval_config=eval_config(config))

    pusher = tfx.components.Pusher(
        model=trainer_component.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=config.serving_dir)))

    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=[example_gen, statistics_gen, schema_gen, example_validator, validation_gate,
                    transform, trainer_component, model_resolver, evaluator, pusher],
        enable_cache=config.enable_cache,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            config.metadata_path),
        beam_pipeline_args=list(config.beam_args))
