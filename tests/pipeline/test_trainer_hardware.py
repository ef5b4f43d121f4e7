"""The Trainer's hardware: its component, and the Vertex AI Training job TFX would submit, checked without the service."""

import json

import pytest

from pipeline import config as config_lib
from pipeline import trainer_hardware

GPU_IMAGE = "europe-west4-docker.pkg.dev/my-project/rqvalue/rqvalue-pipeline-gpu:0.1.0"
JOB = dict(vertex_training=True, project="my-project", region="europe-west4", image=GPU_IMAGE,
           accelerator="NVIDIA_TESLA_T4", accelerator_count=2, machine_type="n1-standard-16")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from pipeline import datasets
    return datasets.prepare("synthetic_ltv", str(tmp_path_factory.mktemp("trainer_hardware") / "data"), rows=300)


def _config(data, pipeline_root="gs://my-bucket/rqvalue", **trainer):
    return config_lib.RunConfig(data=data, trainer=config_lib.TrainerConfig(**trainer),
                                pipeline_root_uri=pipeline_root)


# -- the Trainer component -------------------------------------------------------------------------------

def _trainer(cfg, target="local"):
    from pipeline.pipeline import create_pipeline
    pipeline = create_pipeline(cfg, fingerprint="x", target=target)
    return next(c for c in pipeline.components if c.id == "Trainer")


def test_default_trainer_is_tfx_own_with_the_precision_in_its_custom_config(data):
    from tfx import v1 as tfx
    from tfx.components.trainer import executor

    trainer = _trainer(_config(data, pipeline_root="", precision="mixed_float16"))
    assert type(trainer) is tfx.components.Trainer
    assert trainer.executor_spec.executor_class is executor.GenericExecutor
    custom_config = json.loads(trainer.exec_properties["custom_config"])
    assert custom_config["precision"] == "mixed_float16"
    assert "ai_platform_training_args" not in custom_config
    assert trainer.platform_config is None  # a local run asks for no resources


def test_vertex_training_puts_tfx_cloud_trainer_in_place_with_the_job_spec(data):
    from tfx.extensions.google_cloud_ai_platform.trainer import executor
    from tfx.v1.extensions import google_cloud_ai_platform as cloud

    trainer = _trainer(_config(data, **JOB))
    assert isinstance(trainer, cloud.Trainer)
    assert trainer.executor_spec.executor_class is executor.GenericExecutor
    custom_config = json.loads(trainer.exec_properties["custom_config"])
    assert custom_config[cloud.ENABLE_VERTEX_KEY] is True
    assert custom_config[cloud.VERTEX_REGION_KEY] == "europe-west4"
    job = custom_config[cloud.TRAINING_ARGS_KEY]
    assert job["project"] == "my-project"
    (pool,) = job["job_spec"]["worker_pool_specs"]
    assert pool == {"machine_spec": {"machine_type": "n1-standard-16", "accelerator_type": "NVIDIA_TESLA_T4",
                                     "accelerator_count": 2},
                    "replica_count": 1, "container_spec": {"image_uri": GPU_IMAGE}}
    # The model settings travel beside the job's: run_fn reads them in the job.
    assert custom_config["kind"] == "rqreg" and custom_config["precision"] == "float32"
    assert trainer.exec_properties["run_fn"] == "models.trainer.run_fn"


def test_vertex_training_without_a_gpu_asks_for_the_machine_alone(data):
    from tfx.v1.extensions import google_cloud_ai_platform as cloud

    job = {**JOB, "accelerator": "", "accelerator_count": 1}
    custom_config = json.loads(_trainer(_config(data, **job)).exec_properties["custom_config"])
    (pool,) = custom_config[cloud.TRAINING_ARGS_KEY]["job_spec"]["worker_pool_specs"]
    assert pool["machine_spec"] == {"machine_type": "n1-standard-16"}


