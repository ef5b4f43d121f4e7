"""`rqvalue run` (the pipeline, in-process with TFX's LocalDagRunner) and `rqvalue compile` (a Vertex
AI Pipelines job spec): their options, and the RunConfig they build from options and config."""

import argparse
import os
import sys
import time

from pipeline import config as config_lib
from pipeline import output_lock, preflight
from rqvalue import console, runner_options
from rqvalue.config_options import add_source_options, run_config


def add_parsers(commands) -> None:
    """Registers `run` and `compile` on the `rqvalue` sub-command parsers."""
    run = commands.add_parser("run", help="run the pipeline: Feast -> validation -> Transform -> Trainer "
                                          "-> Evaluator -> Pusher")
    add_source_options(run, "YAML config for one's own Feast repo, spine and label "
                            "(template: pipeline/configs/own_data.yaml)")
    run.add_argument("--output-dir", default="runs",
                     help="folder for ML Metadata, the pipeline root and the serving models (default: runs)")
    _add_model_options(run, "override model.kind (default: rqreg)")
    run.add_argument("--no-cache", action="store_true", help="re-run every component")
    run.add_argument("--distill", action="store_true",
                     help="privileged-feature distillation: train a teacher on features from after the prediction "
                          "time and serve a student aligned to it (an embedded data set's declared features, or "
                          "the config's distillation section)")
    run.add_argument("--span", type=int, help="with data.span_days > 0: ingest this span (YYYYMMDD of its "
                                              "first day) instead of the latest one in the spine")
    run.add_argument("--then-predict", action="store_true",
                     help="after the run, score every entity as of now with the latest pushed model (rqvalue predict)")
    runner_options.add_runner_arguments(run)
    runner_options.add_trainer_arguments(run)
    run.set_defaults(func=run_main)

    compile_ = commands.add_parser("compile", help="write the pipeline as a Vertex AI Pipelines job spec (JSON)")
    compile_.add_argument("--target", choices=("vertex",), default="vertex",
                          help="orchestrator to compile for (vertex: TFX's Kubeflow V2 runner)")
    add_source_options(compile_, "YAML config of one's own data (its paths must be readable on Vertex: gs://)")
    compile_.add_argument("--output", default="pipeline.json", help="JSON file to write (default: pipeline.json)")
    compile_.add_argument("--image", required=True, help="pipeline image every component runs (docker/Dockerfile)")
    compile_.add_argument("--output-dir", default="runs", help="folder for an embedded data set's files")
    _add_model_options(compile_, "override model.kind")
    compile_.add_argument("--no-cache", action="store_true", help="compile with caching off")
    runner_options.add_runner_arguments(compile_)
    runner_options.add_trainer_arguments(compile_)
    compile_.set_defaults(func=compile_main)


def _add_model_options(parser: argparse.ArgumentParser, model_help: str) -> None:
    parser.add_argument("--rows", type=int, help="limit the embedded data set to this many entities/rows")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data sets")
    parser.add_argument("--model", choices=config_lib.MODEL_KINDS, help=model_help)
    parser.add_argument("--train-steps", type=int, help="override model.train_steps")


def compile_main(args: argparse.Namespace) -> int:
    from pipeline.pipeline import compile_vertex

    cfg = run_config(args)
    path = compile_vertex(cfg, os.path.abspath(args.output), args.image)
    print(f"rqvalue: wrote the Vertex AI Pipelines job spec of {cfg.pipeline_name!r} to {path}")
    return 0


def run_main(args: argparse.Namespace) -> int:
    """Runs `rqvalue run`. The output folder stays locked from before an embedded data set is prepared
    there until the run ends (`pipeline.output_lock`): a second run on it exits at once."""
    if args.config:
        config_lib.load(args.config)  # a wrong config stops the run before the output folder is made
    with output_lock.hold(preflight.output_dir(os.path.abspath(args.output_dir))):
        return _run_locked(args)


def _run_locked(args: argparse.Namespace) -> int:
    cfg = run_config(args)
    preflight.data_paths(cfg.data)  # before TensorFlow and TFX load: a wrong path is reported in a second

    from components.validation_gate import DataValidationError
    from pipeline import local_runner

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
    print(console.format_metrics(result.metrics))
    print(f"\nblessed: {'yes' if result.blessed else 'no'}")
    print(f"pushed model: {result.pushed_model or 'none (not blessed)'}")
    if result.serving_model and result.serving_model != result.pushed_model:
        print(f"serving model (unchanged): {result.serving_model}")
    if args.then_predict:
        from rqvalue import predict

        return predict.score_and_report(cfg)
    return 0
