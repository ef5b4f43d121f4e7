"""`create_pipeline(config, fingerprint, span)`: the TFX pipeline as a pure function of the run config (no I/O).

FeatureStoreExampleGen -> StatisticsGen -> ImportSchemaGen|(SchemaGen -> LabelRules) -> ExampleValidator ->
ValidationGate -> Transform -> Trainer -> (latest blessed other model) -> Evaluator -> Pusher.

With distillation (config `distillation.enabled`), ingestion also reads the privileged features
of the train and valid rows from after their prediction time, PrivilegedSchema marks them
training-only (not in SERVING) before ExampleValidator, Transform scales them, and two Trainers
run: the teacher (serving + privileged features) and the student (serving features, aligned to
the frozen teacher; `models/distillation.py`). The student is the Trainer the Evaluator and
Pusher see; neither Trainer warm-starts.

An inferred schema gets the label's rules (present, float, not negative, no NaN) from LabelRules
before anything reads it; FeatureStoreExampleGen checks the labels of the spine in any case.

With spans (data.span_days > 0) the run ingests one span and validates it; three resolvers then
give Transform the rolling window of the latest data.window_spans spans and the analyzer cache of
the spans seen before, and the Trainer the previous blessed model to warm-start from
(components/span_resolvers.py). Transform, Trainer and Evaluator work on the window.

The Trainer is TFX's own, or with trainer.vertex_training TFX's Google Cloud Trainer, which runs
the same `run_fn` in a Vertex AI Training job; for Vertex AI Pipelines the Trainer task (and the
components named in trainer.components) also carries the accelerator and CPU/memory limits
(`pipeline.trainer_hardware`).

`target="vertex"` builds the variant that TFX's Kubeflow V2 compiler accepts: it compiles only
TFX's own latest-artifact and latest-blessed-model resolvers, so the baseline is TFX's latest
blessed model and spans are not supported there.
"""

import dataclasses
import json
import os

from tfx import v1 as tfx

from components import span_resolvers
from components.baseline_resolver import baseline_resolver
from components.feature_store_example_gen import FeatureStoreExampleGen, IngestionSpec, input_fingerprint
from components.label_rules import LabelRules
from components.privileged_retrieval import PrivilegedSpec
from components.privileged_schema import PrivilegedSchema
from components.validation_gate import ValidationGate
from models import distillation, preprocessing, trainer
from pipeline import runners, trainer_hardware
from pipeline.config import GCS_PATTERN, ConfigError, RunConfig
from pipeline.evaluation import eval_config

PREPROCESSING_FN = "models.preprocessing.preprocessing_fn"
RUN_FN = "models.trainer.run_fn"
TEACHER_RUN_FN = "models.distillation.teacher_run_fn"
STUDENT_RUN_FN = "models.distillation.student_run_fn"
TEACHER_ID = "TeacherTrainer"
TARGETS = ("local", "vertex")


