"""`rqvalue init`: a ready Feast repository, run config and starter schema from a features table and a spine.

  rqvalue init --features features.parquet --spine spine.csv --entity customer_id --out my_ltv

reads the two tables, infers each feature's Feast type and its role (numeric or categorical), and
writes under the output folder

  feature_repo/feature_store.yaml   local provider: file offline store, SQLite registry and online store
  feature_repo/features_repo.py     entity, FileSource, FeatureView (explicit TTL), FeatureService;
                                    `feast apply` in feature_repo/ registers them
  feature_repo/data/                registry.db and online_store.db (and the features as Parquet when
                                    the input was CSV or its event time was text)
  rqvalue.yaml                      the run config (pipeline/config.py), paths relative to itself
  schema.pbtxt                      a starter TFDV schema: the label FLOAT, present in every row, >= 0

then applies the definitions with Feast's Python API and prints the next command. Each step is a
plain function (`read_table`, `check_inputs`, `infer_features`, `derive_ttl`, `definitions_text`,
`starter_schema`, `run_config_values`), so each can be tested alone; `init` runs them in order.

Roles: text and booleans are categories and numbers respectively; floats are numeric; integers are
numeric (counts, amounts) unless the column name ends in `_id` or `_code`, which are labels of
things, not quantities (an Int64 feature used as a category is written as its digits, "3").
`--numeric` and `--categorical` override; `--exclude` leaves a column out.

TTL: the feature view's time to live bounds how old the latest feature row may be at a prediction
time; Feast gives a row whose feature rows are all older (or all later than its prediction time) no
features. By default it is the larger of the longest gap in the data between a prediction time and
the latest feature row before it, and the time the feature rows span (whole days, at least one): no
spine row loses its features, and scoring as of a time after the data still finds every entity's
latest row. `--ttl-days` sets it. The file texts are built in `rqvalue/init_files.py`.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import math
import os
import shutil
from typing import Callable, List, Optional, Tuple

import numpy as np
import pandas as pd
import yaml

from rqvalue.init_files import (
    CATEGORICAL,
    DATA_DIR,
    NUMERIC,
    FeatureColumn,
    TtlChoice,
    definitions_text,
    feature_store_yaml,
    identifier,
    run_config_values,
    starter_schema,
)

REPO_DIR = "feature_repo"
DEFINITIONS_FILE = "features_repo.py"
CONFIG_FILE = "rqvalue.yaml"
SCHEMA_FILE = "schema.pbtxt"
STORE_FILE = "feature_store.yaml"
CATEGORY_SUFFIXES = ("_id", "_code")



class InitError(ValueError):
    """An input of `rqvalue init` cannot make a repository; the message names the column or path."""


@dataclasses.dataclass(frozen=True)
class InitRequest:
    """What `rqvalue init` was asked for (the command-line options)."""

    features: str
    spine: str
    out_dir: str
    entity_columns: Tuple[str, ...]
    event_time: str = "event_timestamp"
    prediction_time: str = "prediction_time"
    label: str = "label"
    numeric: Tuple[str, ...] = ()
    categorical: Tuple[str, ...] = ()
    exclude: Tuple[str, ...] = ()
    ttl_days: Optional[int] = None
    name: str = ""
    force: bool = False


# -- reading and checking ------------------------------------------------------------------------


def read_table(path: str, what: str) -> pd.DataFrame:
    """A Parquet or CSV file as a frame; `what` names the option in errors ("--features")."""
    if not os.path.isfile(path):
        raise InitError(f"{what}: file {path!r} does not exist")
    try:
        return pd.read_csv(path) if path.lower().endswith(".csv") else pd.read_parquet(path)
    except Exception as e:  # pyarrow and pandas raise many types for unreadable files
        raise InitError(f"{what}: {path!r} is not a readable Parquet or CSV file ({e})") from None


def _timestamps(frame: pd.DataFrame, column: str, what: str) -> pd.Series:
    try:
        times = pd.to_datetime(frame[column], utc=True)
    except (ValueError, TypeError) as e:
        raise InitError(f"{what} column {column!r}: not a timestamp ({e})") from None
    if times.isna().any():
        raise InitError(f"{what} column {column!r}: {int(times.isna().sum())} rows have no time")
    return times


def check_inputs(features: pd.DataFrame, spine: pd.DataFrame, req: InitRequest) -> None:
    """Refuses missing columns, a label that is not a non-negative number, and entity columns whose
    type differs between the two tables.

    Raises:
      InitError: naming the table (--features / --spine), the column and the problem.
    """
    if not req.entity_columns:
        raise InitError("--entity: name the entity column(s), the join keys shared by features and spine")
    for what, frame, path, columns in (
            ("--features", features, req.features, [*req.entity_columns, req.event_time]),
            ("--spine", spine, req.spine, [*req.entity_columns, req.prediction_time, req.label])):
        for column in columns:
            if column not in frame.columns:
                raise InitError(f"{what}: column {column!r} is missing from {path!r} (columns: {list(frame.columns)})")
    for column in req.entity_columns:
        for what, frame in (("--features", features), ("--spine", spine)):
            if frame[column].isna().any():
                raise InitError(f"{what} column {column!r}: {int(frame[column].isna().sum())} rows have no entity id")
        if _entity_kind(features[column]) != _entity_kind(spine[column]):
            raise InitError(f"--spine column {column!r} holds {_entity_kind(spine[column])} values but --features "
                            f"column {column!r} holds {_entity_kind(features[column])} ones: Feast joins on equal "
                            "values of one type; write the ids the same way in both tables")
    label = spine[req.label]
    if not pd.api.types.is_numeric_dtype(label) or pd.api.types.is_bool_dtype(label):
        raise InitError(f"--spine column {req.label!r} (the label) is not numeric (dtype {label.dtype}, e.g. "
                        f"{label.dropna().iloc[0]!r}); the label must be a number, zero included" if label.notna().any()
                        else f"--spine column {req.label!r} (the label) has no values")
    missing = label.isna() | ~np.isfinite(label.astype("float64"))
    if missing.any():
        raise InitError(f"--spine column {req.label!r}: {int(missing.sum())} rows have no finite label; "
                        "every spine row needs one (zero is a valid label)")
    if (label < 0).any():
        raise InitError(f"--spine column {req.label!r}: {int((label < 0).sum())} labels are negative "
                        f"(e.g. {float(label[label < 0].iloc[0])}); labels must be >= 0")
    _timestamps(spine, req.prediction_time, "--spine")
    _timestamps(features, req.event_time, "--features")
    clash = {req.prediction_time, req.label} & (set(features.columns) - {*req.entity_columns, req.event_time,
                                                                           *req.exclude})
    if clash:
        raise InitError(f"--features: column(s) {sorted(clash)} share a name with the spine's prediction time or "
                        "label; rename them or leave them out with --exclude")


def _entity_kind(values: pd.Series) -> str:
    if pd.api.types.is_integer_dtype(values):
        return "integer"
    if pd.api.types.is_float_dtype(values):
        present = values.dropna()
        return "integer" if (present == np.floor(present)).all() else "float"
    return "text"


# -- types, roles and TTL --------------------------------------------------------------------------


def _feast_type(values: pd.Series) -> Optional[str]:
    if pd.api.types.is_bool_dtype(values):
        return "Bool"
    if pd.api.types.is_integer_dtype(values):
        return "Int64"
    if pd.api.types.is_float_dtype(values):
        return "Float32" if values.dtype == np.float32 else "Float64"
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        return "String"
    return None


def infer_features(features: pd.DataFrame, req: InitRequest) -> List[FeatureColumn]:
    """Every feature column of the table with its Feast type and role (see the module docstring).

    Raises:
      InitError: a flag names a column that is not a feature, a text column is asked to be numeric,
        or a column has a type no feature can have (timestamps, lists, mixed values).
    """
    reserved = {*req.entity_columns, req.event_time}
    names = [c for c in features.columns if c not in reserved and c not in req.exclude]
    for flag, listed in (("--numeric", req.numeric), ("--categorical", req.categorical), ("--exclude", req.exclude)):
        for name in listed:
            if name not in features.columns or name in reserved:
                raise InitError(f"{flag}: {name!r} is not a feature column of {req.features!r} "
                                f"(feature columns: {[c for c in features.columns if c not in reserved]})")
    both = set(req.numeric) & set(req.categorical)
    if both:
        raise InitError(f"--numeric and --categorical both name {sorted(both)}")
    columns = []
    for name in names:
        feast_type = _feast_type(features[name])
        if feast_type is None:
            raise InitError(f"--features column {name!r}: dtype {features[name].dtype} cannot be a feature (numbers, "
                            f"booleans and text can); leave it out with --exclude {name}")
        if name in req.numeric:
            if feast_type == "String":
                raise InitError(f"--numeric: column {name!r} holds text, which cannot be a number")
            role, why = NUMERIC, "--numeric"
        elif name in req.categorical:
            role, why = CATEGORICAL, "--categorical"
        elif feast_type == "String":
            role, why = CATEGORICAL, "text"
        elif feast_type == "Int64" and name.lower().endswith(CATEGORY_SUFFIXES):
            role, why = CATEGORICAL, f"integer named *{name.lower()[name.rfind('_'):]}: a code, not a quantity"
        else:
            role, why = NUMERIC, {"Bool": "boolean (0/1)", "Int64": "integer"}.get(feast_type, "number")
        columns.append(FeatureColumn(name, feast_type, role, why))
    if not columns:
        raise InitError(f"--features: {req.features!r} has no feature columns besides the entity and event time")
    return columns


def derive_ttl(features: pd.DataFrame, spine: pd.DataFrame, req: InitRequest) -> TtlChoice:
    """The view's TTL in days: `req.ttl_days`, else the larger of the longest gap between a spine row's
    prediction time and its entity's latest feature row at or before it, and the time the feature rows
    span (whole days, at least 1): no spine row loses its features, and scoring as of a time after the
    data still finds each entity's latest row."""
    keys = list(req.entity_columns)
    event_times = _timestamps(features, req.event_time, "--features")
    left = pd.DataFrame({"_t": _timestamps(spine, req.prediction_time, "--spine")})
    right = pd.DataFrame({"_t": event_times})
    right["_seen"] = right["_t"]
    for key in keys:
        left[key] = spine[key].to_numpy()
        right[key] = features[key].to_numpy()
    joined = pd.merge_asof(left.sort_values("_t"), right.sort_values("_t"), on="_t", by=keys, direction="backward")
    gaps = (joined["_t"] - joined["_seen"]).dropna()
    without = int(joined["_seen"].isna().sum())
    if req.ttl_days is not None:
        if req.ttl_days < 1:
            raise InitError(f"--ttl-days: {req.ttl_days} must be a positive number of days")
        older = int((gaps > pd.Timedelta(days=req.ttl_days)).sum())
        return TtlChoice(req.ttl_days, "set by --ttl-days", without, older)
    day = pd.Timedelta(days=1)
    longest = (gaps.max() if len(gaps) else pd.Timedelta(0)) / day
    span = (event_times.max() - event_times.min()) / day
    days = max(1, math.ceil(max(longest, span)))
    return TtlChoice(days, f"covers the longest gap from a prediction time back to the latest feature row "
                           f"({longest:.1f} days) and the span of the feature rows ({span:.1f} days)", without, 0)


