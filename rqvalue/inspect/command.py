"""`rqvalue inspect VIEW [RUN]`: what the runs in an output folder did and produced, from ML Metadata
and the pipeline root.

Views (each one takes RUN, a short id from `rqvalue inspect runs` or a full run name; default the
latest run):

  runs        every run: when, status, and per component executed / cached / failed
  artifacts   the artifacts a run produced or used, with their useful properties
  metrics     the evaluation per slice, candidate beside baseline, blessing, failed thresholds
  codebook    the RQ centroids in transformed and label units, and how often each code is used
  anomalies   what ExampleValidator found
  schema      the schema the run validated against
  stats       StatisticsGen's statistics per split
  predictions every `rqvalue predict`: as-of time, model version, rows scored, entities without features

Each view gathers plain dicts and lists first (`rqvalue.inspect.runs`, `rqvalue.inspect.contents`);
`sections.render` prints them as JSON (`--json`) or as aligned text tables. ML Metadata is opened
read-only (`pipeline.mlmd`), and TensorFlow, TFMA and TFT are imported only by the views that need
them, so `rqvalue inspect runs` stays quick.
"""

import argparse
import os
import sys
from typing import Callable, Dict

from pipeline import mlmd
from rqvalue.inspect import contents, predictions, runs
from rqvalue.inspect.sections import render

DEFAULT_OUTPUT_DIR = "runs"

VIEWS: Dict[str, Callable] = {
    "runs": runs.runs_view,
    "artifacts": runs.artifacts_view,
    "metrics": runs.metrics_view,
    "codebook": contents.codebook_view,
    "anomalies": runs.anomalies_view,
    "schema": contents.schema_view,
    "stats": contents.stats_view,
    "predictions": predictions.predictions_view,
}


_HELP = {
    "runs": "every run: when, status, and per component executed / cached / failed",
    "artifacts": "the artifacts a run produced or used (type, URI, component, useful properties)",
    "metrics": "the evaluation overall and per value bucket, candidate beside baseline; blessing",
    "codebook": "the RQ codebook: centroids in transformed and label units, code usage on the train split",
    "anomalies": "what ExampleValidator found",
    "schema": "the schema the run used: feature, type, presence, domain",
    "stats": "StatisticsGen's statistics per split",
    "predictions": "every scoring (rqvalue predict): as-of time, model version, rows, entities without features",
}

_DESCRIPTION = ("Shows what the runs in an output folder did and produced, from ML Metadata and the pipeline "
                "root, as text tables or JSON. RUN is a run id from `rqvalue inspect runs` or a full run name; "
                "the default is the latest run.")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Registers `inspect` and its views on the `rqvalue` sub-command parsers."""
    inspect = subparsers.add_parser(
        "inspect", help="show what runs did and produced: runs, artifacts, metrics, codebook, anomalies, "
                        "schema, stats, predictions", description=_DESCRIPTION)
    _add_options(inspect, DEFAULT_OUTPUT_DIR, False)
    views = inspect.add_subparsers(dest="view", metavar="VIEW", required=True)
    # The options are accepted after the view too; SUPPRESS keeps a view from resetting them.
    common = argparse.ArgumentParser(add_help=False)
    _add_options(common, argparse.SUPPRESS, argparse.SUPPRESS)
    for name, text in _HELP.items():
        view = views.add_parser(name, help=text, description=text, parents=[common])
        if name not in ("runs", "predictions"):
            view.add_argument("run", nargs="?", metavar="RUN",
                              help="run id from `rqvalue inspect runs` or the run's full name (default: the latest)")
    inspect.set_defaults(func=main)
    return inspect


def _add_options(parser: argparse.ArgumentParser, output_dir_default, json_default) -> None:
    parser.add_argument("--output-dir", default=output_dir_default,
                        help="folder a `rqvalue run` wrote to (default: runs)")
    parser.add_argument("--json", action="store_true", default=json_default,
                        help="print JSON instead of text tables (for scripts)")


def main(args: argparse.Namespace) -> int:
    """Runs `rqvalue inspect <view>`: prints the view to stdout, or an error to stderr; returns the exit code."""
    output_dir = getattr(args, "output_dir", DEFAULT_OUTPUT_DIR)
    try:
        store = mlmd.RunHistory(output_dir, runs.MATRIX_RUNS)
        data, sections = VIEWS[args.view](store, getattr(args, "run", None))
    except mlmd.MetadataError as e:
        print(f"rqvalue inspect: {e}", file=sys.stderr)
        return 1
    try:
        print(render(data, sections, getattr(args, "json", False)))
        sys.stdout.flush()
    except BrokenPipeError:  # `rqvalue inspect stats | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
