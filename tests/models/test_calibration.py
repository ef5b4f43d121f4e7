"""Interval calibration: split-conformal offsets on hand-made arrays, and the model applying them."""

import math

import numpy as np
import pytest
import scipy.stats
import tensorflow as tf
import tf_keras as keras
from toy_data import RQREG_PLAIN, zero_inflated

from models import base, calibration, codebook, registry
from schemas import features

Z90 = scipy.stats.norm.ppf(0.9)
CONFIG = {"embedding_dim": 4, "hidden_units": (8,), "lstm_units": 8, **RQREG_PLAIN}


def _lognormal_rows(n, seed, zero_share=0.0):
    """Labels with t(y) = mu + N(0, 1) (a share of them 0 instead), t = log1p; returns (labels, mu)."""
    rng = np.random.default_rng(seed)
    mu = rng.uniform(3.0, 6.0, size=n)
    labels = np.expm1(mu + rng.normal(size=n))
    labels[rng.uniform(size=n) < zero_share] = 0.0
    return labels, mu


def _covered(labels, lower, upper):
    return calibration.coverage(labels, lower, upper)


def test_a_point_predictor_gets_a_calibrated_interval_around_its_value():
    labels, mu = _lognormal_rows(2000, seed=0)
    point = np.expm1(mu)
    offsets = calibration.interval_offsets(labels, point, point, point, "log1p")
    # Symmetric N(0, 1) residuals in log1p units: each tail needs about the 0.9 quantile.
    assert offsets.lower == pytest.approx(Z90, abs=0.1) and offsets.upper == pytest.approx(Z90, abs=0.1)
    lower, upper = calibration.apply_offsets(point, point, point, offsets, "log1p")
    assert np.all(lower < point) and np.all(point < upper)
    assert _covered(labels, lower, upper) >= math.ceil(2001 * 0.8) / 2000
    new_labels, new_mu = _lognormal_rows(20000, seed=1)
    new_point = np.expm1(new_mu)
    assert _covered(new_labels, *calibration.apply_offsets(new_point, new_point, new_point, offsets, "log1p")) \
        == pytest.approx(0.8, abs=0.03)


def test_true_quantiles_need_offsets_near_zero():
    labels, mu = _lognormal_rows(4000, seed=2)
    offsets = calibration.interval_offsets(labels, np.expm1(mu - Z90), np.expm1(mu + Z90), np.expm1(mu), "log1p")
    assert abs(offsets.lower) < 0.1 and abs(offsets.upper) < 0.1


def test_labels_on_the_bounds_give_zero_offsets():
    # 9 rows, alpha 0.2: ceil(10 * 0.8) = 8 must be covered, so one row may miss.
    median = np.full(9, 10.0)
    lower, upper = np.full(9, 5.0), np.full(9, 20.0)
    labels = np.array([5.0] * 4 + [20.0] * 4 + [np.expm1(np.log1p(20.0) + 1.0)])
    offsets = calibration.interval_offsets(labels, lower, upper, median, "log1p")
    assert offsets == calibration.Offsets(calibration.ROUNDING_MARGIN, calibration.ROUNDING_MARGIN)
    assert _covered(labels, *calibration.apply_offsets(lower, upper, median, offsets, "log1p")) == 8 / 9


def test_a_too_wide_interval_is_shrunk_to_nominal_coverage():
    labels, mu = _lognormal_rows(2000, seed=3)
    lower, upper, median = np.expm1(mu - 3.0), np.expm1(mu + 3.0), np.expm1(mu)
    assert _covered(labels, lower, upper) > 0.99
    offsets = calibration.interval_offsets(labels, lower, upper, median, "log1p")
    assert offsets.lower == pytest.approx(Z90 - 3.0, abs=0.1) and offsets.upper == pytest.approx(Z90 - 3.0, abs=0.1)
    new_labels, new_mu = _lognormal_rows(20000, seed=4)
    new = calibration.apply_offsets(np.expm1(new_mu - 3.0), np.expm1(new_mu + 3.0), np.expm1(new_mu), offsets, "log1p")
    assert _covered(new_labels, *new) == pytest.approx(0.8, abs=0.03)


