"""The run configuration a command builds from its options: --dataset or --config, then the flags
that override it (`rqvalue run`, `compile` and `predict` share them)."""

import argparse
import os

from pipeline import config as config_lib
from pipeline import datasets
from rqvalue import runner_options


def add_source_options(parser: argparse.ArgumentParser, config_help: str) -> None:
    """--dataset (an embedded data set) or --config (one's own data)."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dataset", choices=datasets.NAMES, default="cdnow_snapshots",
                        help="embedded data set (default: cdnow_snapshots, the CDNOW log scored at four month ends)")
    source.add_argument("--config", help=config_help)


def run_config(args: argparse.Namespace) -> config_lib.RunConfig:
    """The RunConfig of `run`/`compile` options: the config file or embedded data set, then the flags."""
    from pipeline import runners

    # Runner options, when given, replace the config's beam_args; checked before any data is prepared.
    beam_args = runner_options.beam_args_from(args) if runner_options.runner_argv(args) else None
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
    if getattr(args, "distill", False):
        section = {"enabled": True} if args.config else datasets.distillation(args.dataset)
        cfg = config_lib.replace(cfg, distillation=section)
    if args.train_steps:
        cfg = config_lib.replace(cfg, model={"train_steps": args.train_steps})
    if args.no_cache:
        cfg = config_lib.replace(cfg, enable_cache=False)
    if beam_args is not None:
        cfg = config_lib.replace(cfg, beam_args=beam_args)
    if args.pipeline_root:
        cfg = config_lib.replace(cfg, pipeline_root_uri=args.pipeline_root)
    cfg = runner_options.apply_trainer_arguments(cfg, args)  # --trainer-* flags over the trainer: section
    runners.check_pipeline_root(cfg.beam_args, cfg.pipeline_root)
    return cfg