# -- the command ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class InitResult:
    """What `init` wrote."""

    out_dir: str
    repo_dir: str
    config_path: str
    schema_path: str
    view: str
    columns: List[FeatureColumn]
    ttl: TtlChoice
    source_path: str


def existing_repo(out_dir: str) -> Optional[str]:
    """The file that shows `out_dir` already holds a repository or a config, or None."""
    for path in (os.path.join(out_dir, REPO_DIR, STORE_FILE), os.path.join(out_dir, STORE_FILE),
                 os.path.join(out_dir, CONFIG_FILE)):
        if os.path.exists(path):
            return path
    return None


def check_folder(req: InitRequest, out_dir: str) -> None:
    """Refuses a folder that already holds a repository or config, unless --force (which must not delete an input)."""
    found = existing_repo(out_dir)
    if found is None:
        return
    if not req.force:
        raise InitError(f"--out: {out_dir!r} already holds a repository or config ({found}); choose another folder "
                        "or pass --force to replace what `rqvalue init` wrote there")
    repo = os.path.join(out_dir, REPO_DIR)
    for path, option in ((req.features, "--features"), (req.spine, "--spine")):
        if os.path.abspath(path).startswith(repo + os.sep):
            raise InitError(f"{option}: {path!r} lies inside {repo}, which --force would delete; move it first")


