"""Beam runner arguments: complete per runner, errors that name the flag, and a Dataflow compile."""

import argparse
import sys

import pytest

from pipeline import pipeline as pipeline_lib
from pipeline import runners
from rqvalue import runner_options

IMAGE = "europe-docker.pkg.dev/my-project/rqvalue/rqvalue-pipeline:0.1.0"
DATAFLOW = dict(project="my-project", region="europe-west1", temp_location="gs://my-bucket/tmp")


def _parse(argv):
    parser = argparse.ArgumentParser()
    runner_options.add_runner_arguments(parser)
    return parser.parse_args(argv)


# -- direct ----------------------------------------------------------------------------------------------

def test_direct_default_is_in_memory_with_one_worker():
    assert runners.beam_args() == ("--direct_running_mode=in_memory", "--direct_num_workers=1")
    assert runners.beam_args("direct") == runners.DIRECT_IN_MEMORY


@pytest.mark.parametrize("workers", [0, 1, 8])
def test_direct_workers_use_the_multi_processing_runner(workers):
    assert runners.beam_args("direct", direct_workers=workers) == (
        "--direct_running_mode=multi_processing", f"--direct_num_workers={workers}")


def test_the_in_memory_direct_runner_hands_components_no_arguments_so_tfx_packages_nothing(monkeypatch):
    from tfx.components.statistics_gen import executor
    from tfx.utils import dependency_utils

    def refuse():
        raise AssertionError("TFX built its ephemeral sdist for a local DirectRunner")

    monkeypatch.setattr(dependency_utils, "build_ephemeral_package", refuse)
    assert runners.component_beam_args(runners.beam_args()) == ()
    executor.Executor(executor.Executor.Context(beam_pipeline_args=list(runners.component_beam_args(
        runners.beam_args())), tmp_dir="unused", unique_id="1"))
    # Any other choice reaches the components as it is (and ships code as TFX decides).
    workers = runners.beam_args("direct", direct_workers=2)
    assert runners.component_beam_args(workers) == workers
    with pytest.raises(AssertionError, match="ephemeral"):
        executor.Executor(executor.Executor.Context(beam_pipeline_args=list(workers), tmp_dir="unused",
                                                    unique_id="1"))


@pytest.mark.parametrize("workers", [-1, 1.5, True])
def test_direct_workers_must_be_a_count(workers):
    with pytest.raises(runners.RunnerError, match="--direct-workers"):
        runners.beam_args("direct", direct_workers=workers)


def test_dataflow_options_are_refused_for_the_direct_runner():
    with pytest.raises(runners.RunnerError, match=r"--temp-location \(--temp_location\): applies only to --runner dataflow"):
        runners.beam_args("direct", temp_location="gs://b/tmp")
    with pytest.raises(runners.RunnerError, match="--direct-workers"):
        runners.beam_args("dataflow", direct_workers=2, sdk_container_image=IMAGE, **DATAFLOW)


def test_unknown_runner_is_refused():
    with pytest.raises(runners.RunnerError, match="--runner: 'flink'"):
        runners.beam_args("flink")


# -- dataflow --------------------------------------------------------------------------------------------

def test_dataflow_with_the_pipeline_image():
    assert runners.beam_args("dataflow", sdk_container_image=IMAGE, **DATAFLOW) == (
        "--runner=DataflowRunner",
        "--project=my-project",
        "--region=europe-west1",
        "--temp_location=gs://my-bucket/tmp",
        "--experiments=use_runner_v2",
        f"--sdk_container_image={IMAGE}",
        "--machine_type=e2-standard-4",
        "--disk_size_gb=50",
    )


def test_dataflow_with_a_wheel_or_setup_file_uses_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "rqvalue-0.1.0-py3-none-any.whl").write_bytes(b"")
    (tmp_path / "setup.py").write_text("import setuptools\nsetuptools.setup()\n")
    args = runners.beam_args("dataflow", extra_package="dist/rqvalue-0.1.0-py3-none-any.whl", **DATAFLOW)
    assert f"--extra_package={tmp_path}/dist/rqvalue-0.1.0-py3-none-any.whl" in args
    assert not any(a.startswith("--sdk_container_image") for a in args)
    args = runners.beam_args("dataflow", setup_file="setup.py", **DATAFLOW)
    assert f"--setup_file={tmp_path}/setup.py" in args
    assert not any("save_main_session" in a for a in args)


