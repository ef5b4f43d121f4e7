"""`rqvalue run` refuses before anything runs: a folder another run is using, and paths it cannot use.

None of these runs a pipeline: each refusal comes before the first component.
"""

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from pipeline import output_lock
from rqvalue import cli

# A run going on in the folder argv[1] (it holds the lock until argv[2] appears).
RUN_GOING = """
import os, sys, time
from pipeline import output_lock
with output_lock.hold(sys.argv[1]):
    print("held", flush=True)
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.02)
"""


def test_a_second_run_on_a_folder_in_use_exits_at_once_and_writes_nothing(tmp_path, capsys):
    out, release = tmp_path / "runs", tmp_path / "release"
    out.mkdir()
    going = subprocess.Popen([sys.executable, "-c", RUN_GOING, str(out), str(release)], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert going.stdout.readline().strip() == "held"
        assert cli.main(["run", "--dataset", "synthetic_ltv", "--rows", "200", "--output-dir", str(out)]) == cli.BUSY
    finally:
        release.touch()
        going.wait(timeout=60)
    captured = capsys.readouterr()
    assert not captured.out
    assert captured.err.startswith(f"rqvalue: {out} is in use by another run (pid {going.pid}, started ")
    assert captured.err.endswith("): wait for it to finish or use another --output-dir\n")
    assert os.listdir(out) == [output_lock.LOCK_FILE]  # no data prepared, no metadata, nothing pushed


# -- paths it cannot use -------------------------------------------------------------------------------

def _config(tmp_path, **data):
    values = {"data": {"feast_repo": "repo", "spine": "spine.parquet", "entity_columns": ["customer_id"],
                       "feature_refs": ["history:spend"], "numeric_features": ["spend"], **data}}
    path = tmp_path / "own.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def _one_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


def test_an_output_folder_that_cannot_be_a_folder(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    assert cli.main(["run", "--dataset", "synthetic_ltv", "--output-dir", str(blocker)]) == 2
    assert _one_line(capsys) == f"rqvalue: output folder {blocker}: exists and is not a folder"
    assert cli.main(["run", "--dataset", "synthetic_ltv", "--output-dir", str(blocker / "runs")]) == 2
    assert _one_line(capsys) == f"rqvalue: output folder {blocker / 'runs'}: cannot be created (Not a directory)"
    assert blocker.read_text() == "not a folder\n"


# Prints what preflight says about an output folder (argv[1]).
CHECK_OUTPUT_DIR = """
import sys
from pipeline import preflight
try:
    preflight.output_dir(sys.argv[1])
except preflight.PathProblem as e:
    print(e)
"""


def _as_a_user_without_root_rights(argv):
    """argv run without root's right to write anywhere: as is for a normal user, under a user namespace for root."""
    if os.geteuid() != 0:
        return argv
    if not shutil.which("unshare") or subprocess.run(["unshare", "-U", "true"]).returncode != 0:
        pytest.skip("running as root, and no user namespace to drop root's rights in")
    return ["unshare", "-U", *argv]


def test_a_read_only_output_folder_or_store_is_one_line(tmp_path):
    read_only, writable = tmp_path / "read-only", tmp_path / "writable"
    read_only.mkdir()
    (writable / "pipeline_root").mkdir(parents=True)
    store = writable / "metadata.sqlite"
    store.write_bytes(b"")
    store.chmod(0o444)
    read_only.chmod(0o555)
    (writable / "pipeline_root").chmod(0o555)

    def check(folder):
        return subprocess.run(_as_a_user_without_root_rights([sys.executable, "-c", CHECK_OUTPUT_DIR, str(folder)]),
                              capture_output=True, text=True, timeout=120).stdout.strip()

    try:
        said = [check(read_only), check(read_only / "runs"), check(writable)]
        (writable / "pipeline_root").chmod(0o755)
        said.append(check(writable))
    finally:
        read_only.chmod(0o755)
    assert said == [f"output folder {read_only}: not writable (Permission denied)",
                    f"output folder {read_only / 'runs'}: cannot be created (Permission denied)",
                    f"output folder {writable}: its folder pipeline_root is not writable (Permission denied)",
                    f"output folder {writable}: its ML Metadata store {store} is not writable (Permission denied)"]


@pytest.mark.parametrize("data, message", [
    ({}, "data.feast_repo: {tmp}/repo does not exist"),
    ({"feast_repo": "."}, "data.feast_repo: {tmp} has no feature_store.yaml (not a Feast feature repository)"),
    ({"feast_repo": "feast"}, "data.spine: {tmp}/spine.parquet does not exist"),
    ({"feast_repo": "feast", "spine": "feast"}, None),  # a Parquet data set may be a folder: passes this check
    ({"feast_repo": "feast", "spine": "spine.csv", "schema": "missing.pbtxt"},
     "data.schema: {tmp}/missing.pbtxt does not exist"),
])
def test_wrong_data_paths_are_one_line_before_anything_runs(tmp_path, capsys, data, message):
    (tmp_path / "feast").mkdir()
    (tmp_path / "feast" / "feature_store.yaml").write_text("project: x\n")
    (tmp_path / "spine.csv").write_text("customer_id,prediction_time,label\n")
    from pipeline import config as config_lib
    from pipeline import preflight

    cfg = config_lib.load(_config(tmp_path, **data))
    if message is None:
        preflight.data_paths(cfg.data)
        return
    assert cli.main(["run", "--config", _config(tmp_path, **data), "--output-dir", str(tmp_path / "runs")]) == 2
    assert _one_line(capsys) == "rqvalue: " + message.format(tmp=tmp_path)
    assert not os.path.exists(tmp_path / "runs" / "metadata.sqlite")


def test_a_wrong_config_leaves_the_output_folder_alone(tmp_path, capsys):
    assert cli.main(["run", "--config", str(tmp_path / "missing.yaml"), "--output-dir", str(tmp_path / "runs")]) == 2
    assert "missing.yaml' does not exist" in _one_line(capsys)
    assert not os.path.exists(tmp_path / "runs")
