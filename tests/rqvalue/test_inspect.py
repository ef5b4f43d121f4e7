"""`rqvalue inspect`: every view on the shared small run, a run stopped by bad data, and plain errors."""

import argparse
import json
import os

import numpy as np
import pandas as pd
import pytest

from pipeline import config as config_lib
from pipeline import local_runner, tfma_results
from rqvalue.inspect import command as inspect

pytestmark = pytest.mark.e2e

COMPONENTS = {"FeatureStoreExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "ValidationGate",
              "Transform", "Trainer", "latest_blessed_model_resolver", "Evaluator", "Pusher"}


def _inspect(capsys, *argv):
    """Runs `rqvalue inspect ARGV` through add_parser and main: (exit code, stdout, stderr)."""
    parser = argparse.ArgumentParser(prog="rqvalue")
    inspect.add_parser(parser.add_subparsers(dest="command", required=True))
    code = inspect.main(parser.parse_args(["inspect", *argv]))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _json(capsys, output_dir, view, *argv):
    code, out, err = _inspect(capsys, view, *argv, "--output-dir", output_dir, "--json")
    assert code == 0, err
    return json.loads(out)


def _artifact(artifacts, type_name):
    (found,) = [a for a in artifacts if a["type"] == type_name]
    return found


def test_runs_lists_the_run_with_every_component_executed(small_run, capsys):
    cfg, _ = small_run
    (run,) = _json(capsys, cfg.output_dir, "runs")["runs"]
    assert run["id"] == 1 and run["status"] == "complete" and run["failed_component"] is None
    states = {c["component"]: c["state"] for c in run["components"]}
    assert COMPONENTS <= set(states) and set(states.values()) == {"executed"}
    assert run["duration_s"] > 0
    # Options before the view work too, and the text view names each component's state.
    code, out, _ = _inspect(capsys, "--output-dir", cfg.output_dir, "runs")
    assert code == 0
    assert run["name"] in out and "complete" in out
    assert all(line.split()[-1] == "executed" for line in out.splitlines() if line.split()[:1] == ["Pusher"])


def test_artifacts_include_the_pushed_model_and_the_blessing(small_run, capsys):
    cfg, result = small_run
    data = _json(capsys, cfg.output_dir, "artifacts")
    artifacts = data["artifacts"]
    pushed = _artifact(artifacts, "PushedModel")
    assert pushed["component"] == "Pusher" and pushed["in_run"] == "executed"
    assert pushed["properties"]["pushed"] is True
    assert pushed["properties"]["pushed_version"] == os.path.basename(result.pushed_model)
    assert pushed["properties"]["pushed_destination"] == result.pushed_model
    assert _artifact(artifacts, "ModelBlessing")["properties"]["blessed"] is True
    examples = [a for a in artifacts if a["type"] == "Examples" and a["component"] == "FeatureStoreExampleGen"][0]
    assert {"train", "eval"} <= set(examples["properties"]["split_names"])
    assert examples["properties"]["train_examples"] > examples["properties"]["eval_examples"] > 0
    assert all(os.path.isdir(a["uri"]) for a in artifacts)
    # The short id and the full run name select the same run; the text view shows the version.
    assert _json(capsys, cfg.output_dir, "artifacts", data["run"]["name"]) == data
    code, out, _ = _inspect(capsys, "artifacts", "1", "--output-dir", cfg.output_dir)
    assert code == 0 and f"pushed_version={pushed['properties']['pushed_version']}" in out


def test_metrics_per_value_bucket_add_up_to_overall(small_run, capsys):
    cfg, result = small_run
    data = _json(capsys, cfg.output_dir, "metrics")
    slices = {s["slice"]: s for s in data["slices"]}
    buckets = [s for name, s in slices.items() if name.startswith("value_bucket=")]
    assert "overall" in slices and len(buckets) >= 3
    overall = slices["overall"]["candidate"]
    assert sum(b["candidate"]["example_count"] for b in buckets) == overall["example_count"] > 0
    assert overall["mean_absolute_error"] == pytest.approx(result.metrics[tfma_results.OVERALL]["mean_absolute_error"])
    assert data["blessed"] is True and data["failed_thresholds"] == []
    assert data["baseline_model_uri"] is None and slices["overall"]["baseline"] is None  # the first run has none
    assert data["pushed_model"] == result.pushed_model
    code, out, _ = _inspect(capsys, "metrics", "--output-dir", cfg.output_dir)
    assert code == 0 and "value_bucket=0" in out and "blessed: yes" in out and "failed thresholds: none" in out