def test_extra_args_come_last_so_they_override():
    args = runners.beam_args("dataflow", sdk_container_image=IMAGE, extra_args=["--machine_type=n2-highmem-8"],
                             **DATAFLOW)
    assert args[-1] == "--machine_type=n2-highmem-8"
    assert runners.beam_args(extra_args=["--x=1"])[-1] == "--x=1"
    with pytest.raises(runners.RunnerError, match="--beam-arg"):
        runners.beam_args(extra_args=["machine_type=x"])


@pytest.mark.parametrize("missing, flag", [
    ("project", "--project"),
    ("region", "--region"),
    ("temp_location", r"--temp-location \(--temp_location\)"),
])
def test_dataflow_names_a_missing_flag(missing, flag):
    options = {**DATAFLOW, missing: None}
    with pytest.raises(runners.RunnerError, match=f"{flag}: required for --runner dataflow"):
        runners.beam_args("dataflow", sdk_container_image=IMAGE, **options)


@pytest.mark.parametrize("option, value, flag", [
    ("temp_location", "/tmp/local", "--temp-location"),
    ("temp_location", "s3://bucket/tmp", "--temp-location"),
    ("temp_location", "gs://", "--temp-location"),
    ("project", "My Project", "--project"),
    ("region", "europe", "--region"),
    ("sdk_container_image", "has space:1", "--sdk-container-image"),
])
def test_dataflow_names_a_malformed_flag(option, value, flag):
    options = {**DATAFLOW, "sdk_container_image": IMAGE, option: value}
    with pytest.raises(runners.RunnerError, match=f"{flag}.*{value!r}".replace("(", r"\(")):
        runners.beam_args("dataflow", **options)


def test_dataflow_needs_exactly_one_way_to_ship_the_project(tmp_path):
    with pytest.raises(runners.RunnerError, match="--sdk-container-image.*exactly one.*got none"):
        runners.beam_args("dataflow", **DATAFLOW)
    wheel = tmp_path / "rqvalue-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    with pytest.raises(runners.RunnerError, match="exactly one"):
        runners.beam_args("dataflow", sdk_container_image=IMAGE, extra_package=str(wheel), **DATAFLOW)
    with pytest.raises(runners.RunnerError, match="--extra-package.*does not exist"):
        runners.beam_args("dataflow", extra_package=str(tmp_path / "missing.whl"), **DATAFLOW)
    with pytest.raises(runners.RunnerError, match="--setup-file.*named setup.py"):
        runners.beam_args("dataflow", setup_file=str(wheel), **DATAFLOW)


# -- argparse --------------------------------------------------------------------------------------------

def test_parser_defaults_give_the_direct_runner():
    assert runner_options.beam_args_from(_parse([])) == runners.DIRECT_IN_MEMORY
    assert runner_options.runner_argv(_parse([])) == ()


def test_parser_round_trip_for_dataflow():
    argv = ["--runner", "dataflow", "--project", "my-project", "--region", "europe-west1",
            "--temp-location", "gs://my-bucket/tmp", "--sdk-container-image", IMAGE,
            "--machine-type", "n2-standard-8", "--pipeline-root", "gs://my-bucket/root",
            "--beam-arg=--max_num_workers=10"]
    args = _parse(argv)
    expected = runners.beam_args("dataflow", sdk_container_image=IMAGE, machine_type="n2-standard-8",
                                 extra_args=["--max_num_workers=10"], **DATAFLOW)
    assert runner_options.beam_args_from(args) == expected
    assert args.pipeline_root == "gs://my-bucket/root"
    assert "--pipeline-root" not in runner_options.runner_argv(args)  # a RunConfig setting, not a Beam argument
    assert runner_options.beam_args_from(_parse(list(runner_options.runner_argv(args)))) == expected


def test_dataflow_needs_a_gcs_pipeline_root():
    args = runners.beam_args("dataflow", sdk_container_image=IMAGE, **DATAFLOW)
    assert runners.check_pipeline_root(args, "gs://my-bucket/rqvalue/pipeline_root") == \
        "gs://my-bucket/rqvalue/pipeline_root"
    with pytest.raises(runners.RunnerError, match="--pipeline-root: '/home/me/runs/pipeline_root'"):
        runners.check_pipeline_root(args, "/home/me/runs/pipeline_root")
    assert runners.check_pipeline_root(runners.beam_args(), "runs/pipeline_root") == "runs/pipeline_root"