def test_zero_labels_are_covered_by_a_lower_bound_of_zero_and_the_lower_tail_passes_its_share():
    # 30% zeros: the exact 10% quantile is 0 and the 90% one is mu + z((0.9 - 0.3) / 0.7), so the
    # model's interval covers 0.3 + 0.7 * 0.6 / 0.7 = 0.9; no row can miss below a bound of 0.
    share = 0.3
    z_upper = scipy.stats.norm.ppf((0.9 - share) / (1 - share))
    z_median = scipy.stats.norm.ppf((0.5 - share) / (1 - share))

    def model_interval(mu):
        return np.zeros_like(mu), np.expm1(mu + z_upper), np.expm1(mu + z_median)

    labels, mu = _lognormal_rows(4000, seed=5, zero_share=share)
    assert _covered(labels, *model_interval(mu)[:2]) == pytest.approx(0.9, abs=0.02)
    offsets = calibration.interval_offsets(labels, *model_interval(mu), "log1p")
    assert offsets.upper < 0
    new_labels, new_mu = _lognormal_rows(20000, seed=6, zero_share=share)
    lower, upper = calibration.apply_offsets(*model_interval(new_mu), offsets, "log1p")
    assert np.all(lower == 0.0)
    assert _covered(new_labels, lower, upper) == pytest.approx(0.8, abs=0.03)
    zero = new_labels == 0
    assert _covered(new_labels[zero], lower[zero], upper[zero]) == 1.0


def test_quantile_offsets_make_each_bound_its_own_quantile_where_the_interval_passes_its_misses():
    # 30% zeros, a model whose upper bound is the exact 90% quantile and whose lower bound is 0: the
    # served 80% interval moves its upper bound down to about the 80% quantile (the lower tail misses
    # nothing); the quantile offsets leave each bound where it is, the 90% and the 10% quantile.
    share = 0.3
    z_upper = scipy.stats.norm.ppf((0.9 - share) / (1 - share))
    z_median = scipy.stats.norm.ppf((0.5 - share) / (1 - share))

    def outputs(mu):
        median = np.expm1(mu + z_median)
        return np.zeros_like(mu), np.expm1(mu + z_upper), median, median

    labels, mu = _lognormal_rows(4000, seed=5, zero_share=share)
    served = calibration.grouped_offsets(labels, *outputs(mu), "log1p", groups=2)
    own = calibration.quantile_offsets(labels, *outputs(mu), "log1p", groups=2)
    assert own.thresholds == served.thresholds
    new_labels, new_mu = _lognormal_rows(20000, seed=6, zero_share=share)
    _, served_upper = calibration.apply_grouped(*outputs(new_mu), served, "log1p")
    q10, q90 = calibration.apply_grouped(*outputs(new_mu), own, "log1p")
    assert np.mean(new_labels <= served_upper) == pytest.approx(0.8, abs=0.03)
    assert np.mean(new_labels <= q90) == pytest.approx(0.9, abs=0.02)
    assert np.all(q10 == 0.0) and np.mean(new_labels >= q10) >= 0.9
    # Scored as a 90% quantile, the exact one wins over the interval's bound.
    from models import scoring_rules
    assert scoring_rules.pinball_loss(new_labels, q90, 0.9).mean() < scoring_rules.pinball_loss(
        new_labels, served_upper, 0.9).mean()


@pytest.mark.parametrize("seed", range(20))
def test_held_out_coverage_is_at_least_the_conformal_rank(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(10, 300))
    labels = np.where(rng.uniform(size=n) < rng.uniform(0, 0.8), 0.0, np.expm1(rng.uniform(0, 6, size=n)))
    median = np.where(rng.uniform(size=n) < 0.3, 0.0, np.expm1(rng.uniform(0, 6, size=n)))
    lower = np.where(rng.uniform(size=n) < 0.5, 0.0, median * rng.uniform(0, 1, size=n))
    upper = median * rng.uniform(1, 3, size=n)
    for alpha in (0.2, 0.5):
        offsets = calibration.interval_offsets(labels, lower, upper, median, "log1p", alpha)
        calibrated = calibration.apply_offsets(lower, upper, median, offsets, "log1p")
        assert _covered(labels, *calibrated) >= math.ceil((n + 1) * (1 - alpha)) / n


def test_a_tail_with_too_few_rows_that_can_miss_keeps_the_model_bound():
    # One row of 100 can miss below (y < m with a positive lower bound), and is covered with room to
    # spare: its tail may miss 9 rows, so any offset would do; it stays 0 rather than shrinking.
    labels = np.full(100, 10.0)
    labels[0] = 3.0
    lower, median, upper = np.full(100, 2.0), np.full(100, 10.0), np.full(100, 20.0)
    assert calibration.interval_offsets(labels, lower, upper, median, "log1p").lower == 0.0


def test_a_widened_lower_bound_is_clipped_at_zero_and_covers_a_zero_label():
    lower, upper = calibration.apply_offsets(np.array([1.0, 50.0]), np.array([1.0, 50.0]), np.array([1.0, 50.0]),
                                             calibration.Offsets(2.0, 0.5), "log1p")
    assert lower[0] == 0.0 and lower[1] == pytest.approx(np.expm1(np.log1p(50.0) - 2.0))
    assert upper == pytest.approx(np.expm1(np.log1p([1.0, 50.0]) + 0.5))
    assert _covered(np.array([0.0, 10.0]), lower, upper) == 1.0


