"""TFMA custom metrics that compute the ranking and interval metrics of models/metrics.py."""

import array
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Tuple

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util
from tensorflow_model_analysis.proto import config_pb2

from models import metrics

NORMALIZED_GINI_NAME = "normalized_gini"
SPEARMAN_NAME = "spearman"
XAUC_NAME = "xauc"
INTERVAL_COVERAGE_NAME = "interval_coverage"
DEFAULT_MAX_SAMPLE_SIZE = 500_000
_SAMPLE_SEED = 0

MetricFn = Callable[[np.ndarray, np.ndarray], float]


class _SampledMetric(metric_types.Metric):
    """A numpy metric of (labels, predictions) per slice, on at most `max_sample_size` rows.

    Subclasses name the metric (`default_name`) and its numpy function (`metric_fn`).
    """

    default_name = ""
    metric_fn: MetricFn

    def __init__(self, name: Optional[str] = None, max_sample_size: int = DEFAULT_MAX_SAMPLE_SIZE):
        """Initializes the metric.

        Args:
            name: Metric name (default: the subclass's `default_name`).
            max_sample_size: Most (label, prediction) rows kept per slice; beyond
                that a seeded uniform sample of this size is used.
        """
        super().__init__(
            _sampled_metric_computations(type(self).metric_fn),
            name=name or self.default_name,
            max_sample_size=max_sample_size,
        )


class NormalizedGini(_SampledMetric):
    """Normalized Gini of the gain curve (models.metrics.normalized_gini)."""

    default_name = NORMALIZED_GINI_NAME
    metric_fn = staticmethod(metrics.normalized_gini)


class Spearman(_SampledMetric):
    """Spearman rank correlation (models.metrics.spearman)."""

    default_name = SPEARMAN_NAME
    metric_fn = staticmethod(metrics.spearman)


class XAUC(_SampledMetric):
    """Fraction of concordant pairs (models.metrics.xauc)."""

    default_name = XAUC_NAME
    metric_fn = staticmethod(metrics.xauc)


class IntervalCoverage(metric_types.Metric):
    """Share of labels inside the served interval [lower, upper] (models.metrics.interval_coverage).

    Reads the model's `lower_key` and `upper_key` outputs beside the one named by the ModelSpec's
    `prediction_key`; rows are weighted by their example weight when the metric is example-weighted.
    """

    def __init__(self, name: str = INTERVAL_COVERAGE_NAME, lower_key: str = "lower", upper_key: str = "upper"):
        """Initializes the metric.

        Args:
            name: Metric name.
            lower_key, upper_key: the model outputs that hold the interval's bounds.
        """
        super().__init__(_coverage_computations, name=name, lower_key=lower_key, upper_key=upper_key)


metric_types.register_metric(NormalizedGini)
metric_types.register_metric(Spearman)
metric_types.register_metric(XAUC)
metric_types.register_metric(IntervalCoverage)


def _sampled_metric_computations(
    metric_fn: MetricFn,
) -> Callable[..., metric_types.MetricComputations]:
    """Returns a TFMA create-computations function for a numpy metric.

    Args:
        metric_fn: Function of (labels, predictions) arrays returning a float.

    Returns:
        The function, wrapped to make one computation per model, output and
        sub key, as TFMA's own metrics do.
    """

    def computations(
        name: str,
        max_sample_size: int,
        eval_config: Optional[config_pb2.EvalConfig] = None,
        model_name: str = "",
        output_name: str = "",
        sub_key: Optional[metric_types.SubKey] = None,
        aggregation_type: Optional[metric_types.AggregationType] = None,
        class_weights: Optional[Dict[int, float]] = None,
        example_weighted: bool = False,
    ) -> metric_types.MetricComputations:
        if max_sample_size < 1:
            raise ValueError(f"max_sample_size must be at least 1, got {max_sample_size}")
        key = metric_types.MetricKey(
            name=name,
            model_name=model_name,
            output_name=output_name,
            sub_key=sub_key,
            example_weighted=example_weighted,
        )
        combiner = _SampledMetricCombiner(
            key=key,
            metric_fn=metric_fn,
            max_sample_size=max_sample_size,
            eval_config=eval_config,
            aggregation_type=aggregation_type,
            class_weights=class_weights,
            example_weighted=example_weighted,
        )
        return [metric_types.MetricComputation(keys=[key], preprocessors=None, combiner=combiner)]

    return metric_util.merge_per_key_computations(computations)


