"""Where the Trainer runs and on what hardware: Vertex AI task resources, a Vertex AI Training job.

The `trainer:` section of the run configuration (`pipeline.config.TrainerConfig`, with the
`--trainer-*` flags of `rqvalue.runner_options` over it) decides; the pipeline trains in one of
three places (README, "Train on GPU"):

  - a local run: the Trainer runs in the launching process, with every GPU TensorFlow sees there;
  - Vertex AI Pipelines (`rqvalue compile --target vertex`): `vertex_resources` gives the Trainer
    task, and any other component named in trainer.components, the accelerator and the CPU and
    memory limits, which TFX's Kubeflow V2 compiler writes into the task's container spec; the
    task runs trainer.image (`vertex_images`);
  - a Vertex AI Training job (trainer.vertex_training, from any runner): `trainer_component` puts
    TFX's Google Cloud Trainer in the Trainer's place. Its executor submits a custom job that runs
    TFX's own Trainer executor (so `models.trainer.run_fn`) in trainer.image on trainer.machine_type
    with the GPUs asked for, and waits for it; the job reads its inputs from the pipeline root and
    writes the model there, so the root must be on GCS.
"""

from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from pipeline import config as config_lib

TRAINER_ID = "Trainer"


def vertex_resources(trainer: config_lib.TrainerConfig):
    """The KFP ResourceSpec of a Vertex AI Pipelines task with these settings; None when there is nothing to ask.

    TFX 1.16's Kubeflow V2 compiler copies a component's platform config, when it is this proto,
    into the task's container spec (`resources`): CPU and memory limits and one accelerator type
    with its count. It has no machine type: Vertex picks a machine that satisfies them.
    """
    if not (trainer.accelerator or trainer.cpus or trainer.memory_gb):
        return None
    from kfp.pipeline_spec import pipeline_spec_pb2

    spec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec()
    if trainer.cpus:
        spec.cpu_limit = float(trainer.cpus)
    if trainer.memory_gb:
        spec.memory_limit = float(trainer.memory_gb)
    if trainer.accelerator:
        spec.accelerator.type = trainer.accelerator
        spec.accelerator.count = trainer.accelerator_count
    return spec


def _resourced_ids(trainer: config_lib.TrainerConfig) -> Tuple[str, ...]:
    """The components that take the trainer resources on Vertex AI Pipelines. With a Vertex AI
    Training job the Trainer task only submits the job and waits: the job has the GPUs."""
    return tuple(c for c in trainer.components if not (trainer.vertex_training and c == TRAINER_ID))


def apply_vertex_resources(components: Sequence[Any], trainer: config_lib.TrainerConfig) -> None:
    """Attaches `vertex_resources` to the components named in trainer.components (by id).

    Raises:
      ConfigError: trainer.components names a component the pipeline does not have.
    """
    by_id = {component.id: component for component in components}
    unknown = [name for name in trainer.components if name not in by_id]
    if unknown:
        raise config_lib.ConfigError(f"trainer.components: {unknown} not in this pipeline (its components: "
                                     f"{', '.join(by_id)})")
    spec = vertex_resources(trainer)
    if spec is None:
        return
    for name in _resourced_ids(trainer):
        by_id[name].with_platform_config(spec)


def vertex_images(trainer: config_lib.TrainerConfig, image: str):
    """KubeflowV2DagRunnerConfig's `default_image`: `image` for every task, trainer.image for the
    resourced ones (the Trainer task, unless it only submits a Vertex AI Training job).

    With a map, TFX 1.16 logs "DEFAULT_IMAGE_PATH_KEY is not found in default_image" although
    the key is there (its check is inverted); the map is used as given.
    """
    ids = _resourced_ids(trainer)
    if not trainer.image or trainer.image == image or not ids:
        return image
    from tfx.orchestration.kubeflow.v2.pipeline_builder import DEFAULT_IMAGE_PATH_KEY

    return {DEFAULT_IMAGE_PATH_KEY: image, **{name: trainer.image for name in ids}}