def test_parser_errors_name_the_flag():
    with pytest.raises(runners.RunnerError, match="--temp-location"):
        runner_options.beam_args_from(_parse(["--runner", "dataflow", "--project", "my-project", "--region", "us-central1",
                                       "--temp-location", "bucket/tmp", "--sdk-container-image", IMAGE]))


# -- the pipeline, compiled for Dataflow -----------------------------------------------------------------

BEAM_COMPONENTS = {"StatisticsGen", "Transform", "Evaluator"}


@pytest.fixture(scope="module")
def dataflow_ir(tmp_path_factory):
    """The pipeline compiled to TFX IR with the Dataflow args: (beam args, node id -> executable spec)."""
    from tfx.dsl.compiler import compiler
    from tfx.proto.orchestration import executable_spec_pb2, pipeline_pb2

    from pipeline import config as config_lib
    from pipeline import datasets
    from pipeline.pipeline import create_pipeline

    root = tmp_path_factory.mktemp("dataflow_compile")
    data = datasets.prepare("synthetic_ltv", str(root / "data"), rows=300)
    args = runners.beam_args("dataflow", sdk_container_image=IMAGE, **DATAFLOW)
    cfg = config_lib.RunConfig(data=data, output_dir=str(root / "out"), beam_args=args)
    ir = compiler.Compiler().compile(create_pipeline(cfg, fingerprint="x"))
    deployment = pipeline_pb2.IntermediateDeploymentConfig()
    assert ir.deployment_config.Unpack(deployment)
    specs = {}
    for node_id, packed in deployment.executor_specs.items():
        for kind in (executable_spec_pb2.BeamExecutableSpec, executable_spec_pb2.PythonClassExecutableSpec):
            spec = kind()
            if packed.Unpack(spec):
                specs[node_id] = spec
    return args, specs


def test_every_beam_component_carries_the_dataflow_args(dataflow_ir):
    args, specs = dataflow_ir
    beam = {node for node, spec in specs.items() if hasattr(spec, "beam_pipeline_args")}
    # ExampleValidator 1.16 compares statistics with the schema in-process (a plain executor); the
    # ingestion, the gate, Trainer and Pusher are Python executors too.
    assert beam == BEAM_COMPONENTS
    for node in sorted(beam):
        assert tuple(specs[node].beam_pipeline_args) == args, node
    assert {"FeatureStoreExampleGen", "ExampleValidator", "Trainer", "Pusher"} <= set(specs) - beam


def test_statistics_gen_translates_to_a_dataflow_job_without_submitting(dataflow_ir, tmp_path, monkeypatch):
    """Runs StatisticsGen's executor with the compiled args plus Beam's --dry_run=True (no cloud account)."""
    import tensorflow as tf
    from apache_beam.internal.gcp import auth
    from apache_beam.options import pipeline_options
    from apache_beam.runners.dataflow import dataflow_runner
    from tfx.components.statistics_gen import executor
    from tfx.types import artifact_utils, standard_artifacts

    # No credentials and no network: skip the credential lookup and the bucket's soft-delete check.
    monkeypatch.setattr(auth._Credentials, "_get_service_credentials", staticmethod(lambda options: None))
    monkeypatch.setattr(pipeline_options.GoogleCloudOptions, "_warn_if_soft_delete_policy_enabled",
                        lambda self, name: None)
    submitted = []
    run_pipeline = dataflow_runner.DataflowRunner.run_pipeline

    def record(self, *args, **kwargs):
        result = run_pipeline(self, *args, **kwargs)
        submitted.append((self, result))
        return result

    monkeypatch.setattr(dataflow_runner.DataflowRunner, "run_pipeline", record)

    (tmp_path / "examples" / "Split-train").mkdir(parents=True)
    with tf.io.TFRecordWriter(str(tmp_path / "examples" / "Split-train" / "data.gz"), options="GZIP") as writer:
        example = tf.train.Example()
        example.features.feature["x"].float_list.value.append(1.0)
        writer.write(example.SerializeToString())
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = artifact_utils.encode_split_names(["train"])
    statistics = standard_artifacts.ExampleStatistics()
    statistics.uri = str(tmp_path / "statistics")

    args, specs = dataflow_ir
    beam_args = list(specs["StatisticsGen"].beam_pipeline_args) + ["--dry_run=True"]
    context = executor.Executor.Context(beam_pipeline_args=beam_args, tmp_dir=str(tmp_path / "tmp"), unique_id="1")
    executor.Executor(context).Do({"examples": [examples]}, {"statistics": [statistics]}, {})

    assert len(submitted) == 1
    runner, result = submitted[0]
    assert result.state == "DONE"
    images = {env.payload for env in runner.proto_pipeline.components.environments.values()}
    assert any(IMAGE.encode() in payload for payload in images)
    options = runner.job.options
    assert "use_runner_v2" in options.view_as(pipeline_options.DebugOptions).experiments
    assert options.view_as(pipeline_options.WorkerOptions).machine_type == "e2-standard-4"
    assert options.view_as(pipeline_options.GoogleCloudOptions).temp_location.startswith("gs://my-bucket/tmp/")


