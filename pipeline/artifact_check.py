"""Cached artifacts are checked before a run may reuse them; a damaged one is produced again, not used.

TFX's cache (tfx/orchestration/portable/cache_utils.py, `get_cached_outputs`) reuses the outputs of
an earlier execution with the same cache key as long as every output artifact is LIVE in ML
Metadata and its folder exists; what is inside the folder is never looked at. So a truncated
TFRecord file in a Transform output is reused without a word, and the next component to read it
fails deep inside TensorFlow.

This module keeps, for every artifact in the local pipeline root, a manifest of the files its
folder held when it was written (relative path, size, modification time, SHA-256), one JSON file per
artifact under `<output_dir>/artifact_manifests/`. Before a run, with the output folder locked:
  - an artifact without a manifest gets one (artifacts written by the previous run are recorded at
    its end; those of a run that was killed, or written before manifests existed, when first seen);
  - every other LIVE artifact is compared with its manifest: a file missing, added or of another
    size, or whose content no longer matches its SHA-256 (hashed again only when its modification
    time changed), makes the artifact damaged;
  - a damaged artifact is marked MARKED_FOR_DELETION in ML Metadata, with the reason in its custom
    property `damaged`. TFX's cache passes over an execution with a non-LIVE output, so the component
    runs again and writes a new artifact, and input resolution (resolvers, the rolling window, the
    baseline model) no longer returns it. Its files are left in place for inspection.

The manifest is a file, not an ML Metadata property: changing an artifact in ML Metadata changes
the cache key of every component that reads it. Artifacts outside the local file system (a gs://
pipeline root) are not checked.
"""

import dataclasses
import hashlib
import json
import os
from typing import Callable, Dict, List, Optional

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

MANIFEST_DIR = "artifact_manifests"
DAMAGED_PROPERTY = "damaged"

_Artifact = metadata_store_pb2.Artifact
_Event = metadata_store_pb2.Event


@dataclasses.dataclass
class Damage:
    """A damaged artifact: what it is, who wrote it, and what is wrong with it."""

    artifact_id: int
    type_name: str
    component: str
    key: str
    uri: str
    problem: str
    span: Optional[int] = None

    def message(self) -> str:
        text = (f"{self.component}'s {self.key} (artifact {self.artifact_id}, {self.uri}) is damaged: {self.problem}. "
                f"It is not reused: {self.component} runs again when a run needs it")
        if self.type_name == "Examples" and self.span:
            text += f" (examples of an earlier span: ingest it again with `rqvalue run --span {self.span}`)"
        return text


def manifest_of(uri: str) -> Dict[str, List]:
    """{relative path: [size, mtime_ns, sha256]} of every file under `uri` (a folder or one file)."""
    if os.path.isfile(uri):
        return {"": _entry(uri)}
    files = {}
    for folder, _, names in os.walk(uri):
        for name in names:
            path = os.path.join(folder, name)
            files[os.path.relpath(path, uri)] = _entry(path)
    return files


def _entry(path: str) -> List:
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns, _sha256(path)]


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def problems(uri: str, manifest: Dict[str, List]) -> List[str]:
    """What differs between the files under `uri` and the manifest written for them (empty: intact)."""
    if not os.path.exists(uri):
        return ["its folder is gone"]
    found = {}
    if os.path.isfile(uri):
        found[""] = uri
    else:
        for folder, _, names in os.walk(uri):
            for name in names:
                path = os.path.join(folder, name)
                found[os.path.relpath(path, uri)] = path
    wrong = [f"{name or os.path.basename(uri)} is missing" for name in sorted(set(manifest) - set(found))]
    wrong += [f"{name} was not there when it was written" for name in sorted(set(found) - set(manifest))]
    for name in sorted(set(found) & set(manifest)):
        size, mtime_ns, sha256 = manifest[name]
        stat = os.stat(found[name])
        label = name or os.path.basename(uri)
        if stat.st_size != size:
            wrong.append(f"{label} has {stat.st_size:,} bytes, {size:,} when it was written")
        elif stat.st_mtime_ns != mtime_ns and _sha256(found[name]) != sha256:
            wrong.append(f"{label} was changed after it was written")
    return wrong