def create_pipeline(config: RunConfig, fingerprint: str, span: int = 0, target: str = "local") -> tfx.dsl.Pipeline:
    """Builds the pipeline.

    Args:
      config: the run configuration.
      fingerprint: `components.feature_store_example_gen.input_fingerprint` of the data, so a
        change of the spine or the feature data re-runs ingestion while an unchanged one is cached.
      span: the span this run ingests (`feature_store_example_gen.latest_span`); 0 without spans.
      target: "local" (LocalDagRunner, ML Metadata in SQLite) or "vertex" (Kubeflow V2 JSON).
    """
    if target not in TARGETS:
        raise ValueError(f"target: {target!r} is not one of {TARGETS}")
    data, model = config.data, config.model
    if target == "vertex" and data.spans:
        raise ConfigError(f"data.span_days: {data.span_days}: retraining on spans needs this project's rolling-window "
                          "resolvers, which TFX's Kubeflow V2 compiler does not accept; set data.span_days: 0 "
                          "for Vertex (each run then trains on the whole spine)")
    privileged = PrivilegedSpec.from_config(config.distillation) if config.distillation.enabled else None
    example_gen = FeatureStoreExampleGen(
        spec_json=IngestionSpec.from_data_config(data).to_json(), fingerprint=fingerprint, span=span,
        privileged_json=privileged.to_json() if privileged else "")
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    if data.schema:
        schema_nodes = [tfx.components.ImportSchemaGen(schema_file=data.schema)]
    else:
        schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"],
                                              infer_feature_shape=False)
        schema_nodes = [schema_gen, LabelRules(inferred_schema=schema_gen.outputs["schema"], label=data.label)]
    schema = schema_nodes[-1].outputs["schema"]
    if privileged:
        schema_nodes.append(PrivilegedSchema(
            schema=schema, statistics=statistics_gen.outputs["statistics"], label=data.label,
            names_json=json.dumps(list(privileged.names)), training_splits_json=json.dumps(list(privileged.splits))))
        schema = schema_nodes[-1].outputs["privileged_schema"]
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema)
    validation_gate = ValidationGate(anomalies=example_validator.outputs["anomalies"])

    examples = example_gen.outputs["examples"]
    span_nodes, analyzer_cache, base_model = [], None, None
    if data.spans:
        window = span_resolvers.rolling_window_resolver(example_gen, span, data.window_spans)
        cache = span_resolvers.analyzer_cache_resolver(span)
        span_nodes += [window, cache]
        examples, analyzer_cache = window.outputs["examples"], cache.outputs["candidates"]
        if model.warm_start and not privileged:
            warm_start = span_resolvers.warm_start_resolver(span)
            span_nodes.append(warm_start)
            base_model = warm_start.outputs["candidates"]

    transform = tfx.components.Transform(
        examples=examples,
        schema=schema,
        preprocessing_fn=PREPROCESSING_FN,
        custom_config=_transform_config(config, privileged),
        analyzer_cache=analyzer_cache,
        disable_statistics=True)
    transform.add_upstream_node(validation_gate)

    trainer_nodes = _trainers(config, privileged, transform, schema, base_model)
    trainer_component = trainer_nodes[-1]

    if target == "vertex":
        model_resolver = tfx.dsl.Resolver(
            strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
            model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
            model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
        ).with_id("latest_blessed_model_resolver")
    else:
        model_resolver = baseline_resolver(trainer_component.outputs["model"])

    evaluator = tfx.components.Evaluator(
        examples=examples,
        model=trainer_component.outputs["model"],
        baseline_model=model_resolver.outputs["model"],
        example_splits=["eval"],
        eval_config=eval_config(config))

    pusher = tfx.components.Pusher(
        model=trainer_component.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=config.serving_dir)))

    components = [example_gen, statistics_gen, *schema_nodes, example_validator, validation_gate, *span_nodes,
                  transform, *trainer_nodes, model_resolver, evaluator, pusher]
    if target == "vertex":
        trainer_hardware.apply_vertex_resources(components, config.trainer)
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=components,
        enable_cache=config.enable_cache,
        metadata_connection_config=(None if target == "vertex" else
                                    tfx.orchestration.metadata.sqlite_metadata_connection_config(
                                        config.metadata_path)),
        beam_pipeline_args=list(runners.component_beam_args(config.beam_args)))


def _transform_config(config: RunConfig, privileged) -> dict:
    """Transform's custom_config; the privileged features, if any, are scaled like the numeric ones."""
    transform_config = preprocessing.transform_config(config.data, config.model)
    if privileged:
        transform_config["numeric_features"] += list(privileged.names)
    return transform_config