class _Reservoir:
    """A seeded uniform sample of at most `capacity` (label, prediction, weight) rows.

    Holds every row until `capacity` is reached, then keeps a uniform sample
    (reservoir sampling, algorithm R). Merging draws from each side in
    proportion to the rows it has seen, so the result is again uniform. The
    random generator has a fixed seed: the same rows, added and merged in the
    same order, give the same sample.
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.seen = 0
        self.columns = tuple(array.array("d") for _ in range(3))
        self._rng = np.random.default_rng(_SAMPLE_SEED)

    def __len__(self) -> int:
        return len(self.columns[0])

    def add(self, row: Tuple[float, float, float]) -> None:
        """Offers one row to the sample."""
        self.seen += 1
        if len(self) < self.capacity:
            for column, value in zip(self.columns, row):
                column.append(value)
            return
        slot = int(self._rng.integers(self.seen))
        if slot < self.capacity:
            for column, value in zip(self.columns, row):
                column[slot] = value

    def merge(self, other: "_Reservoir") -> None:
        """Makes this a uniform sample of the rows seen by both reservoirs."""
        if len(self) + len(other) <= self.capacity:
            for column, other_column in zip(self.columns, other.columns):
                column.extend(other_column)
        else:
            self.columns = self._sample_of_union(other)
        self.seen += other.seen

    def _sample_of_union(self, other: "_Reservoir") -> Tuple[array.array, ...]:
        """`capacity` rows of both samples, drawn in proportion to the rows each has seen."""
        from_self = int(self._rng.hypergeometric(self.seen, other.seen, self.capacity))
        kept_self = self._rng.choice(len(self), size=from_self, replace=False)
        kept_other = self._rng.choice(len(other), size=self.capacity - from_self, replace=False)
        return tuple(
            _float_array(
                np.concatenate([np.asarray(mine)[kept_self], np.asarray(theirs)[kept_other]])
            )
            for mine, theirs in zip(self.columns, other.columns)
        )

    def arrays(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The sampled labels, predictions and weights as float64 arrays."""
        labels, predictions, weights = self.columns
        return np.array(labels), np.array(predictions), np.array(weights)


def _float_array(values: np.ndarray) -> array.array:
    """Copies a float64 numpy array into a compact, growable array.array."""
    return array.array("d", values.tobytes())


class _SampledMetricCombiner(beam.CombineFn):
    """Collects a bounded sample of (label, prediction, weight) rows and scores it.

    The ranking metrics are not weighted: rows with zero example weight are
    dropped, and the remaining weights must all be equal (as they are when
    example_weighted is False), which leaves the metrics unchanged.
    """

    def __init__(
        self,
        key: metric_types.MetricKey,
        metric_fn: MetricFn,
        max_sample_size: int,
        eval_config: Optional[config_pb2.EvalConfig],
        aggregation_type: Optional[metric_types.AggregationType],
        class_weights: Optional[Dict[int, float]],
        example_weighted: bool,
    ):
        self._key = key
        self._metric_fn = metric_fn
        self._max_sample_size = max_sample_size
        self._eval_config = eval_config
        self._aggregation_type = aggregation_type
        self._class_weights = class_weights
        self._example_weighted = example_weighted

    def create_accumulator(self) -> _Reservoir:
        return _Reservoir(self._max_sample_size)

    def add_input(
        self, accumulator: _Reservoir, element: metric_types.StandardMetricInputs
    ) -> _Reservoir:
        for label, prediction, example_weight in metric_util.to_label_prediction_example_weight(
            element,
            eval_config=self._eval_config,
            model_name=self._key.model_name,
            output_name=self._key.output_name,
            aggregation_type=self._aggregation_type,
            class_weights=self._class_weights,
            example_weighted=self._example_weighted,
            sub_key=self._key.sub_key,
        ):
            weight = float(metric_util.safe_to_scalar(example_weight))
            if weight != 0.0:
                accumulator.add(
                    (
                        float(metric_util.safe_to_scalar(label)),
                        float(metric_util.safe_to_scalar(prediction)),
                        weight,
                    )
                )
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[_Reservoir]) -> _Reservoir:
        accumulators = iter(accumulators)
        result = next(accumulators)
        for accumulator in accumulators:
            result.merge(accumulator)
        return result

    def extract_output(self, accumulator: _Reservoir) -> Dict[metric_types.MetricKey, float]:
        if not len(accumulator):
            return {self._key: float("nan")}
        labels, predictions, weights = accumulator.arrays()
        if not np.all(weights == weights[0]):
            raise ValueError(
                f"{self._key.name} does not support unequal example weights; "
                "set example_weights { unweighted: true } in its MetricsSpec"
            )
        return {self._key: self._metric_fn(labels, predictions)}


