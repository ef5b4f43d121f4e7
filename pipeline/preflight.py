"""Checks of the paths a run reads and writes, before anything runs: one line per problem, naming the path.

Without them an unwritable output folder surfaces as SQLite's "attempt to write a readonly
database" or a PermissionError deep in a component, and a wrong Feast repo or spine path as a
traceback from Feast or pandas.
"""

import os
import tempfile

from pipeline.config import DataConfig

METADATA_FILE = "metadata.sqlite"  # pipeline.config.RunConfig.metadata_path
WRITTEN_FOLDERS = ("pipeline_root", "serving")  # RunConfig.pipeline_root and serving_dir by default


class PathProblem(ValueError):
    """A path of the run cannot be used; the message names the setting, the path and the problem."""


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def output_dir(path: str) -> str:
    """Creates the output folder if needed and checks that a run can write there; returns the path.

    Raises:
      PathProblem: the folder cannot be created, or it or its ML Metadata store is not writable.
    """
    where = f"output folder {path}"
    if os.path.exists(path) and not os.path.isdir(path):
        raise PathProblem(f"{where}: exists and is not a folder")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise PathProblem(f"{where}: cannot be created ({_reason(e)})") from None
    problem = _cannot_write(path)
    if problem:
        raise PathProblem(f"{where}: not writable ({problem})")
    for name in WRITTEN_FOLDERS:
        problem = os.path.isdir(os.path.join(path, name)) and _cannot_write(os.path.join(path, name))
        if problem:
            raise PathProblem(f"{where}: its folder {name} is not writable ({problem})")
    store = os.path.join(path, METADATA_FILE)
    if os.path.exists(store):
        try:
            os.close(os.open(store, os.O_RDWR))
        except OSError as e:
            raise PathProblem(f"{where}: its ML Metadata store {store} is not writable ({_reason(e)})") from None
    return path


def _cannot_write(folder: str) -> str:
    """Why no file can be created in `folder` ("" when one can)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return ""
    except OSError as e:
        return _reason(e)


def data_paths(data: DataConfig) -> None:
    """Checks that the Feast repo, the spine and the schema (if any) of a data config are there and readable.

    Raises:
      PathProblem: naming the data.* setting, the path and what is wrong with it.
    """
    repo = data.feast_repo
    if not os.path.isdir(repo):
        raise PathProblem(f"data.feast_repo: {repo} " + ("is not a folder" if os.path.exists(repo) else "does not exist"))
    if not os.path.isfile(os.path.join(repo, "feature_store.yaml")):
        raise PathProblem(f"data.feast_repo: {repo} has no feature_store.yaml (not a Feast feature repository)")
    _readable("data.spine", data.spine, folder_ok=True)  # a Parquet data set may be a folder
    if data.schema:
        _readable("data.schema", data.schema)


def _readable(setting: str, path: str, folder_ok: bool = False) -> None:
    if not os.path.exists(path):
        raise PathProblem(f"{setting}: {path} does not exist")
    if folder_ok and os.path.isdir(path):
        return
    if not os.path.isfile(path):
        raise PathProblem(f"{setting}: {path} is not a file")
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as e:
        raise PathProblem(f"{setting}: {path} cannot be read ({_reason(e)})") from None
