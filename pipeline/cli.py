"""The `rqvalue` command line.

  rqvalue run      run the pipeline on an embedded data set or one's own (--config)
  rqvalue inspect  what each run produced, from ML Metadata (runs, artifacts, metrics, codebook, ...)
  rqvalue report   one self-contained HTML report of a run's evaluation, with plots
  rqvalue compile  the pipeline as a Vertex AI Pipelines (Kubeflow V2) job spec
  rqvalue schedule retrain on a schedule: a cron entry under flock (or a Vertex AI schedule spec)
  rqvalue bench    every model on every embedded data set, several seeds -> benchmarks/RESULTS.md
"""

import argparse
import logging
import os
import sys
import time
import warnings
from typing import List, Optional

from pipeline import config as config_lib


def _quiet() -> None:
    """Keeps the terminal to progress and results: library deprecation chatter off, before TF loads."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("FEAST_USAGE", "False")
    warnings.filterwarnings("ignore")
    # Libraries re-enable warning filters on import; route whatever still fires into a muted logger.
    logging.captureWarnings(True)
    for name in ("py.warnings", "tensorflow", "apache_beam"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _parser() -> argparse.ArgumentParser:
    from pipeline import datasets

    parser = argparse.ArgumentParser(prog="rqvalue", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the pipeline: Feast -> validation -> Transform -> Trainer "
                                          "-> Evaluator -> Pusher")
    source = run.add_mutually_exclusive_group()
    source.add_argument("--dataset", choices=datasets.NAMES, default="cdnow",
                        help="embedded data set (default: cdnow, the CDNOW purchase log)")
    source.add_argument("--config", help="YAML config for one's own Feast repo, spine and label "
                                         "(template: pipeline/configs/own_data.yaml)")
    run.add_argument("--output-dir", default="runs",
                     help="folder for ML Metadata, the pipeline root and the serving models (default: runs)")
    run.add_argument("--rows", type=int, help="limit the embedded data set to this many entities/rows")
    run.add_argument("--seed", type=int, default=0, help="seed of the synthetic data sets")
    run.add_argument("--model", choices=config_lib.MODEL_KINDS, help="override model.kind (default: rqreg)")
    run.add_argument("--train-steps", type=int, help="override model.train_steps")
    run.add_argument("--no-cache", action="store_true", help="re-run every component")
    run.add_argument("--span", type=int, help="with data.span_days > 0: ingest this span (YYYYMMDD of its "
                                              "first day) instead of the latest one in the spine")
    from pipeline import runners, trainer_hardware
    runners.add_runner_arguments(run)
    trainer_hardware.add_arguments(run)
    _add_compile_parser(commands)

    from pipeline import bench, inspect_run, report, schedule
    inspect_run.add_parser(commands)
    report.add_parser(commands)
    schedule.add_parser(commands)
    bench.add_parser(commands)
    return parser


def _add_compile_parser(commands) -> None:
    from pipeline import datasets, runners

    compile_ = commands.add_parser("compile", help="write the pipeline as a Vertex AI Pipelines job spec (JSON)")
    compile_.add_argument("--target", choices=("vertex",), default="vertex",
                          help="orchestrator to compile for (vertex: TFX's Kubeflow V2 runner)")
    source = compile_.add_mutually_exclusive_group()
    source.add_argument("--dataset", choices=datasets.NAMES, default="cdnow", help="embedded data set")
    source.add_argument("--config", help="YAML config of one's own data (its paths must be readable on Vertex: gs://)")
    compile_.add_argument("--output", default="pipeline.json", help="JSON file to write (default: pipeline.json)")
    compile_.add_argument("--image", required=True, help="pipeline image every component runs (docker/Dockerfile)")
    compile_.add_argument("--output-dir", default="runs", help="folder for an embedded data set's files")
    compile_.add_argument("--rows", type=int, help="limit the embedded data set to this many entities/rows")
    compile_.add_argument("--seed", type=int, default=0, help="seed of the synthetic data sets")
    compile_.add_argument("--model", choices=config_lib.MODEL_KINDS, help="override model.kind")
    compile_.add_argument("--train-steps", type=int, help="override model.train_steps")
    compile_.add_argument("--no-cache", action="store_true", help="compile with caching off")
    runners.add_runner_arguments(compile_)
    from pipeline import trainer_hardware
    trainer_hardware.add_arguments(compile_)


def _compile(args) -> int:
    from pipeline import runners

    cfg = _config(args)
    path = runners.compile_vertex(cfg, os.path.abspath(args.output), args.image)
    print(f"rqvalue: wrote the Vertex AI Pipelines job spec of {cfg.pipeline_name!r} to {path}")
    return 0


def _config(args) -> config_lib.RunConfig:
    from pipeline import datasets, runners

    # Runner options, when given, replace the config's beam_args; checked before any data is prepared.
    beam_args = runners.beam_args_from(args) if runners.runner_argv(args) else None
    output_dir = os.path.abspath(args.output_dir)
    if args.config:
        cfg = config_lib.load(args.config)
        cfg = config_lib.replace(cfg, output_dir=output_dir)
    else:
        data = datasets.prepare(args.dataset, os.path.join(output_dir, "data", args.dataset),
                                rows=args.rows, seed=args.seed)
        cfg = config_lib.RunConfig(data=data, output_dir=output_dir,
                                   pipeline_name=f"rqvalue-{args.dataset.replace('_', '-')}")
    if args.model:
        cfg = config_lib.replace(cfg, model={"kind": args.model})
    if args.train_steps:
        cfg = config_lib.replace(cfg, model={"train_steps": args.train_steps})
    if args.no_cache:
        cfg = config_lib.replace(cfg, enable_cache=False)
    if beam_args is not None:
        cfg = config_lib.replace(cfg, beam_args=beam_args)
    if args.pipeline_root:
        cfg = config_lib.replace(cfg, pipeline_root_uri=args.pipeline_root)
    from pipeline import trainer_hardware
    cfg = trainer_hardware.apply_arguments(cfg, args)  # --trainer-* flags over the trainer: section
    runners.check_pipeline_root(cfg.beam_args, cfg.pipeline_root)
    return cfg


def _run(args) -> int:
    from components.validation_gate import DataValidationError
    from pipeline import local_runner, results

    cfg = _config(args)
    print(f"rqvalue: pipeline {cfg.pipeline_name!r}, output in {cfg.output_dir}")
    started = time.time()
    try:
        result = local_runner.run(cfg, span=args.span)
    except Exception as e:  # the runner wraps component errors; find ours in the chain
        cause = e
        while cause is not None and not isinstance(cause, DataValidationError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            print(f"rqvalue: stopped at data validation.\n{cause}", file=sys.stderr)
            return 2
        raise
    print(f"\nrqvalue: finished in {time.time() - started:.0f} s\n")
    print("Evaluation on the eval split (candidate model):")
    print(results.format_metrics(result.metrics))
    print(f"\nblessed: {'yes' if result.blessed else 'no'}")
    print(f"pushed model: {result.pushed_model or 'none (not blessed)'}")
    if result.serving_model and result.serving_model != result.pushed_model:
        print(f"serving model (unchanged): {result.serving_model}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    _quiet()
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "compile":
            return _compile(args)
        if args.command == "inspect":
            from pipeline import inspect_run
            return inspect_run.main(args)
        if args.command == "report":
            from pipeline import report
            return report.main(args)
        if args.command == "schedule":
            from pipeline import schedule
            return schedule.main(args)
        if args.command == "bench":
            from pipeline import bench
            return bench.main(args)
    except config_lib.ConfigError as e:
        print(f"rqvalue: configuration error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # IngestionError and data set errors name the field themselves
        print(f"rqvalue: {e}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