# -- Vertex ----------------------------------------------------------------------------------------------

def test_compile_vertex_without_kfp_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "kfp", None)  # importing kfp now fails, installed or not
    with pytest.raises(RuntimeError, match='kfp.*pip install "kfp==2.5.0" "urllib3<2"'):
        pipeline_lib.compile_vertex(cfg=None, output_path=str(tmp_path / "pipeline.json"), image=IMAGE)


VERTEX_TASKS = {"FeatureStoreExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "ValidationGate",
                "Transform", "Trainer", "Evaluator", "Pusher"}


@pytest.fixture(scope="module")
def vertex_data(tmp_path_factory):
    from pipeline import datasets
    return datasets.prepare("synthetic_ltv", str(tmp_path_factory.mktemp("vertex") / "data"), rows=300)


def test_compile_vertex_writes_a_job_spec_naming_every_component(tmp_path):
    import json

    from rqvalue import cli

    output = tmp_path / "pipeline.json"
    assert cli.main(["compile", "--target", "vertex", "--dataset", "synthetic_ltv", "--rows", "300",
                     "--output-dir", str(tmp_path / "out"), "--output", str(output), "--image", IMAGE,
                     "--pipeline-root", "gs://my-bucket/rqvalue"]) == 0
    job = json.loads(output.read_text())
    tasks = set(job["pipelineSpec"]["root"]["dag"]["tasks"])
    assert VERTEX_TASKS <= tasks
    assert any(task.startswith("latest_blessed_model_resolver") for task in tasks)
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://my-bucket/rqvalue"
    images = {executor["container"]["image"] for executor in job["pipelineSpec"]["deploymentSpec"]["executors"].values()
              if "container" in executor}
    assert images == {IMAGE}
    assert "gs://my-bucket/rqvalue/serving" in output.read_text()  # the Pusher's destination


def test_compile_vertex_needs_a_gcs_pipeline_root(vertex_data, tmp_path):
    from pipeline import config as config_lib

    cfg = config_lib.RunConfig(data=vertex_data, output_dir=str(tmp_path))
    with pytest.raises(runners.RunnerError, match="--pipeline-root"):
        pipeline_lib.compile_vertex(cfg, str(tmp_path / "pipeline.json"), IMAGE)


def test_compile_vertex_refuses_spans_and_says_why(vertex_data, tmp_path):
    import dataclasses

    from pipeline import config as config_lib

    cfg = config_lib.RunConfig(data=dataclasses.replace(vertex_data, span_days=7), output_dir=str(tmp_path),
                               pipeline_root_uri="gs://my-bucket/rqvalue")
    with pytest.raises(config_lib.ConfigError, match="data.span_days.*Vertex"):
        pipeline_lib.compile_vertex(cfg, str(tmp_path / "pipeline.json"), IMAGE)


# -- Vertex: the Trainer's hardware ----------------------------------------------------------------------

GPU_IMAGE = "europe-docker.pkg.dev/my-project/rqvalue/rqvalue-pipeline-gpu:0.1.0"
T4 = dict(accelerator="NVIDIA_TESLA_T4", accelerator_count=2, cpus=8, memory_gb=30)


def _compiled(vertex_data, tmp_path, name, **trainer):
    """The job spec of the pipeline compiled with these trainer settings: (executors, tasks, components)."""
    import json

    from pipeline import config as config_lib

    cfg = config_lib.RunConfig(data=vertex_data, output_dir=str(tmp_path), pipeline_root_uri="gs://my-bucket/rqvalue",
                               trainer=config_lib.TrainerConfig(**trainer))
    spec = json.loads(open(pipeline_lib.compile_vertex(cfg, str(tmp_path / f"{name}.json"), IMAGE)).read())["pipelineSpec"]
    return spec["deploymentSpec"]["executors"], spec["root"]["dag"]["tasks"], spec["components"]