def test_codebook_levels_centroids_and_code_counts(small_run, capsys):
    cfg, _ = small_run
    data = _json(capsys, cfg.output_dir, "codebook")
    train = _artifact([a for a in _json(capsys, cfg.output_dir, "artifacts")["artifacts"]
                       if a["component"] == "FeatureStoreExampleGen"], "Examples")["properties"]["train_examples"]
    assert data["label_transform"] == cfg.model.label_transform == "log1p"
    assert [lv["size"] for lv in data["levels"]] == list(cfg.model.codebook_sizes)
    assert data["train_examples"] == train
    for level in data["levels"]:
        centroids = [c["centroid"] for c in level["codes"]]
        assert centroids == sorted(centroids)
        assert sum(c["count"] for c in level["codes"]) == train
    first = data["levels"][0]["codes"]
    assert first[0]["centroid"] == 0.0 and first[0]["label_value"] == 0.0 and first[0]["count_nonzero"] == 0
    assert all(c["label_value"] == pytest.approx(np.expm1(c["centroid"])) for c in first)
    finer = data["levels"][1]["codes"]
    assert all(c["label_factor"] == pytest.approx(np.exp(c["centroid"])) for c in finer)
    # Finer levels count every example; those with a non-zero label are the ones not on the zero code.
    assert sum(c["count_nonzero"] for c in finer) == train - first[0]["count"]
    code, out, _ = _inspect(capsys, "codebook", "--output-dir", cfg.output_dir)
    assert code == 0 and "level 1 (8 codes)" in out and "x (1+label)" in out


def test_anomalies_schema_and_stats(small_run, capsys):
    cfg, _ = small_run
    code, out, _ = _inspect(capsys, "anomalies", "--output-dir", cfg.output_dir)
    assert code == 0 and "no anomalies" in out
    assert _json(capsys, cfg.output_dir, "anomalies")["anomalies"] == []

    schema = {f["feature"]: f for f in _json(capsys, cfg.output_dir, "schema")["features"]}
    assert schema["label"]["type"] == "FLOAT" and schema["label"]["domain"] == ">= 0"
    assert schema["label"]["presence"] == "required"
    assert set(cfg.data.categorical_features) <= set(schema)
    code, out, _ = _inspect(capsys, "schema", "--output-dir", cfg.output_dir)
    assert code == 0 and any(line.startswith("label ") for line in out.splitlines())

    stats = {s["split"]: s for s in _json(capsys, cfg.output_dir, "stats")["splits"]}
    assert {"train", "eval"} <= set(stats)
    for split in stats.values():
        label = next(f for f in split["features"] if f["feature"] == "label")
        assert label["count"] == split["num_examples"] > 0 and label["missing"] == 0 and label["min"] == 0.0
        weekday = next(f for f in split["features"] if f["feature"] == "first_purchase_weekday")
        assert weekday["unique"] == 7 and weekday["top_values"]


def test_errors_are_plain_and_exit_non_zero(small_run, tmp_path, capsys):
    cfg, _ = small_run
    missing = str(tmp_path / "nowhere")
    code, out, err = _inspect(capsys, "runs", "--output-dir", missing)
    assert code != 0 and not out
    assert f"no runs under {missing}: run `rqvalue run --output-dir {missing}` first" in err

    code, out, err = _inspect(capsys, "metrics", "7", "--output-dir", cfg.output_dir)
    assert code != 0 and not out
    assert "no run '7'" in err and "known runs: 1 (" in err


def test_a_run_stopped_by_bad_data_shows_why(small_run, tmp_path, capsys):
    cfg, _ = small_run
    spine = pd.read_parquet(cfg.data.spine)
    spine.loc[0, "customer_id"] = 99_999_999  # not in the store: kept without features, which the schema requires
    bad_spine = str(tmp_path / "spine.parquet")
    spine.to_parquet(bad_spine)
    bad = config_lib.replace(cfg, data={"spine": bad_spine, "max_missing_feature_share": 0.01},
                             output_dir=str(tmp_path / "out"))
    with pytest.raises(Exception):
        local_runner.run(bad, report=None)

    (run,) = _json(capsys, bad.output_dir, "runs")["runs"]
    assert run["status"] == "failed" and run["failed_component"] == "ValidationGate"
    assert "Transform" not in {c["component"] for c in run["components"]}
    problems = _json(capsys, bad.output_dir, "anomalies")["anomalies"]
    assert any("'total_spend'" in p for p in problems)
    for view in ("metrics", "codebook"):
        code, out, err = _inspect(capsys, view, "--output-dir", bad.output_dir)
        assert code != 0 and not out
        assert "failed at ValidationGate" in err and "did not get as far as" in err
