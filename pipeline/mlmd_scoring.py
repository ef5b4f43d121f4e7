"""Reads, from ML Metadata (read-only), what scoring needs and writes: the models the Pusher pushed (in
a training store) and the predictions of each scoring run (in a scoring store, `pipeline.scoring`).

Built on `pipeline.mlmd`'s store access; `rqvalue predict` and `rqvalue inspect predictions` use it.
"""

import dataclasses
import os
from typing import Any, Dict, List

from pipeline.mlmd import (
    MetadataError,
    _artifacts_by_key,
    _destination,
    _Event,
    _producer,
    _was_pushed,
    open_readonly,
    property_value,
)

SCORING_DIR = "scoring"  # under an output folder: the scoring pipeline's ML Metadata and pipeline root


def scoring_metadata_path(output_dir: str) -> str:
    """The scoring store of an output folder (`pipeline.scoring`)."""
    return os.path.join(output_dir, SCORING_DIR, "metadata.sqlite")


@dataclasses.dataclass
class PushedModel:
    """A model the Pusher pushed: its version (the folder under serving/), where, and the Trainer's artifact."""

    version: str
    destination: str
    model_uri: str
    model_id: int
    pushed_ms: int


def pushed_models(metadata_path: str) -> List[PushedModel]:
    """Every pushed model of a training store, oldest push first."""
    store = open_readonly(metadata_path)
    pushed = []
    for artifact in sorted(store.get_artifacts_by_type("PushedModel"), key=lambda a: a.id):
        if not _was_pushed(artifact):
            continue
        pusher = _producer(store, artifact.id, "pushed_model")
        models = _artifacts_by_key(store, pusher.id, _Event.INPUT).get("model", []) if pusher else []
        if not models:
            continue
        version = property_value(artifact.custom_properties["pushed_version"]) \
            if "pushed_version" in artifact.custom_properties else os.path.basename(_destination(artifact))
        pushed.append(PushedModel(str(version), _destination(artifact), models[0].uri, models[0].id,
                                  artifact.create_time_since_epoch))
    return pushed


@dataclasses.dataclass
class Scoring:
    """One scoring run's predictions (the custom properties of its Predictions artifact) and its run name."""

    run: str
    written_ms: int
    properties: Dict[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.properties.get(name)


def scorings(metadata_path: str) -> List[Scoring]:
    """Every completed scoring run of a scoring store (`pipeline.scoring.metadata_path`), oldest first."""
    store = open_readonly(metadata_path)
    try:
        artifacts = store.get_artifacts_by_type("Predictions")
    except Exception:  # an empty store has no such type yet
        artifacts = []
    run_type = store.get_context_type("pipeline_run").id if artifacts else None
    found = []
    for artifact in sorted(artifacts, key=lambda a: a.id):
        writer = _producer(store, artifact.id, "predictions")
        runs = [c.name for c in store.get_contexts_by_execution(writer.id) if c.type_id == run_type] if writer else []
        values = {name: property_value(v) for name, v in artifact.custom_properties.items()}
        found.append(Scoring(runs[0] if runs else "", artifact.create_time_since_epoch, values))
    if not found:
        raise MetadataError(f"no scoring recorded in {metadata_path}: run `rqvalue predict` first")
    return found
