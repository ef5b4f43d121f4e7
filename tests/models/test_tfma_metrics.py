"""Tests for the TFMA custom metrics in models/tfma_metrics.py."""

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing import util
from tensorflow_model_analysis.metrics import metric_specs, metric_types, metric_util
from tensorflow_model_analysis.proto import config_pb2

from models import metrics, tfma_metrics

METRICS = [
    (tfma_metrics.NormalizedGini, metrics.normalized_gini, "normalized_gini"),
    (tfma_metrics.Spearman, metrics.spearman, "spearman"),
    (tfma_metrics.XAUC, metrics.xauc, "xauc"),
]


def _labels_and_predictions(size=120, seed=3):
    """Zero-inflated labels and rounded (hence partly tied) predictions."""
    rng = np.random.default_rng(seed)
    labels = np.round(rng.lognormal(size=size) * (rng.random(size) < 0.4), 1)
    predictions = np.round(labels + rng.normal(size=size), 0)
    return labels, predictions


def _extracts(labels, predictions, weights):
    """One TFMA extract per row, as TFMA's own regression-metric tests build them."""
    return [
        {
            "labels": np.array([label]),
            "predictions": np.array([prediction]),
            "example_weights": np.array([weight]),
        }
        for label, prediction, weight in zip(labels, predictions, weights)
    ]


def _assert_beam_output(computation, extracts, expected):
    """Runs a computation's combiner over extracts in a Beam pipeline and checks its output."""

    def check(got):
        try:
            assert got == [((), expected)]
        except AssertionError as error:
            raise util.BeamAssertException(error)

    with beam.Pipeline() as pipeline:
        result = (
            pipeline
            | "Create" >> beam.Create(extracts)
            | "Process" >> beam.Map(metric_util.to_standard_metric_inputs)
            | "AddSlice" >> beam.Map(lambda x: ((), x))
            | "ComputeMetric" >> beam.CombinePerKey(computation.combiner)
        )
        util.assert_that(result, check)


def _combine_directly(combiner, extracts):
    """Adds extracts to a fresh accumulator without Beam; returns the accumulator."""
    accumulator = combiner.create_accumulator()
    for extract in extracts:
        element = metric_util.to_standard_metric_inputs(extract)
        accumulator = combiner.add_input(accumulator, element)
    return accumulator


@pytest.mark.parametrize("metric_class, metric_fn, name", METRICS)
def test_beam_result_equals_numpy_metric(metric_class, metric_fn, name):
    labels, predictions = _labels_and_predictions()
    (computation,) = metric_class().computations(example_weighted=False)
    key = metric_types.MetricKey(name=name, example_weighted=False)
    assert computation.keys == [key]

    _assert_beam_output(
        computation,
        _extracts(labels, predictions, np.ones_like(labels)),
        {key: pytest.approx(metric_fn(labels, predictions))},
    )


@pytest.mark.parametrize("metric_class, metric_fn, name", METRICS)
def test_equal_example_weights_leave_the_metric_unchanged(metric_class, metric_fn, name):
    labels, predictions = _labels_and_predictions()
    (computation,) = metric_class().computations(example_weighted=True)
    key = metric_types.MetricKey(name=name, example_weighted=True)

    _assert_beam_output(
        computation,
        _extracts(labels, predictions, np.full_like(labels, 2.5)),
        {key: pytest.approx(metric_fn(labels, predictions))},
    )


def test_zero_weight_rows_are_dropped():
    labels, predictions = _labels_and_predictions()
    weights = np.where(np.arange(labels.size) % 3 == 0, 0.0, 1.0)
    (computation,) = tfma_metrics.XAUC().computations(example_weighted=True)
    combiner = computation.combiner

    output = combiner.extract_output(
        _combine_directly(combiner, _extracts(labels, predictions, weights))
    )

    kept = weights > 0
    expected = metrics.xauc(labels[kept], predictions[kept])
    assert output == {computation.keys[0]: pytest.approx(expected)}


def test_unequal_example_weights_are_rejected():
    labels, predictions = _labels_and_predictions()
    weights = np.linspace(1.0, 2.0, labels.size)
    (computation,) = tfma_metrics.Spearman().computations(example_weighted=True)
    combiner = computation.combiner
    accumulator = _combine_directly(combiner, _extracts(labels, predictions, weights))

    with pytest.raises(ValueError, match="unequal example weights"):
        combiner.extract_output(accumulator)


def test_empty_slice_gives_nan():
    (computation,) = tfma_metrics.NormalizedGini().computations()
    combiner = computation.combiner

    output = combiner.extract_output(combiner.create_accumulator())

    assert np.isnan(output[computation.keys[0]])


def test_sample_is_bounded_deterministic_and_drawn_from_the_input():
    labels, predictions = _labels_and_predictions(size=400)
    extracts = _extracts(labels, predictions, np.ones_like(labels))
    (computation,) = tfma_metrics.Spearman(max_sample_size=50).computations()
    combiner = computation.combiner

    def merged_sample():
        parts = [_combine_directly(combiner, extracts[start::3]) for start in range(3)]
        return combiner.merge_accumulators(parts)

    first, second = merged_sample(), merged_sample()

    assert len(first) == 50 and first.seen == 400
    np.testing.assert_array_equal(first.arrays()[0], second.arrays()[0])
    assert combiner.extract_output(first) == combiner.extract_output(second)
    input_rows = set(zip(labels, predictions))
    sampled_labels, sampled_predictions, _ = first.arrays()
    assert set(zip(sampled_labels, sampled_predictions)) <= input_rows


