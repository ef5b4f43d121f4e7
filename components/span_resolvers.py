"""Resolvers for retraining on spans: the rolling window, the analyzer cache and the warm-start model.

Each run ingests one span (see feature_store_example_gen). Then:
  - `rolling_window_resolver`: the Examples of the latest `num_spans` distinct spans up to the
    span this run ingested, the newest ingestion of each (a span ingested again after its data
    changed replaces the older copy). Transform analyses them and the Trainer trains on them.
  - `analyzer_cache_resolver`: the newest Transform analyzer cache, so analysis of spans already
    seen is read from the cache instead of recomputed.
  - `warm_start_resolver`: the newest blessed model, whose weights start the Trainer.

The last two take only artifacts produced from spans *before* the one this run ingested. In the
normal course (a new span each run) that is simply the newest one. When a run ingests no new span
it makes them resolve to the same artifacts as the previous run did, so Transform, Trainer and
everything after them come from the pipeline cache: a run without new data trains nothing.

The span this run ingests is part of each resolver's configuration (the launcher knows it before
the run). It cannot come from the ingestion's output channel: a resolver's input channels query
every run, and the compiler merges two channels of the same output into one.

TFX's SpanRangeStrategy is not used: it counts span numbers arithmetically (spans here are dates)
and returns every ingestion of a span, not the newest.
"""

from typing import Dict, Iterable, List, Optional, Set

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2
from tfx import types
from tfx import v1 as tfx
from tfx.components.evaluator import constants as evaluator_constants

EXAMPLES_KEY = "examples"
CANDIDATES_KEY = "candidates"
BLESSINGS_KEY = "blessings"
_EXAMPLES_TYPE = "Examples"
# Upstream hops from an artifact to the ingested Examples it came from: a model comes from
# transformed examples, which come from ingested examples.
_MAX_HOPS = 3


def rolling_window(ingested: List[types.Artifact], span: int, num_spans: int) -> List[types.Artifact]:
    """The newest ingestion of each of the latest `num_spans` spans up to `span`, newest span first."""
    newest: Dict[int, types.Artifact] = {}
    for artifact in sorted(ingested, key=lambda a: a.id):
        if artifact.span <= span:
            newest[artifact.span] = artifact
    spans = sorted(newest, reverse=True)[:num_spans]
    return [newest[s] for s in spans]


class RollingWindowStrategy(tfx.dsl.experimental.ResolverStrategy):
    """`examples`: every ingestion -> the window ending at `span`, as `examples` (None if `span` is missing)."""

    def __init__(self, num_spans: int, span: int):
        self._num_spans, self._span = int(num_spans), int(span)

    def resolve_artifacts(self, store: mlmd.MetadataStore, input_dict: Dict[str, List[types.Artifact]]
                          ) -> Optional[Dict[str, List[types.Artifact]]]:
        del store
        window = rolling_window(input_dict.get(EXAMPLES_KEY, []), self._span, self._num_spans)
        if not window or window[0].span != self._span:
            return None  # this run's span was not ingested: nothing downstream may run
        return {EXAMPLES_KEY: window}


def source_spans(store: mlmd.MetadataStore, artifact_id: int) -> Set[int]:
    """The spans of the ingested Examples an artifact was computed from, following its lineage in MLMD."""
    examples_type = store.get_artifact_type(_EXAMPLES_TYPE).id
    spans: Set[int] = set()
    frontier, seen = [artifact_id], {artifact_id}
    for _ in range(_MAX_HOPS):
        producers = {e.execution_id for e in store.get_events_by_artifact_ids(frontier)
                     if e.type == metadata_store_pb2.Event.OUTPUT}
        if not producers:
            break
        inputs = {e.artifact_id for e in store.get_events_by_execution_ids(list(producers))
                  if e.type == metadata_store_pb2.Event.INPUT} - seen
        seen |= inputs
        frontier = []
        for artifact in store.get_artifacts_by_id(list(inputs)):
            if artifact.type_id != examples_type:
                continue  # schema, transform graph, a base model or cache: not the training data
            frontier.append(artifact.id)
            if "span" in artifact.properties:
                spans.add(artifact.properties["span"].int_value)
        if not frontier:
            break
    return spans


def newest_before(store: mlmd.MetadataStore, artifacts: Iterable[types.Artifact], span: int
                  ) -> Optional[types.Artifact]:
    """The newest artifact computed only from spans earlier than `span`."""
    for artifact in sorted(artifacts, key=lambda a: a.id, reverse=True):
        spans = source_spans(store, artifact.id)
        if spans and max(spans) < span:
            return artifact
    return None


def _blessed_ids(blessings: Iterable[types.Artifact]) -> Set[int]:
    return {b.get_int_custom_property(evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY)
            for b in blessings
            if b.get_int_custom_property(evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY) == 1}


class NewestBeforeSpanStrategy(tfx.dsl.experimental.ResolverStrategy):
    """`candidates` (all of one type; models need `blessings` too) -> the newest one computed only
    from spans before `span`, as `candidates` (empty when there is none)."""

    def __init__(self, span: int):
        self._span = int(span)

    def resolve_artifacts(self, store: mlmd.MetadataStore, input_dict: Dict[str, List[types.Artifact]]
                          ) -> Optional[Dict[str, List[types.Artifact]]]:
        candidates = input_dict.get(CANDIDATES_KEY, [])
        if BLESSINGS_KEY in input_dict:
            blessed = _blessed_ids(input_dict[BLESSINGS_KEY])
            candidates = [c for c in candidates if c.id in blessed]
        chosen = newest_before(store, candidates, self._span)
        result = {CANDIDATES_KEY: [chosen] if chosen else []}
        if BLESSINGS_KEY in input_dict:
            result[BLESSINGS_KEY] = []
        return result


def rolling_window_resolver(example_gen, span: int, num_spans: int) -> tfx.dsl.Resolver:
    """`.outputs['examples']`: the window for Transform and the Trainer (runs after `example_gen`)."""
    return tfx.dsl.Resolver(
        strategy_class=RollingWindowStrategy,
        config={"num_spans": num_spans, "span": span},
        examples=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Examples,
                                 producer_component_id=example_gen.id, output_key="examples"),
    ).with_id("rolling_window_resolver")


def _newest_before_resolver(node_id: str, span: int, **channels) -> tfx.dsl.Resolver:
    return tfx.dsl.Resolver(strategy_class=NewestBeforeSpanStrategy, config={"span": span},
                            **channels).with_id(node_id)


def analyzer_cache_resolver(span: int) -> tfx.dsl.Resolver:
    """`.outputs['candidates']`: the Transform analyzer cache to start from (may be empty)."""
    return _newest_before_resolver(
        "analyzer_cache_resolver", span,
        candidates=tfx.dsl.Channel(type=tfx.types.standard_artifacts.TransformCache))


def warm_start_resolver(span: int) -> tfx.dsl.Resolver:
    """`.outputs['candidates']`: the blessed model whose weights start training (may be empty)."""
    return _newest_before_resolver(
        "warm_start_resolver", span,
        candidates=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        blessings=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing))
