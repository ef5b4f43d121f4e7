"""`rqvalue bench` at --tiny size: RESULTS.md and results.json with every row, metric and the targets."""

import argparse
import json
import math

import pytest

from rqvalue.bench import command as bench
from rqvalue.bench import results as bench_report
from rqvalue.bench import rows as bench_rows

pytestmark = pytest.mark.e2e

MODELS = ["rqreg", "ziln", "gr", "gbdt"]
SMALL_CODES = "small_codes"
MEMORY_ROWS = ["rqreg", "gbdt"]  # each costs a model export and a fresh process (~10-15 s)


def _args(argv):
    parser = argparse.ArgumentParser()
    bench.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["bench", *argv])


@pytest.fixture(scope="module")
def tiny_bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    args = _args(["--tiny", "--datasets", "synthetic_ltv", "--models", *MODELS, "--seeds", "1", "--decodings",
                  "--variant", f"{SMALL_CODES}: codebook_sizes=[8,4]", "--serving-memory-rows", *MEMORY_ROWS,
                  "--out", str(root / "out"), "--work-dir", str(root / "work")])
    assert args.func(args) == 0
    results = json.loads((root / "out" / "results.json").read_text())
    return results, (root / "out" / "RESULTS.md").read_text()


def test_parser_defaults():
    args = _args([])
    assert args.datasets == ["cdnow_snapshots", "cdnow"]
    assert args.seeds == 2 and args.scale == 1.0 and args.out == "benchmarks" and not args.tiny
    assert not args.decodings and args.models is None


def test_default_budget_uses_every_cdnow_customer_and_skips_the_decoding_tables():
    budget = bench_rows.budget_for()
    assert budget.rows["cdnow"] is None and budget.rows["cdnow_snapshots"] is None  # None: all 23,570
    assert not budget.decodings
    assert budget.measures_memory("rqreg") and budget.measures_memory("mse") and not budget.measures_memory("ziln")


def test_json_has_every_row_with_finite_metrics(tiny_bench):
    results, _ = tiny_bench
    dataset = results["results"]["synthetic_ltv"]
    assert set(dataset["rows"]) == set(MODELS) | {SMALL_CODES}
    for row_id, row in dataset["rows"].items():
        assert len(row["runs"]) == 1
        run = row["runs"][0]
        for key in bench_report.METRICS:
            if key == "serve_mb_per_1000" and row_id not in MEMORY_ROWS:
                continue
            assert math.isfinite(run[key]), (row["label"], key, run[key])
            assert math.isfinite(row["aggregate"][key]["mean"])
        assert run["serving_vs_predict_max_abs_diff"] < 1e-3 * max(1.0, run["prediction_cap"])
        assert 0.0 <= run["coverage_80"] <= 1.0
        assert run["ood_max_prediction"] <= run["prediction_cap"] + 1e-3
    assert dataset["counts"]["train"] > 0 and dataset["counts"]["validation"] > 0 and dataset["counts"]["eval"] > 0
    assert dataset["targets"]["metrics"] == ["normalized_gini", "spearman", "mae"]
    assert {c["baseline"] for c in dataset["targets"]["comparisons"]} == {"ziln", "gr", "gbdt"}


def test_gbdt_is_a_row_grown_on_the_same_rows_and_tuned_on_the_validation_slice(tiny_bench):
    from pipeline import config as config_lib

    results, markdown = tiny_bench
    dataset = results["results"]["synthetic_ltv"]
    [run] = dataset["rows"]["gbdt"]["runs"]
    defaults = config_lib.ModelConfig()
    grid = run["searched"]["grid"]
    assert grid == {"max_depth": sorted(defaults.gbdt_max_depths), "shrinkage": sorted(defaults.gbdt_shrinkages),
                    "min_examples": sorted(defaults.gbdt_min_examples)}
    tried = run["searched"]["tried"]
    assert len(tried) == len(grid["max_depth"]) * len(grid["shrinkage"]) * len(grid["min_examples"])
    best = min(tried, key=lambda t: t["valid_loss"])  # chosen on the validation rows only
    assert run["searched"]["chosen"]["trees"] == best["trees"] == run["best_step"] >= 1
    assert run["best_val_loss"] == pytest.approx(best["valid_loss"])
    assert 0 < run["train_s"] and run["distinct_predictions"] > 1 and run["normalized_gini"] > 0.2
    assert run["eval_count"] == dataset["counts"]["eval"]  # every eval row, as for every other row
    assert "*gbdt* searched (YDF, up to" in markdown


def test_serving_memory_is_measured_in_a_fresh_process_for_the_rows_asked(tiny_bench):
    results, markdown = tiny_bench
    rows = results["results"]["synthetic_ltv"]["rows"]
    for row_id, row in rows.items():
        run = row["runs"][0]
        if row_id not in MEMORY_ROWS:
            assert "serve_mb_per_1000" not in run, row_id
            continue
        assert run["serve_memory_rows"] == bench_rows.TINY_BUDGET.serving_batch, row_id
        assert 0 <= run["serve_mb_per_1000"] < 5000, (row_id, run["serve_mb_per_1000"])
    # RQ-Reg scores every path of its code tree per row: its call needs memory that a point model does not.
    assert rows["rqreg"]["runs"][0]["serve_mb_per_1000"] > max(rows["gbdt"]["runs"][0]["serve_mb_per_1000"], 1.0)
    assert "| serve ms/1k | serve MB/1k |" in markdown and "(rows rqreg, gbdt only)" in markdown