def test_a_shrunk_interval_keeps_its_median():
    lower, upper = calibration.apply_offsets(np.array([5.0]), np.array([20.0]), np.array([10.0]),
                                             calibration.Offsets(-3.0, -3.0), "log1p")
    assert lower[0] == 10.0 and upper[0] == 10.0


def test_identity_transform_offsets_are_in_label_units():
    lower, upper = calibration.apply_offsets(np.array([5.0]), np.array([20.0]), np.array([10.0]),
                                             calibration.Offsets(2.0, 3.0), "identity")
    assert lower[0] == 3.0 and upper[0] == 23.0


def _heteroscedastic_rows(n, seed):
    """A point predictor whose log1p residual spread grows with its prediction: sd 0.3 below, 2.0 in the
    top quarter. Returns (labels, point)."""
    rng = np.random.default_rng(seed)
    mu = rng.uniform(1.0, 7.0, size=n)
    sd = np.where(mu > 5.5, 2.0, 0.3)
    return np.expm1(np.maximum(mu + sd * rng.normal(size=n), 0.0)), np.expm1(mu)


def test_grouped_offsets_cover_every_predicted_value_group_where_one_offset_does_not():
    labels, point = _heteroscedastic_rows(4000, seed=10)
    single = calibration.interval_offsets(labels, point, point, point, "log1p")
    grouped = calibration.grouped_offsets(labels, point, point, point, point, "log1p", groups=4)
    assert len(grouped.offsets) == 4 and len(grouped.thresholds) == 3
    # The top group's residuals are wider: its offsets are larger than the bottom group's.
    assert grouped.offsets[-1].upper > 3 * grouped.offsets[0].upper
    new_labels, new_point = _heteroscedastic_rows(20000, seed=11)
    one = calibration.apply_offsets(new_point, new_point, new_point, single, "log1p")
    per_group = calibration.apply_grouped(new_point, new_point, new_point, new_point, grouped, "log1p")
    assert _covered(new_labels, *per_group) == pytest.approx(0.8, abs=0.03)
    by_group = calibration.group_coverage(new_labels, *per_group, new_point, grouped)
    assert all(c == pytest.approx(0.8, abs=0.04) for c in by_group)
    # One offset for all: the top group is under-covered, the others over-covered.
    marginal = calibration.group_coverage(new_labels, *one, new_point, grouped)
    assert marginal[-1] < 0.7 and min(marginal[:-1]) > 0.85


def test_group_thresholds_need_enough_rows_and_skip_ties():
    assert calibration.group_thresholds(np.arange(1000.0), 4, min_rows=100) == (250.0, 500.0, 750.0)
    assert calibration.group_thresholds(np.arange(250.0), 4, min_rows=100) == (125.0,)  # 2 groups fit
    assert calibration.group_thresholds(np.arange(99.0), 4, min_rows=100) == ()
    # 70% of the predictions tie at 0: no threshold may split inside the tie.
    tied = np.concatenate([np.zeros(700), np.arange(1.0, 301.0)])
    thresholds = calibration.group_thresholds(tied, 4, min_rows=100)
    groups = np.searchsorted(thresholds, tied, side="right")
    assert np.all(groups[:700] == 0) and all(np.sum(groups == g) >= 100 for g in range(len(thresholds) + 1))


def test_one_group_is_the_marginal_scheme():
    labels, point = _heteroscedastic_rows(1000, seed=12)
    grouped = calibration.grouped_offsets(labels, point, point, point, point, "log1p", groups=1)
    assert grouped == calibration.GroupedOffsets((), (calibration.interval_offsets(labels, point, point, point,
                                                                                   "log1p"),))


