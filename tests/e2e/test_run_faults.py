"""Faults a run must survive: `rqvalue run` killed during the Trainer, then a cached Transform output
truncated on disk. One folder: the killed run, then one run that repairs both."""

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from ml_metadata.proto import metadata_store_pb2

from pipeline import artifact_check, local_runner, mlmd, output_lock
from rqvalue.inspect import command as inspect

pytestmark = pytest.mark.e2e

TRUNCATED_SIZE = 2000


def _plain(value):
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _trainer_running(output_dir: str) -> bool:
    try:
        run = mlmd.RunHistory(output_dir, run_going=True).runs[-1]
    except Exception:  # no store yet, or one being written
        return False
    step = run.step("Trainer")
    return step is not None and step.state == "running"


@pytest.fixture(scope="module")
def killed(small_run, tmp_path_factory):
    """`rqvalue run` on the small run's data, killed (SIGKILL) once its Trainer runs: the run's config."""
    root = tmp_path_factory.mktemp("faults")
    cfg = dataclasses.replace(small_run[0], output_dir=str(root / "out"))
    config = root / "small.yaml"
    config.write_text(yaml.safe_dump(_plain({"data": dataclasses.asdict(cfg.data),
                                             "model": dataclasses.asdict(cfg.model)})))
    log = open(root / "run.log", "w")
    child = subprocess.Popen([sys.executable, "-m", "rqvalue", "run", "--config", str(config),
                              "--output-dir", cfg.output_dir], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 1200
    while not _trainer_running(cfg.output_dir):
        assert child.poll() is None, open(root / "run.log").read()
        assert time.time() < deadline, "the Trainer did not start"
        time.sleep(0.5)
    child.send_signal(signal.SIGKILL)
    child.wait()
    log.close()
    return cfg


def _inspect(capsys, output_dir, *argv):
    parser = argparse.ArgumentParser(prog="rqvalue")
    inspect.add_parser(parser.add_subparsers(dest="command", required=True))
    code = inspect.main(parser.parse_args(["inspect", *argv, "--output-dir", output_dir]))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_killed_run_shows_as_interrupted(killed, capsys):
    code, out, _ = _inspect(capsys, killed.output_dir, "runs", "--json")
    first = json.loads(out)["runs"][0]
    assert code == 0 and first["status"] == "interrupted" and first["failed_component"] == "Trainer"
    states = {c["component"]: c["state"] for c in first["components"]}
    assert states["Trainer"] == "interrupted" and states["Transform"] in ("executed", "cached")
    code, out, _ = _inspect(capsys, killed.output_dir, "runs")
    assert "interrupted" in out and "INTERRUPTED" in out
    code, out, err = _inspect(capsys, killed.output_dir, "metrics", "1")
    assert code != 0 and "run 1 (" in err and "was interrupted at Trainer" in err
    # While a run holds the folder's lock, unfinished executions of the latest run are that run's.
    with output_lock.hold(killed.output_dir):
        assert mlmd.RunHistory(killed.output_dir).runs[0].status == "running"
    # A scoring holding the folder is not that run going on.
    with output_lock.hold(killed.output_dir, purpose=output_lock.SCORING):
        assert mlmd.RunHistory(killed.output_dir).runs[0].status == "interrupted"


def test_the_next_run_names_the_interrupted_run_and_remakes_a_damaged_cached_artifact(killed, capsys):
    store = mlmd.open_readonly(killed.metadata_path)
    [graph] = [a for a in store.get_artifacts_by_type("Examples") if "/Transform/transformed_examples/" in a.uri]
    train = os.path.join(graph.uri, "Split-train")
    [shard] = os.listdir(train)
    written = os.path.getsize(os.path.join(train, shard))
    os.truncate(os.path.join(train, shard), TRUNCATED_SIZE)

    said = []
    result = local_runner.run(killed, report=said.append)

    assert result.pushed_model
    history = mlmd.RunHistory(killed.output_dir)
    first, second = history.runs
    assert first.label in next(s for s in said if "was interrupted at Trainer" in s)
    assert (f"rqvalue: Transform's transformed_examples (artifact {graph.id}, {graph.uri}) is damaged: "
            f"Split-train/{shard} has {TRUNCATED_SIZE:,} bytes, {written:,} when it was written. "
            "It is not reused: Transform runs again when a run needs it") in said
    assert second.status == "complete" and first.status == "interrupted"
    assert second.step("FeatureStoreExampleGen").state == "cached"
    assert second.step("Transform").state == "executed" and second.step("Trainer").state == "executed"
    [damaged] = mlmd.open_readonly(killed.metadata_path).get_artifacts_by_id([graph.id])
    assert damaged.state == metadata_store_pb2.Artifact.MARKED_FOR_DELETION
    assert damaged.custom_properties[artifact_check.DAMAGED_PROPERTY].string_value.startswith("Split-train/")
    used = {a["id"] for a in history.artifacts(second)}
    assert graph.id not in used
