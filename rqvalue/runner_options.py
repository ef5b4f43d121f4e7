"""The Beam runner options of `rqvalue run`, `compile` and `schedule`, and their translation into
`beam_pipeline_args` (`pipeline.runners.beam_args`); the `--trainer-*` options of `run` and
`compile` over the config's trainer section (`pipeline.trainer_hardware`)."""

import argparse
import dataclasses
from typing import Any, Dict, Tuple

from pipeline import config as config_lib
from pipeline.runners import DATAFLOW_MACHINE_TYPE, RUNNERS, beam_args


def add_runner_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the runner options (`--runner`, `--direct-workers`, Dataflow's options) to a parser."""
    group = parser.add_argument_group("Beam runner (where StatisticsGen, Transform and Evaluator run)")
    group.add_argument("--runner", choices=RUNNERS, default="direct",
                       help="direct: this machine (default); dataflow: Google Cloud Dataflow")
    group.add_argument("--direct-workers", type=int, metavar="N",
                       help="direct: N worker processes (0 = one per CPU); default: in memory, one worker")
    group.add_argument("--project", help="dataflow: Google Cloud project id")
    group.add_argument("--region", help="dataflow: region, e.g. europe-west1")
    group.add_argument("--temp-location", metavar="GS_PATH", help="dataflow: gs:// path for temporary files")
    group.add_argument("--sdk-container-image", metavar="IMAGE",
                       help="dataflow: the pipeline image built from docker/Dockerfile (recommended)")
    group.add_argument("--extra-package", metavar="WHEEL",
                       help="dataflow, without an image: the project's wheel (pip wheel --no-deps -w dist .)")
    group.add_argument("--machine-type", default=DATAFLOW_MACHINE_TYPE,
                       help=f"dataflow: worker machine type (default: {DATAFLOW_MACHINE_TYPE})")
    group.add_argument("--pipeline-root", metavar="GS_PATH",
                       help="dataflow: gs:// folder for the pipeline's artifacts, which Dataflow workers read and "
                            "write (default: <output-dir>/pipeline_root; ML Metadata and serving/ stay local)")
    group.add_argument("--beam-arg", action="append", default=[], metavar="--NAME=VALUE",
                       help="a further Beam argument, appended last; repeatable")


def beam_args_from(args: argparse.Namespace) -> Tuple[str, ...]:
    """`beam_args` from options parsed with `add_runner_arguments`."""
    return beam_args(args.runner, direct_workers=args.direct_workers, project=args.project,
                     region=args.region, temp_location=args.temp_location,
                     sdk_container_image=args.sdk_container_image, extra_package=args.extra_package,
                     machine_type=args.machine_type, extra_args=tuple(args.beam_arg or ()))


def runner_argv(args: argparse.Namespace) -> Tuple[str, ...]:
    """The Beam runner options of `args` as command-line words again, those that differ from the defaults.

    Empty when none was given, so a caller can keep the beam_args of a YAML config then.
    `--pipeline-root` is not among them (it is a RunConfig setting, not a Beam argument).
    """
    argv = []
    if args.runner != "direct":
        argv += ["--runner", args.runner]
    for option in ("direct_workers", "project", "region", "temp_location", "sdk_container_image", "extra_package"):
        value = getattr(args, option)
        if value is not None:
            argv += [f"--{option.replace('_', '-')}", str(value)]
    if args.machine_type != DATAFLOW_MACHINE_TYPE:
        argv += ["--machine-type", args.machine_type]
    for arg in args.beam_arg or ():
        argv.append(f"--beam-arg={arg}")
    return tuple(argv)


# -- where the Trainer runs and on what hardware: the config's trainer section ----------------------------

_TRAINER_HELP = {
    "accelerator": f"Vertex AI GPU type ({', '.join(config_lib.ACCELERATORS)})",
    "accelerator_count": "GPUs per Trainer machine (default 1)",
    "machine_type": "the Vertex AI Training job's machine (default n1-standard-8; A2 for A100, G2 for L4)",
    "cpus": "Vertex AI Pipelines: CPU limit of the Trainer task",
    "memory_gb": "Vertex AI Pipelines: memory limit of the Trainer task, in GB",
    "components": "Vertex AI Pipelines: comma-separated components given these resources (default: Trainer)",
    "precision": "float32 (default) or mixed_float16; the exported model is float32 either way",
    "vertex_training": "run the Trainer as a Vertex AI Training custom job (needs a gs:// --pipeline-root)",
    "project": "the Vertex AI Training job's Google Cloud project",
    "region": "the Vertex AI Training job's region, e.g. europe-west4",
    "image": "the Trainer's image (e.g. the GPU image, docker/gpu.Dockerfile); default: the pipeline image",
}


def add_trainer_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds one `--trainer-<field>` flag per field of the trainer section (`trainer_overrides` reads them)."""
    group = parser.add_argument_group("Trainer hardware (the config's trainer: section; README, \"Train on GPU\")")
    for field in dataclasses.fields(config_lib.TrainerConfig):  # annotations are strings (postponed evaluation)
        flag, dest = "--trainer-" + field.name.replace("_", "-"), f"trainer_{field.name}"
        if field.type == "bool":
            group.add_argument(flag, action="store_const", const=True, dest=dest, help=_TRAINER_HELP[field.name])
        else:
            group.add_argument(flag, type={"int": int, "float": float}.get(field.type, str), dest=dest,
                               metavar=field.name.upper(), help=_TRAINER_HELP[field.name])


def trainer_overrides(args: argparse.Namespace) -> Dict[str, Any]:
    """The trainer fields given as `--trainer-*` flags, for `config.replace(cfg, trainer=...)`; {} if none."""
    values = {}
    for field in dataclasses.fields(config_lib.TrainerConfig):
        value = getattr(args, f"trainer_{field.name}", None)
        if value is not None:
            values[field.name] = tuple(v.strip() for v in value.split(",")) if field.name == "components" else value
    return values


def trainer_argv(args: argparse.Namespace) -> Tuple[str, ...]:
    """The `--trainer-*` flags of `args` as command-line words again (for a scheduled run's line).

    Raises:
      ConfigError: a flag's value is invalid; the message names the field (trainer.<field>).
    """
    overrides = trainer_overrides(args)
    dataclasses.replace(config_lib.TrainerConfig(), **overrides)  # a bad value fails here, not at run time
    argv = []
    for name, value in overrides.items():
        flag = "--trainer-" + name.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag)
        else:
            argv += [flag, ",".join(value) if name == "components" else str(value)]
    return tuple(argv)


def apply_trainer_arguments(cfg: config_lib.RunConfig, args: argparse.Namespace) -> config_lib.RunConfig:
    """`cfg` with the `--trainer-*` flags of `args` applied over its trainer section.

    Raises:
      ConfigError: a flag's value is invalid; the message names the field (trainer.<field>).
    """
    overrides = trainer_overrides(args)
    return config_lib.replace(cfg, trainer=overrides) if overrides else cfg