def test_every_decoding_rule_is_scored_on_the_default_rqreg_run(tiny_bench):
    from models import choices
    from pipeline import config as config_lib

    results, markdown = tiny_bench
    [run] = results["results"]["synthetic_ltv"]["rows"]["rqreg"]["runs"]
    assert set(run["decodings"]) == set(choices.DECODINGS)
    default = run["decodings"][config_lib.ModelConfig().decoding]
    assert default["normalized_gini"] == pytest.approx(run["normalized_gini"], abs=1e-9)  # the row's own
    for decoding, values in run["decodings"].items():
        assert math.isfinite(values["mae"]) and math.isfinite(values["serve_ms_per_1000"]), decoding
        assert 0.0 <= values["coverage_80"] <= 1.0
    assert "RQ-Reg decoding rules on the same trained models" in markdown
    for decoding in choices.DECODINGS:
        assert f"| {decoding} |" in markdown
    assert "decodings" not in results["results"]["synthetic_ltv"]["rows"]["ziln"]["runs"][0]


def test_a_variant_with_other_codebook_sizes_is_trained_on_its_own_transform(tiny_bench):
    results, markdown = tiny_bench
    rows = results["results"]["synthetic_ltv"]["rows"]
    assert rows[SMALL_CODES]["runs"][0]["codebook_sizes"] == [8, 4]
    from pipeline import config as config_lib
    assert rows["rqreg"]["runs"][0]["codebook_sizes"] == list(config_lib.ModelConfig().codebook_sizes)
    assert f"| {SMALL_CODES} (codebook_sizes=[8,4]) |" in markdown


def test_gr_is_scored_with_the_papers_greedy_decode_and_with_its_default_first_token_expansion(tiny_bench):
    from pipeline import config as config_lib

    results, markdown = tiny_bench
    [run] = results["results"]["synthetic_ltv"]["rows"]["gr"]["runs"]
    default = config_lib.ModelConfig().gr_first_tokens
    assert set(run["decodings"]) == {"1", str(default)}
    assert run["decodings"][str(default)]["normalized_gini"] == pytest.approx(run["normalized_gini"], abs=1e-9)
    assert math.isfinite(run["decodings"]["1"]["mae"])
    assert "GR decoding on the same trained models" in markdown and "| 1 |" in markdown


def test_interval_coverage_is_reported_per_predicted_value_group(tiny_bench):
    results, _ = tiny_bench
    for row in results["results"]["synthetic_ltv"]["rows"].values():
        run = row["runs"][0]
        groups = run["coverage_80_by_group"]
        assert len(groups) == len(run["interval_thresholds"]) + 1 == len(run["interval_offset_upper"])
        assert run["coverage_80_worst_group"] == min(groups)


def test_markdown_has_the_table_and_the_targets(tiny_bench):
    _, markdown = tiny_bench
    assert "## synthetic_ltv" in markdown
    for title, _ in bench_report.METRICS.values():
        assert title in markdown
    assert "| rqreg |" in markdown and "| ziln |" in markdown
    assert "## Targets" in markdown
    assert "synthetic_ltv: MET" in markdown or "synthetic_ltv: NOT MET" in markdown


def test_aggregate_and_target_rule():
    runs = [{"mae": 1.0, "spearman": 0.5}, {"mae": 3.0, "spearman": 0.7}]
    agg = bench_report.aggregate(runs)
    assert agg["mae"]["mean"] == 2.0 and agg["mae"]["n"] == 2
    assert math.isclose(agg["mae"]["std"], math.sqrt(2.0))

    def row(gini, spearman, mae, std=0.01):
        return {"aggregate": {"normalized_gini": {"mean": gini, "std": std},
                              "spearman": {"mean": spearman, "std": std},
                              "mae": {"mean": mae, "std": std}}}

    rows = {"rqreg": row(0.5, 0.4, 10.0), "ziln": row(0.4, 0.3, 11.0), "rqreg_no_rnc": row(0.9, 0.9, 1.0)}
    assert bench_report.target_checks("cdnow", rows)["met"] is True  # ablations are not baselines
    rows["mse"] = row(0.495, 0.3, 11.0)  # within the spread on Gini
    check = bench_report.target_checks("cdnow", rows)
    assert check["met"] is False
    assert [c["baseline"] for c in check["comparisons"] if not c["met"]] == ["mse"]