@pytest.mark.parametrize("root, trainer, message", [
    ("", JOB, r"trainer.vertex_training: the pipeline root 'runs/pipeline_root' is not a gs://"),
    ("/home/me/runs", JOB, r"trainer.vertex_training: the pipeline root '/home/me/runs'"),
    ("gs://my-bucket/rqvalue", {**JOB, "image": ""}, r"trainer.image: trainer.vertex_training needs the image"),
])
def test_vertex_training_needs_a_gcs_root_and_an_image(data, root, trainer, message):
    with pytest.raises(config_lib.ConfigError, match=message):
        _trainer(_config(data, pipeline_root=root, **trainer))


def test_the_custom_job_tfx_would_submit_is_a_valid_vertex_custom_job(data, tmp_path, monkeypatch):
    """Runs TFX's cloud Trainer executor up to the submission, which is recorded instead of sent."""
    from google.cloud.aiplatform_v1.types import AcceleratorType, CustomJob
    from tfx.extensions.google_cloud_ai_platform import runner, training_clients
    from tfx.extensions.google_cloud_ai_platform.trainer import executor
    from tfx.types import artifact_utils, standard_artifacts

    monkeypatch.setattr(training_clients.VertexJobClient, "create_client", lambda self: None)  # no credentials
    submitted = []
    monkeypatch.setattr(runner, "_launch_cloud_training", lambda **job: submitted.append(job))

    trainer = _trainer(_config(data, **JOB))
    examples = standard_artifacts.Examples()
    examples.uri = "gs://my-bucket/rqvalue/Transform/transformed_examples/7"
    examples.split_names = artifact_utils.encode_split_names(["train", "valid"])
    graph = standard_artifacts.TransformGraph()
    graph.uri = "gs://my-bucket/rqvalue/Transform/transform_graph/7"
    model, model_run = standard_artifacts.Model(), standard_artifacts.ModelRun()
    model.uri, model_run.uri = "gs://my-bucket/rqvalue/Trainer/model/8", "gs://my-bucket/rqvalue/Trainer/model_run/8"
    context = executor.GenericExecutor.Context(tmp_dir=str(tmp_path), unique_id="8")
    executor.GenericExecutor(context).Do({"examples": [examples], "transform_graph": [graph]},
                                         {"model": [model], "model_run": [model_run]},
                                         dict(trainer.exec_properties))

    (call,) = submitted
    assert (call["project"], call["enable_vertex"], call["vertex_region"]) == ("my-project", True, "europe-west4")
    job = CustomJob(call["training_job"])  # the service's own message: unknown fields would raise
    (pool,) = job.job_spec.worker_pool_specs
    assert pool.machine_spec.machine_type == "n1-standard-16"
    assert pool.machine_spec.accelerator_type == AcceleratorType.NVIDIA_TESLA_T4
    assert pool.machine_spec.accelerator_count == 2 and pool.replica_count == 1
    assert pool.container_spec.image_uri == GPU_IMAGE
    command = list(pool.container_spec.command)
    # In the job, TFX's own Trainer executor runs run_fn on the gs:// artifacts.
    assert command[:3] == ["python", "-m", "tfx.scripts.run_executor"]
    assert command[command.index("--executor_class_path") + 1] == "tfx.components.trainer.executor.GenericExecutor"
    assert "gs://my-bucket/rqvalue/Transform/transformed_examples/7" in command[command.index("--inputs") + 1]
    exec_properties = json.loads(command[command.index("--exec-properties") + 1])
    assert exec_properties["run_fn"] == "models.trainer.run_fn"
    assert job.display_name == "rqvalue-trainer"


def test_describe_says_where_a_local_run_trains():
    assert trainer_hardware.describe(config_lib.TrainerConfig()) is None
    assert "mixed_float16" in trainer_hardware.describe(config_lib.TrainerConfig(precision="mixed_float16"))
    assert "applies on Vertex AI" in trainer_hardware.describe(config_lib.TrainerConfig(accelerator="NVIDIA_L4"))
    line = trainer_hardware.describe(config_lib.TrainerConfig(**JOB))
    assert "Vertex AI Training job in my-project/europe-west4 on n1-standard-16 (2 x NVIDIA_TESLA_T4)" in line
