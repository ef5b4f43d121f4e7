"""Span resolvers: the rolling window, and 'newest computed only from earlier spans' over MLMD lineage."""

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.types import standard_artifacts

from components import span_resolvers


def _examples(artifact_id, span):
    artifact = standard_artifacts.Examples()
    artifact.id = artifact_id
    artifact.span = span
    return artifact


def test_window_takes_the_latest_spans_up_to_the_ingested_one():
    ingested = [_examples(1, 20240101), _examples(2, 20240108), _examples(3, 20240115), _examples(4, 20240122)]
    window = span_resolvers.rolling_window(ingested, 20240115, num_spans=2)
    assert [a.id for a in window] == [3, 2]  # a later span (a backfill ran after it) stays out


def test_window_takes_the_newest_ingestion_of_a_span():
    ingested = [_examples(1, 20240101), _examples(2, 20240108), _examples(5, 20240101)]
    window = span_resolvers.rolling_window(ingested, 20240108, num_spans=3)
    assert [a.id for a in window] == [2, 5]


def test_window_is_shorter_while_few_spans_exist():
    first = _examples(1, 20240101)
    assert [a.id for a in span_resolvers.rolling_window([first], 20240101, num_spans=4)] == [1]


class _Lineage:
    """An in-memory ML Metadata store with ingestion -> Transform -> Trainer executions."""

    def __init__(self):
        config = metadata_store_pb2.ConnectionConfig()
        config.fake_database.SetInParent()
        self.store = metadata_store.MetadataStore(config)
        self.types = {}
        for name, properties in (("Examples", {"span": metadata_store_pb2.INT}), ("Model", {}),
                                 ("TransformCache", {})):
            artifact_type = metadata_store_pb2.ArtifactType(name=name, properties=properties)
            self.types[name] = self.store.put_artifact_type(artifact_type)
        self.execution_type = self.store.put_execution_type(metadata_store_pb2.ExecutionType(name="step"))

    def artifact(self, type_name, span=None):
        artifact = metadata_store_pb2.Artifact(type_id=self.types[type_name])
        if span is not None:
            artifact.properties["span"].int_value = span
        return self.store.put_artifacts([artifact])[0]

    def execution(self, inputs, outputs):
        [execution_id] = self.store.put_executions([metadata_store_pb2.Execution(type_id=self.execution_type)])
        events = [metadata_store_pb2.Event(artifact_id=a, execution_id=execution_id, type=metadata_store_pb2.Event.INPUT)
                  for a in inputs]
        events += [metadata_store_pb2.Event(artifact_id=a, execution_id=execution_id,
                                            type=metadata_store_pb2.Event.OUTPUT) for a in outputs]
        self.store.put_events(events)

    def run(self, spans, base_model=None):
        """One run over `spans`: returns (model id, cache id)."""
        raw = []
        for span in spans:
            raw.append(self.artifact("Examples", span))
            self.execution([], [raw[-1]])
        transformed, cache = self.artifact("Examples"), self.artifact("TransformCache")
        self.execution(raw, [transformed, cache])
        model = self.artifact("Model")
        self.execution([transformed] + ([base_model] if base_model else []), [model])
        return model, cache


def _model(artifact_id):
    model = standard_artifacts.Model()
    model.id = artifact_id
    return model


def test_source_spans_follow_the_training_data_and_not_the_base_model():
    lineage = _Lineage()
    first, _ = lineage.run([20240101])
    second, cache = lineage.run([20240101, 20240108], base_model=first)
    assert span_resolvers.source_spans(lineage.store, second) == {20240101, 20240108}
    assert span_resolvers.source_spans(lineage.store, cache) == {20240101, 20240108}


def test_newest_before_skips_what_already_saw_the_span():
    lineage = _Lineage()
    first, _ = lineage.run([20240101])
    second, _ = lineage.run([20240101, 20240108], base_model=first)
    models = [_model(first), _model(second)]
    assert span_resolvers.newest_before(lineage.store, models, 20240115).id == second
    # A run that ingests 20240108 again (no new span) warm-starts where the first run at that span did.
    assert span_resolvers.newest_before(lineage.store, models, 20240108).id == first
    assert span_resolvers.newest_before(lineage.store, models, 20240101) is None
