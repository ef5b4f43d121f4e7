"""The `--trainer-*` options of `rqvalue run` and `compile`: one per field of the trainer section, over it."""

import argparse

import pytest

from pipeline import config as config_lib
from rqvalue import runner_options

GPU_IMAGE = "europe-west4-docker.pkg.dev/my-project/rqvalue/rqvalue-pipeline-gpu:0.1.0"


def _parse(argv):
    parser = argparse.ArgumentParser()
    runner_options.add_trainer_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from pipeline import datasets
    return datasets.prepare("synthetic_ltv", str(tmp_path_factory.mktemp("trainer_options") / "data"), rows=300)


def _config(data, **trainer):
    return config_lib.RunConfig(data=data, trainer=config_lib.TrainerConfig(**trainer))


def test_every_trainer_field_has_a_flag_and_no_flag_changes_nothing(data):
    args = _parse([])
    assert runner_options.trainer_overrides(args) == {}
    cfg = _config(data)
    assert runner_options.apply_trainer_arguments(cfg, args) is cfg
    help_text = argparse.ArgumentParser()
    runner_options.add_trainer_arguments(help_text)
    flags = {option for action in help_text._actions for option in action.option_strings}
    for field in config_lib.TrainerConfig.__dataclass_fields__:
        assert "--trainer-" + field.replace("_", "-") in flags


def test_flags_become_the_trainer_section(data):
    args = _parse(["--trainer-accelerator", "NVIDIA_L4", "--trainer-accelerator-count", "2", "--trainer-cpus", "16",
                   "--trainer-memory-gb", "64", "--trainer-components", "Trainer, Evaluator",
                   "--trainer-precision", "mixed_float16", "--trainer-vertex-training", "--trainer-project",
                   "my-project", "--trainer-region", "europe-west4", "--trainer-machine-type", "g2-standard-24",
                   "--trainer-image", GPU_IMAGE])
    trainer = runner_options.apply_trainer_arguments(_config(data), args).trainer
    assert trainer == config_lib.TrainerConfig(
        accelerator="NVIDIA_L4", accelerator_count=2, machine_type="g2-standard-24", cpus=16.0, memory_gb=64.0,
        components=("Trainer", "Evaluator"), precision="mixed_float16", vertex_training=True,
        project="my-project", region="europe-west4", image=GPU_IMAGE)


def test_a_flag_overrides_one_field_of_the_yaml_section_and_keeps_the_others(data):
    cfg = config_lib.replace(_config(data), trainer={"accelerator": "NVIDIA_TESLA_T4", "cpus": 4})
    trainer = runner_options.apply_trainer_arguments(cfg, _parse(["--trainer-accelerator-count", "4"])).trainer
    assert (trainer.accelerator, trainer.accelerator_count, trainer.cpus) == ("NVIDIA_TESLA_T4", 4, 4)


def test_a_bad_flag_value_names_the_field(data):
    with pytest.raises(config_lib.ConfigError, match="trainer.accelerator: 'T4'"):
        runner_options.apply_trainer_arguments(_config(data), _parse(["--trainer-accelerator", "T4"]))
    with pytest.raises(SystemExit):  # argparse: not a number
        _parse(["--trainer-accelerator-count", "two"])


@pytest.mark.parametrize("command", [["run"], ["compile", "--image", "rqvalue-pipeline:0.1.0"]])
def test_run_and_compile_take_the_trainer_flags_over_the_run_config(command, tmp_path):
    from rqvalue import cli, run

    args = cli.parser().parse_args([*command, "--dataset", "synthetic_ltv", "--rows", "300", "--output-dir",
                                    str(tmp_path), "--trainer-accelerator", "NVIDIA_TESLA_T4",
                                    "--trainer-precision", "mixed_float16"])
    trainer = run.run_config(args).trainer
    assert (trainer.accelerator, trainer.precision) == ("NVIDIA_TESLA_T4", "mixed_float16")
    assert trainer.components == ("Trainer",)  # the rest as the section's defaults