def _trainers(config: RunConfig, privileged, transform, schema, base_model) -> list:
    """[Trainer], or with distillation [teacher Trainer, student Trainer]; the last one is the served model.

    The student reads the teacher's model as its `base_model` (models/distillation.py), so the
    teacher is trained, cached and recorded like any other component.
    """
    data, model = config.data, config.model
    common = dict(
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema,
        train_args=tfx.proto.TrainArgs(splits=["train"], num_steps=model.train_steps),
        eval_args=tfx.proto.EvalArgs(splits=["valid"], num_steps=model.eval_steps or None))
    trainer_config = trainer.trainer_config(data, model)
    if not privileged:
        return [trainer_hardware.trainer_component(config, run_fn=RUN_FN, base_model=base_model,
                                                   custom_config=trainer_config, **common)]
    settings = config.distillation
    teacher = trainer_hardware.trainer_component(
        config, run_fn=TEACHER_RUN_FN, custom_config=distillation.teacher_config(trainer_config, privileged.names),
        **common).with_id(TEACHER_ID)
    student = trainer_hardware.trainer_component(
        config, run_fn=STUDENT_RUN_FN, base_model=teacher.outputs["model"],
        custom_config=distillation.student_config(
            trainer_config, alignment_weight=settings.alignment_weight, code_kl_weight=settings.code_kl_weight,
            kl_temperature=settings.kl_temperature),
        **common)
    return [teacher, student]


def compile_vertex(cfg, output_path: str, image: str) -> str:
    """Compiles the pipeline to a Vertex AI Pipelines (KFP v2) job spec with KubeflowV2DagRunner.

    Args:
      cfg: the RunConfig; its pipeline root must be a gs:// path (the serving folder defaults to
        <pipeline root>/serving), and `beam_args` choose where the Beam components run (Dataflow
        args, or direct inside the component's container). The data paths (Feast repo, spine,
        schema) are written into the spec as they are: they must be readable inside the image.
      output_path: the JSON file to write.
      image: the pipeline image (docker/Dockerfile) every component container runs, but for the
        Trainer task when cfg.trainer.image names another (e.g. the GPU image). The Trainer task
        gets cfg.trainer's accelerator and CPU/memory limits (`pipeline.trainer_hardware`).

    Returns:
      output_path.

    Raises:
      RuntimeError: the `kfp` package is missing; the message says how to install it.
      RunnerError: the pipeline root is not on GCS.
    """
    try:
        import kfp  # noqa: F401  # TFX's [kfp] extra (kfp 2.5 with urllib3 < 2, in requirements.lock)
        from tfx.orchestration.kubeflow.v2.kubeflow_v2_dag_runner import KubeflowV2DagRunner, KubeflowV2DagRunnerConfig
    except ImportError as e:
        raise RuntimeError(
            f"compiling for Vertex AI Pipelines needs the kfp package, which is not installed ({e}). "
            "It is pinned in requirements.lock (`make run` installs it); into another environment "
            f"install it with: {runners.KFP_INSTALL} (the versions that co-resolve with TFX 1.16), then run `pip check`.") from None
    if not GCS_PATTERN.match(cfg.pipeline_root_uri or ""):
        raise runners.RunnerError(f"--pipeline-root: {cfg.pipeline_root_uri or cfg.pipeline_root!r} is not a gs://bucket/path; "
                          "on Vertex AI Pipelines every component reads and writes its artifacts there")
    if not cfg.serving_uri:
        cfg = dataclasses.replace(cfg, serving_uri=cfg.pipeline_root_uri.rstrip("/") + "/serving")
    cfg = trainer_hardware.trainer_image_or(cfg, image)
    pipeline = create_pipeline(cfg, fingerprint=input_fingerprint(IngestionSpec.from_data_config(cfg.data)),
                               target="vertex")
    default_image = trainer_hardware.vertex_images(cfg.trainer, image)
    runner = KubeflowV2DagRunner(config=KubeflowV2DagRunnerConfig(default_image=default_image),
                                 output_dir=os.path.dirname(os.path.abspath(output_path)),
                                 output_filename=os.path.basename(output_path))
    runner.run(pipeline, write_out=True)
    return output_path