def _local(uri: str) -> bool:
    return bool(uri) and "://" not in uri


def _store(metadata_path: str) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE
    return metadata_store.MetadataStore(config)


def _manifest_path(output_dir: str, artifact_id: int) -> str:
    return os.path.join(output_dir, MANIFEST_DIR, f"{artifact_id}.json")


def _write_manifest(output_dir: str, artifact) -> None:
    path = _manifest_path(output_dir, artifact.id)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump({"uri": artifact.uri, "files": manifest_of(artifact.uri)}, f)
    os.replace(path + ".tmp", path)


def _live_local(store) -> List:
    return [a for a in store.get_artifacts() if a.state == _Artifact.LIVE and _local(a.uri)]


def record(output_dir: str, metadata_path: str) -> int:
    """Writes a manifest for every LIVE local artifact that has none yet; returns how many it wrote."""
    if not os.path.isfile(metadata_path) or not os.path.getsize(metadata_path):
        return 0
    written = 0
    for artifact in _live_local(_store(metadata_path)):
        if os.path.exists(artifact.uri) and not os.path.exists(_manifest_path(output_dir, artifact.id)):
            _write_manifest(output_dir, artifact)
            written += 1
    return written


def check(output_dir: str, metadata_path: str, report: Optional[Callable[[str], None]] = None) -> List[Damage]:
    """Compares every LIVE local artifact with its manifest and marks the damaged ones (see the module doc).

    Call it while holding the output folder's lock, before the pipeline runs. Artifacts without a
    manifest get one. Returns the damaged artifacts (each also passed to `report` as one line).
    """
    if not os.path.isfile(metadata_path) or not os.path.getsize(metadata_path):
        return []
    store = _store(metadata_path)
    damaged = []
    for artifact in _live_local(store):
        path = _manifest_path(output_dir, artifact.id)
        if not os.path.exists(path):
            if os.path.exists(artifact.uri):
                _write_manifest(output_dir, artifact)
                continue
            found = ["its folder is gone"]
        else:
            with open(path) as f:
                found = problems(artifact.uri, json.load(f)["files"])
        if found:
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            damaged.append(_describe(store, artifact, found[0] + more))
    if damaged:
        _mark(store, damaged)
    for damage in damaged:
        if report:
            report(f"rqvalue: {damage.message()}")
    return damaged


def _describe(store, artifact, problem: str) -> Damage:
    """The Damage of an artifact, with the component and output key of the execution that wrote it."""
    component, key = "?", "?"
    outputs = sorted((e for e in store.get_events_by_artifact_ids([artifact.id]) if e.type == _Event.OUTPUT),
                     key=lambda e: e.execution_id)
    if outputs:
        key = next((s.key for s in outputs[0].path.steps if s.HasField("key")), "?")
        node_type = store.get_context_type("node").id
        nodes = [c for c in store.get_contexts_by_execution(outputs[0].execution_id) if c.type_id == node_type]
        if nodes:
            component = nodes[0].name.split(".", 1)[-1]
    type_name = store.get_artifact_types_by_id([artifact.type_id])[0].name
    span = artifact.properties["span"].int_value if "span" in artifact.properties else None
    return Damage(artifact.id, type_name, component, key, artifact.uri, problem, span)


def _mark(store, damaged: List[Damage]) -> None:
    artifacts = store.get_artifacts_by_id([d.artifact_id for d in damaged])
    reasons = {d.artifact_id: d.problem for d in damaged}
    for artifact in artifacts:
        artifact.state = _Artifact.MARKED_FOR_DELETION
        artifact.custom_properties[DAMAGED_PROPERTY].string_value = reasons[artifact.id]
    store.put_artifacts(artifacts)