def test_reservoir_sample_is_uniform():
    reservoir = tfma_metrics._Reservoir(capacity=1000)
    for value in range(10_000):
        reservoir.add((float(value), 0.0, 1.0))

    sampled = reservoir.arrays()[0]

    assert len(np.unique(sampled)) == 1000
    assert np.mean(sampled) == pytest.approx(4999.5, rel=0.05)
    assert np.mean(sampled >= 5000) == pytest.approx(0.5, abs=0.05)


def test_reservoir_merge_draws_in_proportion_to_rows_seen():
    small, large = tfma_metrics._Reservoir(capacity=1000), tfma_metrics._Reservoir(capacity=1000)
    for _ in range(2000):
        small.add((0.0, 0.0, 1.0))
    for _ in range(8000):
        large.add((1.0, 0.0, 1.0))

    small.merge(large)

    assert len(small) == 1000 and small.seen == 10_000
    assert np.mean(small.arrays()[0] == 0.0) == pytest.approx(0.2, abs=0.04)


def test_eval_config_can_name_the_metrics_by_module_and_class():
    spec = config_pb2.MetricsSpec(
        metrics=[
            config_pb2.MetricConfig(
                class_name=metric_class.__name__,
                module="models.tfma_metrics",
                config='"max_sample_size": 1000',
            )
            for metric_class, _, _ in METRICS
        ]
    )

    computations = metric_specs.to_computations([spec], config_pb2.EvalConfig())

    names = {key.name for computation in computations for key in computation.keys}
    assert {name for _, _, name in METRICS} <= names
    assert {metric_class.__name__ for metric_class, _, _ in METRICS} <= set(
        metric_types.registered_metrics()
    )
    sample_sizes = {
        computation.combiner.create_accumulator().capacity
        for computation in computations
        if isinstance(computation.combiner, tfma_metrics._SampledMetricCombiner)
    }
    assert sample_sizes == {1000}


def test_max_sample_size_must_be_positive():
    with pytest.raises(ValueError, match="max_sample_size"):
        tfma_metrics.XAUC(max_sample_size=0).computations()


def _interval_extracts(labels, lower, upper, weights):
    """Extracts of a multi-output model: the interval beside the prediction, as the serving signature gives it."""
    return [
        {
            "labels": np.array([label]),
            "predictions": {"prediction": np.array([0.5 * (low + high)]), "lower": np.array([low]),
                            "upper": np.array([high])},
            "example_weights": np.array([weight]),
        }
        for label, low, high, weight in zip(labels, lower, upper, weights)
    ]


def _interval_rows(size=200, seed=4):
    rng = np.random.default_rng(seed)
    labels = np.round(rng.lognormal(size=size) * (rng.random(size) < 0.5), 1)
    lower = np.maximum(labels - rng.normal(0.5, 1.0, size), 0.0)
    upper = labels + rng.normal(0.5, 1.0, size)
    lower[:5], upper[:5] = labels[:5], labels[:5]  # bounds equal to the label count as covered
    return labels, lower, upper


_PREDICTION_KEY_CONFIG = config_pb2.EvalConfig(model_specs=[config_pb2.ModelSpec(prediction_key="prediction")])


def test_interval_coverage_equals_the_numpy_metric_in_beam():
    labels, lower, upper = _interval_rows()
    (computation,) = tfma_metrics.IntervalCoverage().computations(eval_config=_PREDICTION_KEY_CONFIG)
    key = metric_types.MetricKey(name="interval_coverage", example_weighted=False)
    assert computation.keys == [key]
    expected = metrics.interval_coverage(labels, lower, upper)
    assert 0.2 < expected < 0.9
    _assert_beam_output(computation, _interval_extracts(labels, lower, upper, np.ones_like(labels)),
                        {key: pytest.approx(expected)})


def test_weighted_interval_coverage_weighs_each_row():
    labels, lower, upper = _interval_rows()
    weights = np.where(np.arange(labels.size) % 2 == 0, 3.0, 1.0)
    (computation,) = tfma_metrics.IntervalCoverage().computations(eval_config=_PREDICTION_KEY_CONFIG,
                                                                  example_weighted=True)
    combiner = computation.combiner
    output = combiner.extract_output(_combine_directly(combiner, _interval_extracts(labels, lower, upper, weights)))
    covered = (lower <= labels) & (labels <= upper)
    assert output == {computation.keys[0]: pytest.approx(np.sum(weights * covered) / np.sum(weights))}
    assert np.isnan(combiner.extract_output(combiner.create_accumulator())[computation.keys[0]])


def test_interval_coverage_names_the_missing_output():
    (computation,) = tfma_metrics.IntervalCoverage(upper_key="p90").computations(eval_config=_PREDICTION_KEY_CONFIG)
    combiner = computation.combiner
    labels, lower, upper = _interval_rows(size=3)
    with pytest.raises(ValueError, match="'lower' and 'p90'"):
        _combine_directly(combiner, _interval_extracts(labels, lower, upper, np.ones(3)))
