"""`rqvalue predict`: score every entity as of a time with the pushed model, into Parquet and the feature store.

  rqvalue predict --config my.yaml --output-dir runs/my                     # every entity, as of now
  rqvalue predict --config my.yaml --output-dir runs/my --as-of 2024-06-01 --entities ids.csv
  rqvalue predict --config my.yaml --output-dir runs/my --model-version 1795938789

It runs the scoring pipeline (`pipeline/scoring.py`): features point-in-time from Feast, TFX's
BulkInferrer with the latest pushed model of the output folder (or `--model-version`) on Beam with
the runner options given (`--runner dataflow ...` as for `rqvalue run`), then Parquet under
`<output-dir>/predictions/<view>/` and the Feast feature view `<view>` (default `predicted_<label>`)
in the config's Feast repo, written to its online store. Scoring an as-of time again replaces its
rows. Entities without features are counted and listed, not scored.
"""

import argparse
import os
import sys
from typing import Callable, Optional

import pandas as pd

from pipeline import config as config_lib
from pipeline import output_lock
from rqvalue import runner_options
from rqvalue.config_options import add_source_options, run_config
from schemas import features


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Registers `predict` on the `rqvalue` sub-command parsers."""
    parser = subparsers.add_parser(
        "predict", help="score every entity as of a time with the pushed model: Parquet + a Feast feature view",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_options(parser, "the YAML config the model was trained with (rqvalue init writes one)")
    parser.add_argument("--output-dir", default="runs", help="the folder `rqvalue run` wrote to (default: runs)")
    parser.add_argument("--as-of", metavar="TIME", help="read features as of this time (ISO 8601, naive = UTC; "
                                                        "default: now)")
    parser.add_argument("--entities", metavar="FILE", help="Parquet/CSV with the entity columns to score "
                                                           "(default: every entity in the feature store)")
    parser.add_argument("--model-version", metavar="VERSION", help="a pushed version (default: the latest push)")
    parser.add_argument("--rows", type=int, help="embedded data set: as given to `rqvalue run`")
    parser.add_argument("--seed", type=int, default=0, help="embedded data set: as given to `rqvalue run`")
    runner_options.add_runner_arguments(parser)
    parser.set_defaults(func=main, model=None, train_steps=None, no_cache=False)
    return parser


def as_of_now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").floor("s")


def choose_model(metadata_path: str, version: Optional[str]):
    """The pushed model to score with: `version`, or the latest push (a `mlmd_scoring.PushedModel`).

    Raises:
      MetadataError: nothing pushed yet, or no push of `version`.
    """
    from pipeline import mlmd, mlmd_scoring

    pushed = mlmd_scoring.pushed_models(metadata_path)
    if not pushed:
        raise mlmd.MetadataError(f"no model was pushed in {os.path.dirname(metadata_path)}: `rqvalue run` pushes "
                                 "a model when the gate blesses it")
    if version is None:
        return pushed[-1]
    for model in reversed(pushed):
        if model.version == str(version):
            return model
    raise mlmd.MetadataError(f"--model-version {version}: not among the pushed versions "
                             f"({', '.join(m.version for m in pushed)})")


def predict(cfg: config_lib.RunConfig, as_of: Optional[str] = None, entities: str = "",
            model_version: Optional[str] = None, report: Optional[Callable[[str], None]] = print):
    """Scores once and returns the scoring's record (`mlmd_scoring.Scoring`).

    Raises:
      MetadataError: no pushed model (or not the version asked for).
      IngestionError: a wrong --as-of or --entities, or nothing to score.
      OutputDirBusy: a run (or another scoring) is using the output folder.
    """
    from components.scoring_example_gen import utc_time
    from pipeline import mlmd

    when = utc_time(as_of, "--as-of") if as_of else as_of_now()
    if entities and not os.path.isfile(entities):
        raise ValueError(f"--entities: file {entities!r} does not exist")
    if not os.path.isdir(cfg.output_dir):
        raise mlmd.MetadataError(f"no runs under {cfg.output_dir}: run the pipeline first "
                                 f"(`rqvalue run --output-dir {cfg.output_dir}` trains and pushes a model)")
    # The output folder's lock: a run going on there may be pushing a new model, and two scorings
    # would replace each other's partitions and online rows. Re-entrant, so `run --then-predict`
    # scores under the lock its run holds.
    with output_lock.hold(cfg.output_dir, purpose=output_lock.SCORING):
        return _score_locked(cfg, when, entities, model_version, report)


def _score_locked(cfg: config_lib.RunConfig, when: pd.Timestamp, entities: str, model_version: Optional[str],
                  report: Optional[Callable[[str], None]]):
    from tfx.utils import path_utils

    from components.bulk_scoring import scoring_signature, signature_outputs
    from pipeline import local_runner, scoring

    model = choose_model(cfg.metadata_path, model_version)
    serving_dir = path_utils.serving_model_path(model.model_uri)
    outputs = tuple(signature_outputs(serving_dir))
    missing = [key for key in features.SERVING_VALUE_KEYS if key not in outputs]
    if missing:
        raise ValueError(f"model {model.version}: its serving signature lacks {missing} (it returns {list(outputs)})")
    if report:
        report(f"rqvalue predict: as of {when.isoformat()} with model {model.version} ({model.destination})")
    return local_runner.run_scoring(cfg, scoring.ScoringRun(
        as_of=when.isoformat(), model_uri=model.model_uri, model_version=model.version, output_keys=outputs,
        entities=os.path.abspath(entities) if entities else "", signature=scoring_signature(serving_dir)), report)


def summary(cfg: config_lib.RunConfig, record) -> str:
    """What a scoring wrote, for the terminal."""
    entity = cfg.data.entity_columns[0]
    lines = [f"scored {record['rows']} of {record['entities']} entities as of {record['as_of']} with model "
             f"{record['model_version']} (scoring run {record.run})",
             f"entities without features (not scored): {record['entities_without_features']}"
             + (f", listed in {record['entities_without_features_list']}" if record['entities_without_features'] else ""),
             f"parquet: {record['parquet']}" + (" (replaced the earlier scoring of this as-of time)"
                                                if record['replaced'] else "")]
    if record["online_rows"]:
        lines.append(f"feature view {record['feature_view']!r} in {cfg.data.feast_repo}: "
                     f"{record['online_rows']} rows in its online store")
    else:
        lines.append(f"feature view {record['feature_view']!r}: online store left as it was (it holds the later "
                     f"as-of time {record['latest_as_of']})")
    lines.append(f"read it: feast.FeatureStore({cfg.data.feast_repo!r}).get_online_features("
                 f"[\"{record['feature_view']}:prediction\"], [{{{entity!r}: ...}}])")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    """Runs `rqvalue predict`; returns the exit status."""
    return score_and_report(run_config(args), args.as_of, args.entities or "", args.model_version)


def score_and_report(cfg: config_lib.RunConfig, as_of: Optional[str] = None, entities: str = "",
                     model_version: Optional[str] = None) -> int:
    """`predict`, then its summary; 2 when nothing is pushed (`rqvalue run --then-predict` calls it too)."""
    from pipeline import mlmd

    try:
        record = predict(cfg, as_of, entities, model_version)
    except mlmd.MetadataError as e:
        print(f"rqvalue predict: {e}", file=sys.stderr)
        return 2
    print("\n" + summary(cfg, record))
    return 0
