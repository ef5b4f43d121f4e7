"""Artifact manifests: what counts as damage, and how a damaged artifact is marked in ML Metadata."""

import os

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import artifact_check


def _folder(root):
    (root / "Split-train").mkdir(parents=True)
    (root / "Split-train" / "data.gz").write_bytes(b"x" * 1000)
    (root / "schema.pbtxt").write_text("feature {}\n")
    return str(root)


def test_an_untouched_folder_has_no_problems(tmp_path):
    uri = _folder(tmp_path / "a")
    manifest = artifact_check.manifest_of(uri)
    assert set(manifest) == {os.path.join("Split-train", "data.gz"), "schema.pbtxt"}
    assert manifest[os.path.join("Split-train", "data.gz")][0] == 1000
    assert artifact_check.problems(uri, manifest) == []
    os.utime(os.path.join(uri, "schema.pbtxt"), ns=(1, 1))  # touched, same content: still intact
    assert artifact_check.problems(uri, manifest) == []


@pytest.mark.parametrize("damage, problem", [
    (lambda uri: os.truncate(os.path.join(uri, "Split-train", "data.gz"), 10),
     "Split-train/data.gz has 10 bytes, 1,000 when it was written"),
    (lambda uri: os.remove(os.path.join(uri, "schema.pbtxt")), "schema.pbtxt is missing"),
    (lambda uri: open(os.path.join(uri, "Split-train", "extra.gz"), "w").close(),
     "Split-train/extra.gz was not there when it was written"),
    (lambda uri: open(os.path.join(uri, "Split-train", "data.gz"), "r+b").write(b"y"),  # same size
     "Split-train/data.gz was changed after it was written"),
    (lambda uri: os.rename(uri, uri + ".moved"), "its folder is gone"),
])
def test_damage_is_named(tmp_path, damage, problem):
    uri = _folder(tmp_path / "a")
    manifest = artifact_check.manifest_of(uri)
    damage(uri)
    assert artifact_check.problems(uri, manifest) == [problem]


def _store(path):
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    return metadata_store.MetadataStore(config)


def _produced(store, uri, node="rqvalue.Transform", key="transformed_examples"):
    """An Examples artifact written by an execution of `node` (as TFX records it): its id."""
    type_id = store.put_artifact_type(metadata_store_pb2.ArtifactType(name="Examples"))
    execution_type = store.put_execution_type(metadata_store_pb2.ExecutionType(name="Transform"))
    context_type = store.put_context_type(metadata_store_pb2.ContextType(name="node"))
    [artifact_id] = store.put_artifacts([metadata_store_pb2.Artifact(type_id=type_id, uri=uri,
                                                                     state=metadata_store_pb2.Artifact.LIVE)])
    [execution_id] = store.put_executions([metadata_store_pb2.Execution(type_id=execution_type)])
    existing = store.get_context_by_type_and_name("node", node)
    [context_id] = [existing.id] if existing else store.put_contexts([metadata_store_pb2.Context(
        type_id=context_type, name=node)])
    store.put_attributions_and_associations([], [metadata_store_pb2.Association(context_id=context_id,
                                                                                execution_id=execution_id)])
    event = metadata_store_pb2.Event(artifact_id=artifact_id, execution_id=execution_id,
                                     type=metadata_store_pb2.Event.OUTPUT)
    event.path.steps.add().key = key
    event.path.steps.add().index = 0
    store.put_events([event])
    return artifact_id


def test_check_records_first_then_marks_what_changed(tmp_path):
    metadata = str(tmp_path / "metadata.sqlite")
    store = _store(metadata)
    intact, damaged = _folder(tmp_path / "p" / "7"), _folder(tmp_path / "p" / "8")
    ids = [_produced(store, intact), _produced(store, damaged)]
    assert artifact_check.record(str(tmp_path), metadata) == 2
    assert artifact_check.record(str(tmp_path), metadata) == 0  # recorded once
    os.truncate(os.path.join(damaged, "Split-train", "data.gz"), 0)

    said = []
    [found] = artifact_check.check(str(tmp_path), metadata, said.append)

    assert found.artifact_id == ids[1] and (found.component, found.key) == ("Transform", "transformed_examples")
    assert said == [f"rqvalue: Transform's transformed_examples (artifact {ids[1]}, {damaged}) is damaged: "
                    "Split-train/data.gz has 0 bytes, 1,000 when it was written. It is not reused: Transform "
                    "runs again when a run needs it"]
    live, marked = store.get_artifacts_by_id(ids)
    assert live.state == metadata_store_pb2.Artifact.LIVE
    assert marked.state == metadata_store_pb2.Artifact.MARKED_FOR_DELETION
    assert marked.custom_properties["damaged"].string_value == "Split-train/data.gz has 0 bytes, 1,000 when it " \
                                                                "was written"
    assert os.path.exists(os.path.join(damaged, "Split-train", "data.gz"))  # left for inspection
    assert artifact_check.check(str(tmp_path), metadata, said.append) == []  # marked once, then passed over


def test_an_artifact_seen_first_is_recorded_as_it_is(tmp_path):
    """Artifacts of a folder from before manifests, or of a run killed before it recorded them."""
    metadata = str(tmp_path / "metadata.sqlite")
    artifact_id = _produced(_store(metadata), _folder(tmp_path / "p" / "3"))
    assert artifact_check.check(str(tmp_path), metadata) == []
    assert os.path.exists(os.path.join(tmp_path, artifact_check.MANIFEST_DIR, f"{artifact_id}.json"))


def test_no_store_no_check(tmp_path):
    assert artifact_check.check(str(tmp_path), str(tmp_path / "metadata.sqlite")) == []
    assert artifact_check.record(str(tmp_path), str(tmp_path / "metadata.sqlite")) == 0