def test_scale_multiplies_sizes_and_step_budgets():
    half = bench_rows.budget_for(0.5)
    assert half.rows["cdnow"] == round(bench_rows.CDNOW_CUSTOMERS * 0.5)
    assert half.rows["synthetic_ltv"] == bench_rows.DEFAULT_BUDGET.rows["synthetic_ltv"] // 2
    assert half.max_steps == bench_rows.DEFAULT_BUDGET.max_steps // 2
    assert bench_rows.budget_for(10.0).rows["cdnow"] is None  # more than CDNOW has: all customers
    assert bench_rows.budget_for(1.0, tiny=True) == bench_rows.TINY_BUDGET


def test_variant_rows_parse_model_settings_and_name_bad_ones():
    row = bench_rows.parse_variant("wide: hidden_units=[128,64] learning_rate=0.001")
    assert (row.id, row.kind) == ("wide", "rqreg")
    assert row.changes == {"hidden_units": (128, 64), "learning_rate": 0.001}
    big = bench_rows.parse_variant("big: codebook_sizes=[64,16,16] rnc_weight=0")
    assert big.transform_changes == {"codebook_sizes": (64, 16, 16)} and row.transform_changes == {}
    assert bench_rows.parse_variant("ziln_slow: kind=ziln learning_rate=0.001").kind == "ziln"
    with pytest.raises(ValueError, match="'learning_rat' is not a model setting"):
        bench_rows.parse_variant("typo: learning_rat=0.1")
    with pytest.raises(ValueError, match="model.decoding"):
        bench_rows.parse_variant("bad: decoding=mode")
    with pytest.raises(ValueError, match="expected 'ID: key=value"):
        bench_rows.parse_variant("no_settings")


def test_rqreg_variants_are_not_baselines():
    agg = {"normalized_gini": {"mean": 0.5, "std": 0.0, "n": 3}, "spearman": {"mean": 0.3, "std": 0.0, "n": 3},
           "mae": {"mean": 1.0, "std": 0.0, "n": 3}}
    rows = {"rqreg": {"kind": "rqreg", "aggregate": agg}, "big": {"kind": "rqreg", "aggregate": agg},
            "ziln_slow": {"kind": "ziln", "aggregate": agg}}
    assert {c["baseline"] for c in bench_report.target_checks("cdnow", rows)["comparisons"]} == {"ziln_slow"}


def test_rqreg_is_compared_with_every_peer_by_a_paired_bootstrap(tiny_bench):
    results, markdown = tiny_bench
    dataset = results["results"]["synthetic_ltv"]
    intervals = dataset["bootstrap"]
    assert {r["peer"] for r in intervals} == {"ziln", "gr", "gbdt"}  # not RQ-Reg's own variant
    assert {r["metric"] for r in intervals} == {"normalized_gini", "spearman", "crps", "pinball_10", "pinball_50",
                                                "pinball_90", "crps_model"}
    # Both RQ-Reg and ZILN serve a whole distribution: their exact CRPS are compared with each other only.
    assert {r["peer"] for r in intervals if r["metric"] == "crps_model"} == {"ziln"}
    for r in intervals:
        assert r["resamples"] == 1000 and r["clusters"] == dataset["counts"]["eval"]
        assert r["low"] <= r["high"] and r["met"] == (r["low"] > 0)
    rqreg = dataset["rows"]["rqreg"]["runs"][0]
    assert 0 < rqreg["crps_tree"] and math.isfinite(rqreg["crps"]) and len(rqreg["coverage_80_by_decile"]) == 10
    assert rqreg["crps_model"] == rqreg["crps_tree"]
    assert 0 < dataset["rows"]["ziln"]["runs"][0]["crps_model"] < math.inf
    assert "crps_model" not in dataset["rows"]["gbdt"]["runs"][0]
    assert "RQ-Reg vs each peer, paired bootstrap" in markdown and "## Targets (paired bootstrap)" in markdown
    assert "_eval" not in json.dumps(results)


def test_serving_memory_can_be_limited_to_some_rows_or_skipped():
    import dataclasses

    budget = dataclasses.replace(bench_rows.DEFAULT_BUDGET, serving_memory_rows=None)
    assert budget.measures_memory("rqreg") and budget.measures_memory("gbdt")
    some = dataclasses.replace(budget, serving_memory_rows=("gbdt",))
    assert some.measures_memory("gbdt") and not some.measures_memory("rqreg")
    assert not dataclasses.replace(some, serving_memory=False).measures_memory("gbdt")
    args = _args(["--serving-memory-rows", "gbdt", "mse", "--no-serving-memory"])
    assert args.serving_memory_rows == ["gbdt", "mse"] and args.no_serving_memory


def test_an_rqreg_variant_is_bootstrapped_against_rqreg_and_every_peer(tiny_bench):
    results, markdown = tiny_bench
    dataset = results["results"]["synthetic_ltv"]
    rows = dataset["variant_bootstrap"][SMALL_CODES]
    peers = {row["peer"] for row in rows}
    assert "rqreg" in peers and "ziln" in peers and SMALL_CODES not in peers
    assert all(math.isfinite(row["low"]) and row["low"] <= row["high"] for row in rows)
    assert f"**{SMALL_CODES} (codebook_sizes=[8,4]) vs each peer, paired bootstrap**" in markdown
