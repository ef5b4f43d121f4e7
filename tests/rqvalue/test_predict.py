"""`rqvalue predict` without a pipeline run: refusals, and scheduling it after training."""

import argparse
import os
import shlex

import yaml
from folder_in_use import another_run_holding

from pipeline import output_lock
from rqvalue import cli, schedule


def _config(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"data": {
        "feast_repo": "repo", "spine": "spine.csv", "entity_columns": ["customer_id"], "feature_refs": ["v:a"],
        "numeric_features": ["a"]}}))
    return str(path)


def test_nothing_trained_yet_is_refused_with_what_to_do(tmp_path, capsys):
    assert cli.main(["predict", "--config", _config(tmp_path), "--output-dir", str(tmp_path / "runs")]) == 2
    assert "run the pipeline first" in capsys.readouterr().err


def test_scoring_a_folder_a_run_is_using_exits_at_once_and_writes_nothing(tmp_path, capsys):
    """A run may be pushing the model a scoring would read: predict is refused as a second run is."""
    out = tmp_path / "runs"
    out.mkdir()
    with another_run_holding(out) as going:
        assert cli.main(["predict", "--config", _config(tmp_path), "--output-dir", str(out)]) == cli.BUSY
    assert capsys.readouterr().err.startswith(f"rqvalue: {out} is in use by another run (pid {going.pid}, ")
    assert os.listdir(out) == [output_lock.LOCK_FILE]  # no scoring folder, no predictions


def test_predict_after_a_run_scores_under_the_lock_that_run_holds(tmp_path, capsys):
    """`rqvalue run --then-predict`: the run's own lock does not refuse its scoring (it gets as far as
    looking for a pushed model)."""
    out = tmp_path / "runs"
    out.mkdir()
    with output_lock.hold(str(out)):
        assert cli.main(["predict", "--config", _config(tmp_path), "--output-dir", str(out)]) == 2
    assert "run the pipeline first" in capsys.readouterr().err


def test_a_wrong_as_of_time_or_entity_list_names_the_option(tmp_path, capsys):
    config = _config(tmp_path)
    assert cli.main(["predict", "--config", config, "--as-of", "soon", "--output-dir", str(tmp_path)]) == 2
    assert "--as-of: 'soon' is not a time" in capsys.readouterr().err
    assert cli.main(["predict", "--config", config, "--entities", str(tmp_path / "ids.csv"),
                     "--output-dir", str(tmp_path)]) == 2
    assert "--entities: file" in capsys.readouterr().err


def test_schedule_can_score_after_each_run(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="rqvalue")
    schedule.add_parser(parser.add_subparsers(dest="command"))
    argv = ["schedule", "--dry-run", "--config", _config(tmp_path), "--output-dir", str(tmp_path / "runs"),
            "--then-predict"]
    assert schedule.main(parser.parse_args(argv)) == 0
    words = shlex.split(capsys.readouterr().out)
    assert words[words.index("run"):words.index(">>")][-1] == "--then-predict"
    assert cli.parser().parse_args(["run", "--then-predict"]).then_predict