def vertex_training_config(cfg: config_lib.RunConfig) -> Dict[str, Any]:
    """The `custom_config` entries that make TFX's Google Cloud Trainer submit a Vertex AI Training job.

    One worker pool of one replica: trainer.machine_type with trainer.accelerator_count GPUs of
    trainer.accelerator, running trainer.image (TFX sets the container's command to its executor
    runner). The job runs in trainer.project, trainer.region.

    Raises:
      ConfigError: no image, or a pipeline root the job cannot reach.
    """
    from tfx.v1.extensions import google_cloud_ai_platform as cloud

    trainer = cfg.trainer
    if not trainer.image:
        raise config_lib.ConfigError("trainer.image: trainer.vertex_training needs the image the training job runs "
                                     "(the pipeline image, or the GPU image docker/gpu.Dockerfile, pushed to a "
                                     "registry)")
    if not config_lib.GCS_PATTERN.match(cfg.pipeline_root):
        raise config_lib.ConfigError(f"trainer.vertex_training: the pipeline root {cfg.pipeline_root!r} is not a "
                                     "gs://bucket/path; the training job reads the Trainer's inputs and writes the "
                                     "model there (set --pipeline-root)")
    machine: Dict[str, Any] = {"machine_type": trainer.machine_type}
    if trainer.accelerator:
        machine.update(accelerator_type=trainer.accelerator, accelerator_count=trainer.accelerator_count)
    return {
        cloud.ENABLE_VERTEX_KEY: True,
        cloud.VERTEX_REGION_KEY: trainer.region,
        cloud.TRAINING_ARGS_KEY: {
            "project": trainer.project,
            "display_name": f"{cfg.pipeline_name}-trainer",
            "job_spec": {"worker_pool_specs": [{
                "machine_spec": machine,
                "replica_count": 1,
                "container_spec": {"image_uri": trainer.image},
            }]},
        },
    }


def trainer_component(cfg: config_lib.RunConfig, custom_config: Mapping[str, Any], **trainer_args):
    """The pipeline's Trainer: TFX's own, or with trainer.vertex_training TFX's Google Cloud Trainer
    (same inputs and `run_fn`; it runs them in a Vertex AI Training job). Its `custom_config` is
    `custom_config` plus the training precision (and the job's settings).
    """
    from tfx import v1 as tfx

    custom_config = {**custom_config, "precision": cfg.trainer.precision}
    if not cfg.trainer.vertex_training:
        return tfx.components.Trainer(custom_config=custom_config, **trainer_args)
    from tfx.v1.extensions import google_cloud_ai_platform as cloud

    return cloud.Trainer(custom_config={**custom_config, **vertex_training_config(cfg)}, **trainer_args)


def trainer_image_or(cfg: config_lib.RunConfig, image: str) -> config_lib.RunConfig:
    """`cfg` with trainer.image defaulting to `image` (the pipeline image of a Vertex compile)."""
    return cfg if cfg.trainer.image else config_lib.replace(cfg, trainer={"image": image})


def describe(trainer: config_lib.TrainerConfig) -> Optional[str]:
    """Where a local run trains, as one progress line; None for the plain default (this process, float32)."""
    precision = f", {trainer.precision}" if trainer.precision != "float32" else ""
    if trainer.vertex_training:
        gpus = f"{trainer.accelerator_count} x {trainer.accelerator}" if trainer.accelerator else "no GPU"
        return (f"Trainer: a Vertex AI Training job in {trainer.project}/{trainer.region} on {trainer.machine_type} "
                f"({gpus}{precision})")
    if trainer.accelerator:
        return (f"Trainer: in this process, on the GPUs TensorFlow sees here{precision} "
                "(trainer.accelerator applies on Vertex AI)")
    return f"Trainer: in this process{precision}" if precision else None
