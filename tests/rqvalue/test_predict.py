"""`rqvalue predict` without a pipeline run: refusals, and scheduling it after training."""

import argparse
import shlex

import yaml

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