def _coverage_computations(
    name: str,
    lower_key: str,
    upper_key: str,
    eval_config: Optional[config_pb2.EvalConfig] = None,
    model_names: Optional[List[str]] = None,
    output_names: Optional[List[str]] = None,
    sub_keys: Optional[List[metric_types.SubKey]] = None,
    example_weighted: bool = False,
) -> metric_types.MetricComputations:
    """One IntervalCoverage computation per model (the bounds are read from the model's whole output)."""
    computations = []
    for model_name in model_names or [""]:
        key = metric_types.MetricKey(name=name, model_name=model_name, example_weighted=example_weighted)
        combiner = _CoverageCombiner(key, lower_key, upper_key, eval_config, example_weighted)
        computations.append(metric_types.MetricComputation(keys=[key], preprocessors=None, combiner=combiner))
    return computations


class _CoverageCombiner(beam.CombineFn):
    """Sums the example weight of the rows whose label lies in [lower, upper]
    (models.metrics.interval_covered) and of all rows; the metric is their ratio. The accumulator is
    two floats, so it merges exactly and in constant memory."""

    def __init__(self, key: metric_types.MetricKey, lower_key: str, upper_key: str,
                 eval_config: Optional[config_pb2.EvalConfig], example_weighted: bool):
        self._key = key
        self._lower_key = lower_key
        self._upper_key = upper_key
        self._eval_config = eval_config
        self._example_weighted = example_weighted

    def create_accumulator(self) -> List[float]:
        return [0.0, 0.0]  # covered weight, total weight

    def add_input(self, accumulator: List[float], element: metric_types.StandardMetricInputs) -> List[float]:
        outputs = element.get_predictions(self._key.model_name or None)
        if not isinstance(outputs, Mapping) or self._lower_key not in outputs or self._upper_key not in outputs:
            found = sorted(outputs) if isinstance(outputs, Mapping) else type(outputs).__name__
            raise ValueError(f"{self._key.name}: the model outputs must include '{self._lower_key}' and "
                             f"'{self._upper_key}'; found {found}")
        rows = list(metric_util.to_label_prediction_example_weight(
            element, eval_config=self._eval_config, model_name=self._key.model_name,
            example_weighted=self._example_weighted))
        if not rows:
            return accumulator
        labels = np.array([float(metric_util.safe_to_scalar(label)) for label, _, _ in rows])
        weights = np.array([float(metric_util.safe_to_scalar(weight)) for _, _, weight in rows])
        covered = metrics.interval_covered(labels, np.asarray(outputs[self._lower_key], np.float64).reshape(-1),
                                           np.asarray(outputs[self._upper_key], np.float64).reshape(-1))
        accumulator[0] += float(np.sum(weights * covered))
        accumulator[1] += float(np.sum(weights))
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[List[float]]) -> List[float]:
        accumulators = iter(accumulators)
        result = next(accumulators)
        for covered, total in accumulators:
            result[0] += covered
            result[1] += total
        return result

    def extract_output(self, accumulator: List[float]) -> Dict[metric_types.MetricKey, float]:
        covered, total = accumulator
        return {self._key: covered / total if total > 0 else float("nan")}