@pytest.fixture(scope="module")
def plain_vertex_spec(vertex_data, tmp_path_factory):
    return _compiled(vertex_data, tmp_path_factory.mktemp("plain"), "plain")


def _unchanged_but(plain, other, changed):
    """Every executor, task and component of `other` equals `plain`'s, except those named in `changed`."""
    for part_plain, part_other in zip(plain, other):
        assert set(part_plain) == set(part_other)
        for key in part_plain:
            if not any(key.startswith(name) for name in changed):
                assert part_other[key] == part_plain[key], key


def test_compile_vertex_gives_the_trainer_task_its_gpus_and_leaves_every_other_task_unchanged(
        vertex_data, plain_vertex_spec, tmp_path):
    executors, tasks, components = _compiled(vertex_data, tmp_path, "t4", image=GPU_IMAGE, **T4)
    trainer = executors["Trainer_executor"]["container"]
    assert trainer["resources"] == {"accelerator": {"type": "NVIDIA_TESLA_T4", "count": "2"},
                                    "cpuLimit": 8.0, "memoryLimit": 30.0}
    assert trainer["image"] == GPU_IMAGE
    assert "resources" not in plain_vertex_spec[0]["Trainer_executor"]["container"]
    others = {name: e["container"] for name, e in executors.items() if name != "Trainer_executor" and "container" in e}
    assert others and all("resources" not in c and c["image"] == IMAGE for c in others.values())
    _unchanged_but(plain_vertex_spec, (executors, tasks, components), changed=("Trainer",))
    # Apart from its resources and image, the Trainer task is the plain one.
    del trainer["resources"]
    trainer["image"] = IMAGE
    assert executors["Trainer_executor"] == plain_vertex_spec[0]["Trainer_executor"]


def test_compile_vertex_gives_the_resources_to_further_components_when_asked(vertex_data, plain_vertex_spec, tmp_path):
    executors, tasks, components = _compiled(vertex_data, tmp_path, "eval", components=("Trainer", "Evaluator"),
                                             accelerator="NVIDIA_L4")
    for name in ("Trainer_executor", "Evaluator_executor"):
        assert executors[name]["container"]["resources"] == {"accelerator": {"type": "NVIDIA_L4", "count": "1"}}
    _unchanged_but(plain_vertex_spec, (executors, tasks, components), changed=("Trainer", "Evaluator"))


def test_compile_vertex_with_a_vertex_training_job_keeps_the_gpus_off_the_launching_task(
        vertex_data, plain_vertex_spec, tmp_path):
    import json

    executors, tasks, components = _compiled(vertex_data, tmp_path, "job", image=GPU_IMAGE, vertex_training=True,
                                             project="my-project", region="europe-west4", **T4)
    trainer = executors["Trainer_executor"]["container"]
    assert "resources" not in trainer and trainer["image"] == IMAGE  # it only submits the job and waits
    assert trainer["args"][1] == "tfx.extensions.google_cloud_ai_platform.trainer.executor.GenericExecutor"
    custom_config = json.loads(tasks["Trainer"]["inputs"]["parameters"]["custom_config"]["runtimeValue"]
                               ["constantValue"]["stringValue"])
    (pool,) = custom_config["ai_platform_training_args"]["job_spec"]["worker_pool_specs"]
    assert pool["machine_spec"] == {"machine_type": "n1-standard-8", "accelerator_type": "NVIDIA_TESLA_T4",
                                    "accelerator_count": 2}
    assert pool["container_spec"] == {"image_uri": GPU_IMAGE}
    _unchanged_but(plain_vertex_spec, (executors, tasks, components), changed=("Trainer",))


def test_compile_vertex_names_an_unknown_component_for_the_resources(vertex_data, tmp_path):
    from pipeline import config as config_lib

    with pytest.raises(config_lib.ConfigError, match=r"trainer.components: \['Tuner'\] not in this pipeline"):
        _compiled(vertex_data, tmp_path, "tuner", components=("Trainer", "Tuner"), accelerator="NVIDIA_L4")
