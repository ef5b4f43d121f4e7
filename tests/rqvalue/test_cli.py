"""The command line: one's own data by a config file alone, and plain errors."""

import os

import pandas as pd
import pytest
import yaml

from pipeline import datasets
from rqvalue import cli

pytestmark = pytest.mark.e2e


def _own_data_config(tmp_path, **data_changes):
    """A user's own Feast repo and a CSV spine, described only by YAML (no curated schema)."""
    data = datasets.prepare("synthetic_ltv", str(tmp_path / "user"), rows=1500)
    spine_csv = str(tmp_path / "user" / "spine.csv")
    pd.read_parquet(data.spine).to_csv(spine_csv, index=False)
    values = {
        "data": {
            "feast_repo": os.path.relpath(data.feast_repo, tmp_path),
            "spine": "user/spine.csv",
            "entity_columns": list(data.entity_columns),
            "feature_refs": list(data.feature_refs),
            "numeric_features": list(data.numeric_features),
            "categorical_features": list(data.categorical_features),
            **data_changes,
        },
        "model": {"codebook_sizes": [8, 4], "train_steps": 20, "eval_steps": 3, "batch_size": 64},
    }
    path = tmp_path / "own.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def test_own_data_runs_by_configuration_alone(tmp_path, capsys):
    config = _own_data_config(tmp_path)
    assert cli.main(["run", "--config", config, "--output-dir", str(tmp_path / "runs")]) == 0
    printed = capsys.readouterr().out
    assert "value_bucket=0" in printed and "overall" in printed
    assert "Transform done" in printed and "Pusher done" in printed
    assert "pushed model: " + str(tmp_path / "runs" / "serving") in printed


def test_config_error_names_the_field(tmp_path, capsys):
    config = _own_data_config(tmp_path, numeric_features=["no_such_feature"])
    assert cli.main(["run", "--config", config]) == 2
    assert "data.numeric_features" in capsys.readouterr().err


def test_bad_data_stops_with_the_feature_and_the_problem(tmp_path, capsys):
    config = _own_data_config(tmp_path, schema=datasets.schema_path("synthetic_ltv"))
    table = tmp_path / "user" / "feature_repo" / "data" / "customer_profile.parquet"
    frame = pd.read_parquet(table)
    frame.loc[:50, "channel"] = "tv"  # a category the curated schema does not know
    frame.to_parquet(table, index=False)
    assert cli.main(["run", "--config", config, "--output-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "stopped at data validation" in err and "'channel'" in err and "tv" in err
    assert not os.path.exists(tmp_path / "runs" / "serving")


def test_a_span_that_is_not_a_window_is_refused_before_anything_runs(tmp_path, capsys):
    weekly = _own_data_config(tmp_path, span_days=7)
    assert cli.main(["run", "--config", weekly, "--span", "20240102", "--output-dir", str(tmp_path / "runs")]) == 2
    assert "span 20240102: 7-day spans counted from data.span_origin 1970-01-05 do not start on 2024-01-02" \
        in capsys.readouterr().err
    whole = _own_data_config(tmp_path)
    assert cli.main(["run", "--config", whole, "--span", "20240101", "--output-dir", str(tmp_path / "runs")]) == 2
    assert "--span 20240101: the data is not cut into spans (set data.span_days)" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "runs" / "metadata.sqlite")