@pytest.mark.parametrize("call, message", [
    (lambda: calibration.miss_budget(100, 1.5), "alpha"),
    (lambda: calibration.miss_budget(3, 0.2), "too few"),
    (lambda: calibration.interval_offsets([1.0, 2.0], [1.0], [1.0, 2.0], [1.0, 2.0], "log1p"), "one length"),
    (lambda: calibration.forward([1.0], "sqrt"), "sqrt"),
    (lambda: calibration.group_thresholds([1.0] * 200, 0), "interval_groups"),
    (lambda: calibration.GroupedOffsets((1.0,), (calibration.Offsets(),)), "one more offset"),
    (lambda: calibration.GroupedOffsets((2.0, 1.0), (calibration.Offsets(),) * 3), "increasing"),
])
def test_bad_arguments_fail_naming_the_value(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ----------------------------------------------------------------------------------------------
# The model: predict_outputs applies the offsets to lower/upper only; calibrate_model sets them.


def _model(kind, labels, target, groups=1):
    context = base.TrainContext(numeric_keys=("x",), vocab_sizes={"c": 4}, label_transform="log1p",
                                train_labels=labels, codebook_levels=tuple(codebook.fit(target, (4, 3))),
                                interval_groups=groups)
    return registry.build(kind, CONFIG, context)


@pytest.mark.parametrize("kind", ("mse", "ziln", "twostage"))
def test_predict_outputs_applies_the_offsets_to_lower_and_upper_only(kind):
    keras.utils.set_random_seed(0)
    inputs, target, labels = zero_inflated(64)
    model = _model(kind, labels, target)
    before = {k: v.numpy() for k, v in model.predict_outputs(inputs).items()}
    assert not any(v is model.interval_offsets for v in model.trainable_variables)
    offsets = calibration.Offsets(0.7, 0.4)
    model.set_interval_offsets(offsets)
    after = {k: v.numpy() for k, v in model.predict_outputs(inputs).items()}
    np.testing.assert_array_equal(after["prediction"], before["prediction"])
    np.testing.assert_array_equal(after["median"], before["median"])
    lower, upper = calibration.apply_offsets(before["lower"], before["upper"], before["median"], offsets, "log1p")
    np.testing.assert_allclose(after["lower"], lower, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(after["upper"], np.minimum(upper, model.prediction_cap), rtol=1e-4, atol=1e-5)
    assert np.all(after["lower"] <= after["median"]) and np.all(after["median"] <= after["upper"])


def test_predict_outputs_applies_the_offsets_of_each_rows_predicted_value_group():
    keras.utils.set_random_seed(0)
    inputs, target, labels = zero_inflated(64)
    model = _model("ziln", labels, target, groups=3)
    before = {k: v.numpy() for k, v in model.predict_outputs(inputs).items()}
    thresholds = tuple(float(t) for t in np.quantile(before["prediction"], [1 / 3, 2 / 3]))
    grouped = calibration.GroupedOffsets(thresholds, (calibration.Offsets(0.1, 0.2), calibration.Offsets(0.5, 0.6),
                                                      calibration.Offsets(1.0, 1.5)))
    model.set_interval_offsets(grouped)
    after = {k: v.numpy() for k, v in model.predict_outputs(inputs).items()}
    lower, upper = calibration.apply_grouped(before["lower"], before["upper"], before["median"], before["prediction"],
                                             grouped, "log1p")
    np.testing.assert_allclose(after["lower"], lower, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(after["upper"], np.minimum(upper, model.prediction_cap), rtol=1e-4, atol=1e-5)
    # Fewer calibrated groups than the model holds: the unused ones are never selected.
    model.set_interval_offsets(calibration.GroupedOffsets((thresholds[0],), grouped.offsets[:2]))
    fewer = {k: v.numpy() for k, v in model.predict_outputs(inputs).items()}
    two = calibration.GroupedOffsets((thresholds[0],), grouped.offsets[:2])
    np.testing.assert_allclose(fewer["upper"], np.minimum(calibration.apply_grouped(
        before["lower"], before["upper"], before["median"], before["prediction"], two, "log1p")[1],
        model.prediction_cap), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="interval_groups"):
        model.set_interval_offsets(calibration.GroupedOffsets((1.0, 2.0, 3.0), (calibration.Offsets(),) * 4))


def test_calibrate_model_sets_offsets_that_the_saved_model_serves(tmp_path):
    keras.utils.set_random_seed(0)
    inputs, target, labels = zero_inflated(200)
    model = _model("mse", labels, target)
    dataset = tf.data.Dataset.from_tensor_slices((inputs, target)).batch(64)
    lines = []
    summary = calibration.calibrate_model(model, dataset, log=lines.append)
    assert len(lines) == 1 and f"{summary['coverage_before']:.3f} -> {summary['coverage_after']:.3f}" in lines[0]
    assert summary["coverage_before"] < 0.5 and summary["rows"] == 200  # untrained: only the zeros it clips to 0
    assert summary["coverage_after"] >= math.ceil(201 * 0.8) / 200
    np.testing.assert_allclose(model.interval_offsets.numpy(), [[summary["offset_lower"][0], summary["offset_upper"][0]]],
                               rtol=1e-6)

    x_key, c_key = features.transformed_name("x"), features.transformed_name("c")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32), tf.TensorSpec([None], tf.int64)])
    def serve(x, c):
        return model.predict_outputs({x_key: x, c_key: c})

    tf.saved_model.save(model, str(tmp_path), signatures={"serving_default": serve})
    served = tf.saved_model.load(str(tmp_path)).signatures["serving_default"](
        x=tf.constant(inputs[x_key]), c=tf.constant(inputs[c_key]))
    assert calibration.coverage(labels, served["lower"].numpy(), served["upper"].numpy()) == \
        pytest.approx(summary["coverage_after"], abs=1.0 / 200)
    assert np.all(served["lower"].numpy() < served["upper"].numpy())
