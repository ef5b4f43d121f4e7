"""The bench's LightGBM peers and its paired comparison, on small seeded numpy rows (no Transform, seconds)."""

import dataclasses
import math
import types

import numpy as np
import pytest

from pipeline import config as config_lib
from rqvalue.bench import compare, lightgbm_peers
from rqvalue.bench.data import Prepared
from rqvalue.bench.rows import PEERS, TINY_BUDGET, Row
from schemas import features


def _prepared(n=1500, seed=0) -> Prepared:
    """Zero-inflated labels driven by one numeric feature and one categorical feature (4 categories)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    noise = rng.normal(size=n)
    c = rng.integers(0, 4, size=n)
    buys = rng.random(n) < 1.0 / (1.0 + np.exp(-(x + (c == 3))))
    labels = np.where(buys, np.exp(1.0 + 0.5 * x + 0.3 * c + 0.3 * rng.normal(size=n)), 0.0)
    parts = {"train": slice(0, 900), "validation": slice(900, 1150), "eval": slice(1150, n)}
    splits = {name: {features.transformed_name("x"): x[rows].astype(np.float32),
                     features.transformed_name("noise"): noise[rows].astype(np.float32),
                     features.transformed_name("c"): c[rows].astype(np.int64),
                     features.TARGET_KEY: np.log1p(labels[rows]).astype(np.float32)}
              for name, rows in parts.items()}
    data = types.SimpleNamespace(numeric_features=("x", "noise"), categorical_features=("c",))
    return Prepared("toy", data, config_lib.ModelConfig(), "", None, splits,
                    {name: labels[rows] for name, rows in parts.items()},
                    {name: np.arange(n)[rows].astype(str) for name, rows in parts.items()}, {}, {}, 0.0)


@pytest.fixture(scope="module")
def peer_runs():
    prepared = _prepared()
    budget = dataclasses.replace(TINY_BUDGET, serving_batch=100)
    return prepared, {kind: lightgbm_peers.train_and_evaluate(prepared, Row(kind, PEERS[kind], kind, {}), 0, budget)
                      for kind in lightgbm_peers.KINDS}


def test_features_are_the_data_sets_columns_and_never_the_label():
    matrix, names, categorical = lightgbm_peers.feature_matrix(_prepared(), "train")
    assert names == [features.transformed_name(k) for k in ("x", "noise", "c")]
    assert categorical == [2] and matrix.shape == (900, 3)
    assert features.TARGET_KEY not in names


def test_each_peer_learns_the_signal_and_records_its_search(peer_runs):
    prepared, runs = peer_runs
    for kind, run in runs.items():
        assert run["normalized_gini"] > 0.5, kind
        assert 0.6 <= run["coverage_80"] <= 0.95, kind
        assert run["serve_ms_per_1000"] > 0 and run["trees"] >= 1
        assert math.isfinite(run["crps"]) and run["crps"] > 0
        assert len(run["coverage_80_by_decile"]) == 10
        assert run["_eval"]["prediction"].shape == prepared.labels["eval"].shape
    tweedie = runs["lightgbm_tweedie"]["searched"]
    assert len(tweedie["tried"]) == int(np.prod([len(v) for v in lightgbm_peers.TWEEDIE_GRID.values()]))
    best = max(tweedie["tried"], key=lambda t: t["validation_gini"])
    assert tweedie["chosen"] == best  # chosen on the validation rows only
    assert set(runs["lightgbm_two_stage"]["searched"]) == {"probability", "amount"}


def test_the_mean_is_calibrated_on_the_validation_rows(peer_runs):
    from models import mean_calibration

    _, runs = peer_runs
    for run in runs.values():
        x, y = np.asarray(run["mean_knots"])
        assert x.shape == (mean_calibration.KNOTS,) and x[0] == 0 and y[0] == 0
        assert config_lib.ModelConfig().mean_calibration == "scale"
        np.testing.assert_allclose(y[1:] / x[1:], y[1] / x[1])  # one scale factor, fitted on validation
        assert y[1] / x[1] != 1.0


def test_compare_puts_a_clearly_better_model_above_zero_and_a_copy_at_zero():
    rng = np.random.default_rng(1)
    labels = rng.gamma(1.0, 10.0, 600) * (rng.random(600) < 0.5)
    good = labels + rng.normal(0, 1.0, 600)
    poor = labels + rng.normal(0, 30.0, 600)

    def outputs(prediction):
        prediction = np.maximum(prediction, 0)
        return {"prediction": prediction, "median": prediction, "lower": 0.5 * prediction, "upper": 1.5 * prediction}

    evals = {"ours": [outputs(good)], "poor": [outputs(poor)], "same": [outputs(good)]}
    rows = compare.compare(labels, np.arange(600) // 2, evals, "ours", ["poor", "same"], resamples=200)
    by = {(r["peer"], r["metric"]): r for r in rows}
    assert by[("poor", "normalized_gini")]["met"] and by[("poor", "crps")]["met"]
    assert by[("poor", "normalized_gini")]["clusters"] == 300
    same = by[("same", "spearman")]
    assert same["difference"] == 0 and same["low"] == 0 and same["high"] == 0 and not same["met"]
    ds = {"bootstrap": rows, "rows": {}}
    assert any("poor" in line and "met" in line for line in compare.render("toy", ds))
    lines = compare.targets({"toy": ds})
    assert any("normalized Gini (§4): NOT MET" in line and "1 of 2 met" in line for line in lines)
    # A variant's table is written also when the run had no peer (no RQ-Reg-vs-peer table).
    variant_only = {"variant_bootstrap": {"ours": rows}, "rows": {"ours": {"label": "ours (x=1)"}}}
    lines = compare.render("toy", variant_only)
    assert any("**ours (x=1) vs each peer, paired bootstrap**" in line for line in lines)
    assert not any("**RQ-Reg vs each peer" in line for line in lines)


def _snapshots(n=1200, seed=0) -> Prepared:
    """Customers buying at their own Poisson rate and order value until they drop out for good (40% before
    the cut-off, with their last purchase earlier), summarised (RFM, days) at two cut-offs."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    rate = rng.gamma(1.0, 0.02, n)  # purchases per day
    value = rng.gamma(4.0, 10.0, n)
    cutoff = np.where(np.arange(n) % 2 == 0, "1997-03-31", "1997-06-30")
    age = rng.uniform(30, 120, n) + np.where(cutoff == "1997-06-30", 91.0, 0.0)
    frequency = rng.poisson(rate * age).astype(float)
    alive = rng.random(n) < 0.6
    recency = np.where(frequency > 0, age * np.where(alive, rng.uniform(0.8, 1.0, n), rng.uniform(0.0, 0.4, n)), 0.0)
    monetary = np.where(frequency > 0, value * rng.gamma(20.0, 0.05, n), 0.0)
    labels = rng.poisson(rate * 365 * alive) * value
    columns = {"frequency": frequency, "recency_days": recency, "customer_age_days": age, "monetary_value": monetary}
    spec = {key: tf.io.FixedLenFeature([], tf.float32) for key in columns}
    serialized = [tf.train.Example(features=tf.train.Features(feature={
        key: tf.train.Feature(float_list=tf.train.FloatList(value=[columns[key][i]])) for key in columns
    })).SerializeToString() for i in range(n)]
    parts = {"train": slice(0, 700), "validation": slice(700, 900), "eval": slice(900, n)}
    output = types.SimpleNamespace(raw_feature_spec=lambda: spec)
    return Prepared("toy", None, config_lib.ModelConfig(), "", output, {},
                    {name: labels[rows] for name, rows in parts.items()},
                    {name: np.arange(n)[rows].astype(str) for name, rows in parts.items()},
                    {name: serialized[rows] for name, rows in parts.items()}, {}, 0.0,
                    times={name: cutoff[rows] for name, rows in parts.items()})


