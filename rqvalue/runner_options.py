"""The Beam runner options of `rqvalue run`, `compile` and `schedule`, and their translation into
`beam_pipeline_args` (`pipeline.runners.beam_args`)."""

import argparse
from typing import Tuple

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
