"""`create_scoring_pipeline(config, run)`: the scoring pipeline as a pure function of the config (no I/O).

  Importer(pushed model) ─┐
  ScoringExampleGen ──────┴─> BulkInferrer ─> PredictionsWriter

ScoringExampleGen reads every entity's features as of one time from Feast
(`components/scoring_example_gen.py`); TFX's BulkInferrer runs the pushed model's serving signature
on them with Beam, so the config's runner options (DirectRunner, or Dataflow) apply
(`components/bulk_scoring.py`); PredictionsWriter writes Parquet, the Feast feature view and its
online store (`components/predictions_writer.py`). The model enters through an Importer of the
Trainer's Model artifact that the Pusher pushed (its Format-Serving SavedModel is the pushed one).

Where a scoring run writes, under the output folder of the training runs:
  scoring/metadata.sqlite   its own ML Metadata store, so the training history (and what `inspect`
                            and `report` show by default) stays as it was; `rqvalue inspect
                            predictions` reads this one
  scoring/pipeline_root/    the scoring artifacts (<pipeline root>/scoring when the config sets one)
  predictions/<view>/       the Parquet partitions the Feast view reads
Nothing is cached: each run reads the features as they are at its as-of time.
"""

import dataclasses
import os
from typing import Tuple

from tfx import v1 as tfx

from components import bulk_scoring
from components.predictions_writer import PredictionsWriter, WriterSpec
from components.scoring_example_gen import ScoringExampleGen, ScoringSpec
from pipeline import runners
from pipeline.config import RunConfig
from pipeline.mlmd_scoring import SCORING_DIR, scoring_metadata_path

PREDICTIONS_DIR = "predictions"


@dataclasses.dataclass(frozen=True)
class ScoringRun:
    """One scoring run: when, with which model, which entities.

    Attributes:
      as_of: the time features are read as of, ISO 8601 in UTC.
      model_uri: the Trainer's Model artifact that was pushed (it holds Format-Serving/).
      model_version: the pushed version (the folder name under serving/).
      output_keys: the outputs of the model's serving signature.
      signature: the signature BulkInferrer scores with (`bulk_scoring.scoring_signature`).
      entities: an entity list file (Parquet/CSV); empty: every entity in the feature store.
    """

    as_of: str
    model_uri: str
    model_version: str
    output_keys: Tuple[str, ...]
    entities: str = ""
    signature: str = bulk_scoring.SIGNATURE


def view_name(config: RunConfig) -> str:
    """The predictions' feature view: scoring.view_name, else predicted_<label>."""
    if config.scoring.view_name:
        return config.scoring.view_name
    label = "".join(c if c.isalnum() else "_" for c in config.data.label).strip("_").lower() or "value"
    return f"predicted_{label}"


def scoring_dir(config: RunConfig) -> str:
    return os.path.join(config.output_dir, SCORING_DIR)


def metadata_path(config: RunConfig) -> str:
    return scoring_metadata_path(config.output_dir)


def pipeline_root(config: RunConfig) -> str:
    if config.pipeline_root_uri:
        return config.pipeline_root_uri.rstrip("/") + "/" + SCORING_DIR
    return os.path.join(scoring_dir(config), "pipeline_root")


def predictions_dir(config: RunConfig) -> str:
    return os.path.join(config.output_dir, PREDICTIONS_DIR)


def create_scoring_pipeline(config: RunConfig, run: ScoringRun) -> tfx.dsl.Pipeline:
    """Builds the scoring pipeline (see the module docstring).

    Args:
      config: the run configuration of the training runs (data, output folder, Beam args, scoring).
      run: what this scoring run scores, as of when, with which model.
    """
    data = config.data
    example_gen = ScoringExampleGen(spec_json=ScoringSpec(
        feast_repo=data.feast_repo, entity_columns=tuple(data.entity_columns), feature_refs=tuple(data.feature_refs),
        numeric_features=tuple(data.numeric_features), categorical_features=tuple(data.categorical_features),
        timestamp_column=data.timestamp_column, as_of=run.as_of, entities=run.entities,
        chunk_rows=config.scoring.chunk_rows).to_json())
    model = tfx.dsl.Importer(source_uri=run.model_uri, artifact_type=tfx.types.standard_artifacts.Model,
                             reimport=False).with_id("pushed_model_importer")
    inferrer = bulk_scoring.scoring_inferrer(example_gen.outputs["examples"], model.outputs["result"],
                                            run.signature)
    writer = PredictionsWriter(
        inference_result=inferrer.outputs["inference_result"], examples=example_gen.outputs["examples"],
        model=model.outputs["result"],
        spec=WriterSpec(feast_repo=data.feast_repo, entity_columns=tuple(data.entity_columns),
                        view_name=view_name(config), predictions_dir=predictions_dir(config), as_of=run.as_of,
                        model_version=run.model_version, output_keys=tuple(run.output_keys),
                        batch_rows=config.scoring.batch_rows))
    return tfx.dsl.Pipeline(
        pipeline_name=f"{config.pipeline_name}-scoring",
        pipeline_root=pipeline_root(config),
        components=[example_gen, model, inferrer, writer],
        enable_cache=False,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            metadata_path(config)),
        beam_pipeline_args=list(runners.component_beam_args(config.beam_args)))