def test_bgnbd_gamma_gamma_fits_each_cutoff_on_train_and_ranks_customers():
    from rqvalue.bench import bgnbd_peer

    prepared = _snapshots()
    row = Row(bgnbd_peer.KIND, PEERS[bgnbd_peer.KIND], bgnbd_peer.KIND, {})
    run = bgnbd_peer.train_and_evaluate(prepared, row, 0, TINY_BUDGET)
    assert run["cutoffs"] == ["1997-03-31", "1997-06-30"]
    assert run["normalized_gini"] > 0.3 and run["spearman"] > 0.3
    assert 0.6 <= run["coverage_80"] <= 0.95
    assert run["mean_prediction"] == pytest.approx(prepared.labels["eval"].mean(), rel=0.3)
    prepared.times["eval"] = np.where(prepared.times["eval"] == "1997-06-30", "1997-09-30", prepared.times["eval"])
    with pytest.raises(ValueError, match="1997-09-30"):
        bgnbd_peer.train_and_evaluate(prepared, row, 0, TINY_BUDGET)


def test_bgnbd_expected_purchases_match_lifetimes_and_stay_finite_for_many_purchases():
    import pandas as pd
    from lifetimes import BetaGeoFitter

    from rqvalue.bench import bgnbd_peer

    params = {"r": 0.27, "alpha": 4.2, "a": 0.30, "b": 0.54}  # a < 1, as fitted on cdnow_snapshots
    fitter = BetaGeoFitter()
    fitter.params_ = pd.Series(params)
    rng = np.random.default_rng(0)
    frequency = rng.integers(1, 8, 100).astype(float)
    age = rng.uniform(5.0, 60.0, 100)
    recency = age * rng.uniform(0.0, 1.0, 100)
    reference = np.asarray(fitter.conditional_expected_number_of_purchases_up_to_time(52.0, frequency, recency, age))
    ours = bgnbd_peer.expected_purchases(params, 52.0, frequency, recency, age)
    np.testing.assert_allclose(ours, reference, rtol=1e-9)
    # Many repeat purchases, recent: lifetimes' direct 2F1 overflows; the transformed form stays finite and
    # grows with the purchase count.
    many = bgnbd_peer.expected_purchases(params, 52.0, np.array([60.0, 120.0]), np.array([70.0, 75.0]),
                                         np.array([75.0, 78.0]))
    assert np.all(np.isfinite(many)) and 0 < many[0] < many[1]


def test_pinball_losses_score_the_quantiles_where_a_row_has_them():
    labels = np.array([0.0, 10.0, 100.0])
    served = {"prediction": labels, "median": labels, "lower": np.zeros(3), "upper": np.array([1.0, 20.0, 50.0])}
    with_quantiles = {**served, "q10": np.array([0.0, 5.0, 60.0]), "q90": np.array([2.0, 30.0, 120.0])}
    plain, own = compare.distribution_losses(labels, served), compare.distribution_losses(labels, with_quantiles)
    np.testing.assert_allclose(plain["pinball_90"], [0.1, 1.0, 45.0])  # scored on `upper`
    np.testing.assert_allclose(own["pinball_90"], [0.2, 2.0, 2.0])  # on `q90`: (q - y) * 0.1 when above
    np.testing.assert_allclose(own["pinball_10"], [0.0, 0.5, 4.0])  # 0.1 * (y - q) when below
    assert not np.allclose(plain["crps"], own["crps"])