def _clear(out_dir: str) -> None:
    """Removes what an earlier `init` wrote in `out_dir` (the repo folder, the config, the schema)."""
    repo = os.path.join(out_dir, REPO_DIR)
    if os.path.isdir(repo):
        shutil.rmtree(repo)
    for name in (CONFIG_FILE, SCHEMA_FILE):
        if os.path.exists(os.path.join(out_dir, name)):
            os.remove(os.path.join(out_dir, name))


def _source_table(features: pd.DataFrame, req: InitRequest, repo: str, view: str) -> str:
    """The Parquet file the FileSource reads: the input itself when it is Parquet with a timestamp event
    time, else a converted copy under data/. Returns its absolute path."""
    if not req.features.lower().endswith(".csv") and pd.api.types.is_datetime64_any_dtype(features[req.event_time]):
        return os.path.abspath(req.features)
    table = features.copy()
    table[req.event_time] = _timestamps(table, req.event_time, "--features")
    path = os.path.join(repo, DATA_DIR, f"{view}.parquet")
    table.to_parquet(path, index=False)
    return path


def apply_definitions(repo: str) -> List[str]:
    """Imports the repo's definitions file and applies its Feast objects (what `feast apply` registers);
    returns their names."""
    from feast import Entity, FeatureService, FeatureStore, FeatureView
    from feast.data_source import DataSource

    path = os.path.join(repo, DEFINITIONS_FILE)
    spec = importlib.util.spec_from_file_location(f"_rqvalue_init_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    objects = [v for v in vars(module).values() if isinstance(v, (Entity, DataSource, FeatureView, FeatureService))]
    FeatureStore(repo_path=repo).apply(objects)
    return [o.name for o in objects]


def init(req: InitRequest, report: Callable[[str], None] = print) -> InitResult:
    """Writes and applies the repository, the config and the schema (see the module docstring).

    Raises:
      InitError: an input is missing or wrong, or the folder already holds a repository (without --force).
    """
    os.environ.setdefault("FEAST_USAGE", "False")
    out_dir = os.path.abspath(req.out_dir)
    check_folder(req, out_dir)
    features = read_table(req.features, "--features")
    spine = read_table(req.spine, "--spine")
    check_inputs(features, spine, req)
    columns = infer_features(features, req)
    ttl = derive_ttl(features, spine, req)
    _clear(out_dir)
    name = identifier(req.name or os.path.splitext(os.path.basename(req.features))[0])
    view = name if name not in req.entity_columns else name + "_features"

    repo = os.path.join(out_dir, REPO_DIR)
    os.makedirs(os.path.join(repo, DATA_DIR), exist_ok=True)
    source = _source_table(features, req, repo, view)
    entity_types = {c: "INT64" if _entity_kind(features[c]) == "integer" else "STRING" for c in req.entity_columns}
    with open(os.path.join(repo, STORE_FILE), "w") as f:
        f.write(feature_store_yaml(name))
    with open(os.path.join(repo, DEFINITIONS_FILE), "w") as f:
        f.write(definitions_text(view, req.entity_columns, entity_types, os.path.relpath(source, repo),
                                 req.event_time, columns, ttl))
    with open(os.path.join(out_dir, SCHEMA_FILE), "w") as f:
        f.write(starter_schema(req.entity_columns, req.prediction_time, req.label, columns))
    config_path = os.path.join(out_dir, CONFIG_FILE)
    with open(config_path, "w") as f:
        f.write("# Written by `rqvalue init`; every setting: pipeline/configs/own_data.yaml. "
                "Relative paths resolve against this file's folder.\n")
        yaml.safe_dump(run_config_values(
            f"rqvalue-{name.replace('_', '-')}", os.path.relpath(os.path.abspath(req.spine), out_dir),
            req.entity_columns, req.prediction_time, req.label, view, columns, REPO_DIR, SCHEMA_FILE),
            f, sort_keys=False)
    applied = apply_definitions(repo)
    result = InitResult(out_dir, repo, config_path, os.path.join(out_dir, SCHEMA_FILE), view, columns, ttl, source)
    _report(result, applied, spine, req, report)
    return result


def _report(result: InitResult, applied: List[str], spine: pd.DataFrame, req: InitRequest,
            report: Callable[[str], None]) -> None:
    from rqvalue.console import table

    report(f"rqvalue init: feature view {result.view!r} over {result.source_path}")
    report("\n".join(table(("feature", "Feast type", "role", "why"),
                           [[c.name, c.feast_type, c.role, c.why] for c in result.columns])))
    report(f"TTL {result.ttl.days} day{'s' if result.ttl.days != 1 else ''}: {result.ttl.why}")
    dropped = result.ttl.rows_without_features + result.ttl.rows_older_than_ttl
    if dropped:
        report(f"warning: {dropped} of {len(spine)} spine rows have no feature row in their window "
               f"({result.ttl.rows_without_features} none at or before the prediction time, "
               f"{result.ttl.rows_older_than_ttl} only older than the TTL); Feast returns no features for them")
    report(f"applied {', '.join(applied)} to {result.repo_dir}")
    report(f"wrote {result.config_path} and {result.schema_path}")
    output = os.path.join(result.out_dir, "runs")
    report(f"\nnext: rqvalue run --config {result.config_path} --output-dir {output}")
    report(f"then: rqvalue predict --config {result.config_path} --output-dir {output}")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Registers `init` on the `rqvalue` sub-command parsers."""
    parser = subparsers.add_parser(
        "init", help="write a ready Feast repo, run config and starter schema from a features table and a spine",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", required=True, help="features table (Parquet or CSV): entity column(s), "
                                                          "event time, one column per feature")
    parser.add_argument("--spine", required=True, help="spine (Parquet or CSV): entity column(s), prediction time, "
                                                       "label")
    parser.add_argument("--entity", action="append", required=True, metavar="COLUMN",
                        help="entity column (a Feast join key); repeat for a compound key")
    parser.add_argument("--out", required=True, help="folder to write feature_repo/, rqvalue.yaml, schema.pbtxt")
    parser.add_argument("--event-time", default="event_timestamp",
                        help="features column with each row's time (default: event_timestamp)")
    parser.add_argument("--prediction-time", default="prediction_time",
                        help="spine column with the prediction time (default: prediction_time)")
    parser.add_argument("--label", default="label", help="spine column with the label (default: label)")
    parser.add_argument("--numeric", action="append", default=[], metavar="COLUMN", help="treat as a number")
    parser.add_argument("--categorical", action="append", default=[], metavar="COLUMN", help="treat as a category")
    parser.add_argument("--exclude", action="append", default=[], metavar="COLUMN", help="leave this column out")
    parser.add_argument("--ttl-days", type=int, help="the feature view's TTL (default: the longest gap in the data)")
    parser.add_argument("--name", default="", help="feature view and project name (default: the features file's name)")
    parser.add_argument("--force", action="store_true", help="replace what an earlier `rqvalue init` wrote in --out")
    parser.set_defaults(func=main)
    return parser


def main(args: argparse.Namespace) -> int:
    """Runs `rqvalue init`; InitError (a ValueError) reaches the command line as exit status 2."""
    init(InitRequest(
        features=args.features, spine=args.spine, out_dir=args.out, entity_columns=tuple(args.entity),
        event_time=args.event_time, prediction_time=args.prediction_time, label=args.label,
        numeric=tuple(args.numeric), categorical=tuple(args.categorical), exclude=tuple(args.exclude),
        ttl_days=args.ttl_days, name=args.name, force=args.force))
    return 0

