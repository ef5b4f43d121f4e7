"""Run configuration: one frozen dataclass tree, loaded from YAML plus command-line overrides.

A user's own data is described here (Feast repo, feature references, spine file, label), never
by editing code. Every field has a default except the data description, which an embedded data
set fills in (see `pipeline.datasets`) or a YAML file provides.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
from typing import Any, Mapping, Optional, Tuple

import yaml

from models.choices import (
    DECODINGS,
    FEATURE_ENCODERS,
    GBDT_LOSSES,
    LABEL_TRANSFORMS,
    LEARNING_RATE_SCHEDULES,
    MEAN_CALIBRATIONS,
    MODEL_KINDS,
    NUMERIC_ENCODINGS,
    PRECISIONS,
    RNC_REPRESENTATIONS,
)

# Google Cloud names, as the runners and the trainer section check them.
PROJECT_PATTERN = re.compile(r"^([a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")
REGION_PATTERN = re.compile(r"^[a-z]+(-[a-z]+)+[0-9]+$")
GCS_PATTERN = re.compile(r"^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](/.*)?$")
IMAGE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._/:@-]*[a-z0-9]$")
MACHINE_PATTERN = re.compile(r"^[a-z][a-z0-9-]*$")
# Vertex AI's GPU types (google.cloud.aiplatform_v1 AcceleratorType) that TensorFlow 2.16's CUDA build
# runs on: compute capability 5.0 or higher, so not the K80. No TPUs: the Trainer distributes with
# MirroredStrategy, which drives GPUs (and CPUs) only.
ACCELERATORS = ("NVIDIA_TESLA_P4", "NVIDIA_TESLA_P100", "NVIDIA_TESLA_V100", "NVIDIA_TESLA_T4", "NVIDIA_TESLA_A100",
                "NVIDIA_A100_80GB", "NVIDIA_L4", "NVIDIA_H100_80GB", "NVIDIA_H100_MEGA_80GB")


class ConfigError(ValueError):
    """A configuration value is missing or wrong; the message names the field."""


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the examples come from.

    Attributes:
      feast_repo: directory of an applied Feast feature repository (holds feature_store.yaml).
      spine: Parquet or CSV file with one row per example: entity columns, prediction time, label.
      entity_columns: join keys of the spine, in the order Feast expects.
      feature_refs: Feast feature references, "feature_view:feature".
      numeric_features: retrieved feature names to treat as numbers.
      categorical_features: retrieved feature names to treat as categories (strings).
      timestamp_column: spine column with the prediction time; features are read as of this time.
      label: spine column with the target value (non-negative; zero is a valid value).
      schema: curated TFDV schema (schema.pbtxt); empty means infer one with SchemaGen.
      eval_fraction: share of entities held out for evaluation (split by a hash of the entity).
      validation_fraction: share of entities held out for the Trainer's early stopping.
      span_days: length in days of one span, the unit in which data arrives for retraining. A
        run ingests one span (by default the latest window of prediction times in the spine),
        and Transform and the Trainer see the last `window_spans` spans ingested so far. 0 (the
        default) treats the whole spine as one span: each run trains on all of it.
      span_origin: a date on which a span starts (the default, 1970-01-05, is a Monday, so
        7-day spans run Monday to Sunday). A span is numbered by its first day, as YYYYMMDD.
      window_spans: how many of the latest spans Transform and the Trainer see (with span_days > 0).
      max_missing_feature_share: the largest share of a run's spine rows that may have no feature
        row to read from some feature view (entity unknown to the store, feature rows only after
        the prediction time, or all older than the view's TTL). Up to it such rows are kept, with
        that view's features missing, and counted; beyond it the run stops and names the causes.
        0 (the default): any such row stops the run.
      chunk_rows: spine rows the ingestion reads, retrieves from Feast, encodes and writes at a time;
        it bounds the ingestion's memory (results do not depend on it).
    """

    feast_repo: str
    spine: str
    entity_columns: Tuple[str, ...]
    feature_refs: Tuple[str, ...]
    numeric_features: Tuple[str, ...] = ()
    categorical_features: Tuple[str, ...] = ()
    timestamp_column: str = "prediction_time"
    label: str = "label"
    schema: str = ""
    eval_fraction: float = 0.2
    validation_fraction: float = 0.1
    span_days: int = 0
    span_origin: str = "1970-01-05"
    window_spans: int = 4
    max_missing_feature_share: float = 0.0
    chunk_rows: int = 250_000

    def __post_init__(self):
        if not self.entity_columns:
            raise ConfigError("data.entity_columns: at least one entity column is required")
        if not self.feature_refs:
            raise ConfigError("data.feature_refs: at least one Feast feature reference is required")
        for ref in self.feature_refs:
            if ":" not in ref:
                raise ConfigError(f"data.feature_refs: {ref!r} is not of the form 'feature_view:feature'")
        names = [r.split(":", 1)[1] for r in self.feature_refs]
        for field in ("numeric_features", "categorical_features"):
            for name in getattr(self, field):
                if name not in names:
                    raise ConfigError(f"data.{field}: {name!r} is not among the features of data.feature_refs")
        if not self.numeric_features and not self.categorical_features:
            raise ConfigError("data: name at least one of numeric_features or categorical_features")
        overlap = set(self.numeric_features) & set(self.categorical_features)
        if overlap:
            raise ConfigError(f"data: {sorted(overlap)} listed as both numeric and categorical")
        if self.label in names or self.label in self.entity_columns:
            raise ConfigError(f"data.label: {self.label!r} must not also be a feature or an entity column")
        if not 0.0 < self.eval_fraction < 1.0:
            raise ConfigError(f"data.eval_fraction: {self.eval_fraction} must lie strictly between 0 and 1")
        if not 0.0 < self.validation_fraction < 1.0 - self.eval_fraction:
            raise ConfigError(f"data.validation_fraction: {self.validation_fraction} must be positive and leave "
                              f"room for training next to data.eval_fraction={self.eval_fraction}")
        if self.span_days < 0:
            raise ConfigError(f"data.span_days: {self.span_days} must be 0 (no spans) or a number of days")
        if self.window_spans < 1:
            raise ConfigError(f"data.window_spans: {self.window_spans} must be at least 1")
        if not 0.0 <= self.max_missing_feature_share <= 1.0:
            raise ConfigError(f"data.max_missing_feature_share: {self.max_missing_feature_share} must lie "
                              "between 0 and 1 (a share of the spine rows)")
        if isinstance(self.chunk_rows, bool) or not isinstance(self.chunk_rows, int) or self.chunk_rows < 1:
            raise ConfigError(f"data.chunk_rows: {self.chunk_rows!r} must be a positive whole number of spine rows")
        object.__setattr__(self, "span_origin", str(self.span_origin))  # YAML reads a bare date as a date
        try:
            datetime.date.fromisoformat(self.span_origin)
        except ValueError:
            raise ConfigError(f"data.span_origin: {self.span_origin!r} is not a date (YYYY-MM-DD)") from None

    @property
    def spans(self) -> bool:
        """Whether data arrives in spans (span_days > 0)."""
        return self.span_days > 0


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Model kind, target transform, value buckets, RQ codebooks and training settings."""

    kind: str = "rqreg"
    label_transform: str = "log1p"
    value_buckets: int = 5
    codebook_sizes: Tuple[int, ...] = (16, 8, 8)  # by measurement (README, "The RQ codebook")
    first_level_median: bool = True
    codebook_resolution: float = 1e-4
    embedding_dim: int = 16
    numeric_encoding: str = "zscore"  # zscore | piecewise_linear: quantile-bin encoding (models/piecewise_linear.py)
    numeric_bins: int = 16  # piecewise_linear: quantile bins per numeric feature, fitted in Transform
    hidden_units: Tuple[int, ...] = (64, 64)
    lstm_units: int = 64
    regression_weight: float = 0.0  # RQ-Reg's Huber term on the decoded value; 0 by measurement (README)
    rnc_weight: float = 0.1
    rnc_temperature: float = 2.0
    rnc_representation: str = "codes"  # what Rank-N-Contrast orders: codes | features (models/rqreg.py)
    sampling_probability: float = 0.25
    code_smoothing: float = 0.0  # RQ-Reg soft code targets, σ in code spacings (models/rqreg.py); 0: one-hot
    # RQ-Reg serving: pruned (the default: the code tree with the last level expanded under the
    # beam_width likeliest prefixes) | tree (exact) | beam | greedy | expectation (models/rqreg.py)
    decoding: str = "pruned"
    beam_width: int = 4  # code prefixes expanded by pruned / kept per level by beam
    serving_chunk_rows: int = 1024  # rows serving_default scores at once: bounds its memory (models/serving.py)
    interval_groups: int = 4  # served interval calibrated within this many predicted-value groups (models/calibration.py)
    mean_calibration: str = "scale"  # map of the served mean fitted on the valid split (models/mean_calibration.py)
    duration_feature: str = ""
    duration_groups: int = 10
    gr_label_scale: Optional[float] = None
    gr_mixup_probability: float = 0.5
    gr_regression_weight: float = 1.0  # GR's Huber term on the windowed soft-argmax value
    gr_first_tokens: int = 16  # GR serving: average the paths of this many likeliest first tokens (1: greedy)
    gbdt_loss: str = "poisson"  # gbdt: poisson | squared_error, on the label in label units (models/gbdt.py)
    gbdt_max_trees: int = 1000  # gbdt: most trees per forest; each stops early on the valid split
    gbdt_max_depths: Tuple[int, ...] = (4, 6)  # gbdt: the grid searched on the valid split ...
    gbdt_shrinkages: Tuple[float, ...] = (0.05, 0.1)
    gbdt_min_examples: Tuple[int, ...] = (5, 40)  # ... (fewest training rows per leaf)
    feature_encoder: str = "mlp"  # RQ-Reg: mlp | cross (cross layers, then the MLP) | token_mixing (models/layers.py)
    cross_layers: int = 2  # cross: cross layers before the MLP
    mixer_blocks: int = 2  # token_mixing: mixing blocks
    learning_rate: float = 3e-3
    learning_rate_schedule: str = "constant"  # RQ-Reg: constant | warmup_cosine (models/lr_schedule.py)
    warmup_steps: int = 100  # warmup_cosine: linear warm-up batches, then cosine decay to 0 at train_steps
    batch_size: int = 256
    train_steps: int = 2000
    eval_steps: int = 0  # validation batches per check: 0 (default) is one full pass over the valid split
    validation_every: int = 100
    patience: int = 5
    seed: int = 0
    warm_start: bool = True  # with spans: start from the weights of the latest blessed model

    def __post_init__(self):
        if self.kind not in MODEL_KINDS:
            raise ConfigError(f"model.kind: {self.kind!r} is not a known model (known: {', '.join(MODEL_KINDS)})")
        if self.label_transform not in LABEL_TRANSFORMS:
            raise ConfigError(f"model.label_transform: {self.label_transform!r} is not one of "
                              f"{', '.join(LABEL_TRANSFORMS)}")
        if not self.codebook_sizes or any(k < 2 for k in self.codebook_sizes):
            raise ConfigError(f"model.codebook_sizes: {self.codebook_sizes} needs one or more levels of at least 2 codes")
        for field, known in (("decoding", DECODINGS), ("rnc_representation", RNC_REPRESENTATIONS),
                             ("mean_calibration", MEAN_CALIBRATIONS), ("numeric_encoding", NUMERIC_ENCODINGS),
                             ("feature_encoder", FEATURE_ENCODERS),
                             ("learning_rate_schedule", LEARNING_RATE_SCHEDULES)):
            if getattr(self, field) not in known:
                raise ConfigError(f"model.{field}: {getattr(self, field)!r} is not one of {', '.join(known)}")
        if self.feature_encoder == "token_mixing" and self.numeric_encoding != "zscore":
            raise ConfigError(f"model.feature_encoder: token_mixing reads each numeric feature's z-score only; "
                              f"model.numeric_encoding {self.numeric_encoding!r} would be computed and ignored "
                              "(use feature_encoder mlp or cross with it)")
        if self.warmup_steps < 0:
            raise ConfigError(f"model.warmup_steps: {self.warmup_steps} must be >= 0")
        if isinstance(self.numeric_bins, bool) or not isinstance(self.numeric_bins, int) or self.numeric_bins < 2:
            raise ConfigError(f"model.numeric_bins: {self.numeric_bins!r} must be an integer of at least 2")
        if self.eval_steps < 0:
            raise ConfigError(f"model.eval_steps: {self.eval_steps} must be 0 (a full pass) or a number of batches")
        if self.gbdt_loss not in GBDT_LOSSES:
            raise ConfigError(f"model.gbdt_loss: {self.gbdt_loss!r} is not one of {', '.join(GBDT_LOSSES)}")
        for field in ("gbdt_max_depths", "gbdt_shrinkages", "gbdt_min_examples"):
            values = getattr(self, field)
            if not values or any(v <= 0 for v in values):
                raise ConfigError(f"model.{field}: {values} needs one or more positive values")
        if self.code_smoothing < 0:
            raise ConfigError(f"model.code_smoothing: {self.code_smoothing} must be >= 0")
        if self.value_buckets < 2:
            raise ConfigError(f"model.value_buckets: {self.value_buckets} must be at least 2")
        for field in ("train_steps", "batch_size", "lstm_units", "embedding_dim", "validation_every", "mixer_blocks", "cross_layers",
                      "patience", "beam_width", "gr_first_tokens", "interval_groups", "gbdt_max_trees",
                      "serving_chunk_rows"):
            if getattr(self, field) < 1:
                raise ConfigError(f"model.{field}: must be a positive integer")


@dataclasses.dataclass(frozen=True)
class GateConfig:
    """The model gate (see pipeline/evaluation.py).

    Attributes:
      min_normalized_gini, min_spearman, max_mae: absolute thresholds on the overall slice.
      gini_tolerance: largest allowed drop of normalized Gini against the baseline (absolute).
      mae_tolerance: largest allowed rise of MAE against the baseline (relative, 0.05 = 5%); off
        (None) by default, because on zero-inflated labels the MAE of the mean rewards predicting
        near zero: a model that ranks and calibrates better can lose on it.
      top_buckets: how many of the highest value buckets are compared with the baseline too.
    """

    min_normalized_gini: float = 0.0
    min_spearman: float = 0.0
    max_mae: Optional[float] = None
    gini_tolerance: float = 0.02
    mae_tolerance: Optional[float] = None
    top_buckets: int = 1

    def __post_init__(self):
        if self.gini_tolerance < 0 or (self.mae_tolerance is not None and self.mae_tolerance < 0):
            raise ConfigError("gate.gini_tolerance and gate.mae_tolerance must not be negative")
        if self.top_buckets < 0:
            raise ConfigError(f"gate.top_buckets: {self.top_buckets} must not be negative")


PRIVILEGED_READS = ("change", "value")  # how a privileged feature is read over its window (DistillationConfig)


@dataclasses.dataclass(frozen=True)
class PrivilegedFeature:
    """A feature from after the prediction time, read over the window (t, t + window_days].

    Attributes:
      name: its name in the training examples (must not be a serving feature, the label or an entity).
      ref: the Feast feature reference it is read from, "feature_view:feature".
      read: "change": the value as of t + window_days minus the value as of t (for cumulative totals,
        exact whatever the table's row times); "value": the value as of t + window_days (exact only
        where the feature table has a row at that time).
    """

    name: str
    ref: str
    read: str = "change"

    def __post_init__(self):
        if not self.name:
            raise ConfigError("distillation.privileged_features: every entry needs a name")
        if ":" not in self.ref:
            raise ConfigError(f"distillation.privileged_features: {self.name!r}: ref {self.ref!r} is not of the "
                              "form 'feature_view:feature'")
        if self.read not in PRIVILEGED_READS:
            raise ConfigError(f"distillation.privileged_features: {self.name!r}: read {self.read!r} is not one of "
                              f"{', '.join(PRIVILEGED_READS)}")


@dataclasses.dataclass(frozen=True)
class DistillationConfig:
    """Privileged-feature distillation (models/distillation.py): a teacher trained on the serving
    features plus privileged features from after the prediction time, and the served student.

    The label must not be among what the teacher reads, so the label window (the one the spine's
    label was computed over) and the privileged window must be declared and must relate in one of
    two ways: the label window starts at the prediction time and strictly includes the privileged
    window (the teacher sees the beginning of the outcome, as OCARM's post-conversion content), or
    it starts when the privileged window ends or later (the teacher sees what happened between).
    A label window that starts inside the privileged window, or one the privileged window covers,
    is refused. The ingestion also refuses, on the data, a privileged feature equal to the label.

    Attributes:
      enabled: build the teacher and student Trainers (off: the usual single Trainer).
      privileged_features: what the teacher reads besides the serving features; retrieved by a
        second, forward-looking retrieval into the train and valid splits only, never eval.
      window_days: the privileged window (t, t + window_days] after each prediction time t.
      label_window_days: length of the label's window, which the spine's label was computed over.
      label_window_start_days: the label's window is (t + start, t + start + label_window_days]. 0 (the
        label window includes the privileged window, which must then be strictly shorter) or at least
        window_days (the label window starts after it); anything between is refused, and so is a
        privileged window that covers the whole label window (its features would be the label).
      alignment_weight: λ, the weight of the cosine alignment of the student's encoded features to
        the frozen teacher's.
      code_kl_weight: weight of the per-level KL divergence of the student's code distributions from
        the teacher's (0: off).
      kl_temperature: temperature of both distributions in that KL term.
    """

    enabled: bool = False
    privileged_features: Tuple[PrivilegedFeature, ...] = ()
    window_days: int = 30
    label_window_days: int = 0
    label_window_start_days: int = 0
    alignment_weight: float = 1.0
    code_kl_weight: float = 0.0
    kl_temperature: float = 1.0

    def __post_init__(self):
        features = []
        for entry in self.privileged_features:
            if not isinstance(entry, (PrivilegedFeature, Mapping)):
                raise ConfigError(f"distillation.privileged_features: {entry!r} is not a mapping of name, ref "
                                  "and read")
            features.append(entry if isinstance(entry, PrivilegedFeature)
                            else _build(PrivilegedFeature, entry, "distillation.privileged_features"))
        features = tuple(features)
        object.__setattr__(self, "privileged_features", features)
        names = [f.name for f in features]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ConfigError(f"distillation.privileged_features: {repeated} named more than once")
        if self.window_days < 1:
            raise ConfigError(f"distillation.window_days: {self.window_days} must be at least 1 (days after "
                              "the prediction time)")
        for field in ("alignment_weight", "code_kl_weight"):
            if getattr(self, field) < 0:
                raise ConfigError(f"distillation.{field}: {getattr(self, field)} must not be negative")
        if self.kl_temperature <= 0:
            raise ConfigError(f"distillation.kl_temperature: {self.kl_temperature} must be positive")
        if not self.enabled:
            return
        if not features:
            raise ConfigError("distillation.privileged_features: distillation is enabled but declares no "
                              "privileged feature")
        if self.label_window_days < 1:
            raise ConfigError("distillation.label_window_days: declare the length in days of the window the "
                              "label is computed over (it decides whether a privileged feature is the label)")
        start, end = self.label_window_start_days, self.label_window_start_days + self.label_window_days
        if start < 0:
            raise ConfigError(f"distillation.label_window_start_days: {start} must not be negative")
        if 0 < start < self.window_days:
            raise ConfigError(f"distillation.label_window_start_days: the label window starts {start} days after "
                              f"the prediction time, inside the privileged window of {self.window_days} days; it "
                              "must include that window (start 0) or start after it "
                              f"(start >= distillation.window_days)")
        if start == 0 and end <= self.window_days:
            raise ConfigError(f"distillation.window_days: the privileged window ({self.window_days} days) covers "
                              f"the whole label window ({self.label_window_days} days): a privileged feature over "
                              "it would be the label itself; make it shorter than the label window")

    def check_against(self, data: "DataConfig", model: "ModelConfig") -> None:
        """Refuses privileged features that clash with the data's names, and a model the teacher cannot share."""
        if not self.enabled:
            return
        taken = {ref.split(":", 1)[1] for ref in data.feature_refs}
        for feature in self.privileged_features:
            if data.label in (feature.name, feature.ref.split(":", 1)[1]):
                raise ConfigError(f"distillation.privileged_features: {feature.name!r} (ref {feature.ref!r}) is "
                                  f"the label {data.label!r} (data.label); a privileged feature must not be the label")
            if feature.name in taken or feature.name in data.entity_columns or feature.name == data.timestamp_column:
                raise ConfigError(f"distillation.privileged_features: {feature.name!r} is already a serving "
                                  "feature, an entity or the prediction time; give it a name of its own")
        if model.kind != "rqreg":
            raise ConfigError(f"model.kind: {model.kind!r}: distillation trains an RQ-Reg teacher and student "
                              "(the same decoder); set model.kind: rqreg or distillation.enabled: false")

    @property
    def privileged_names(self) -> Tuple[str, ...]:
        return tuple(f.name for f in self.privileged_features)


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """Where the Trainer runs and on what hardware (README, "Train on GPU").

    A local run trains on the machine that runs it, with every GPU TensorFlow sees there; the
    accelerator settings apply where the Trainer runs on Vertex AI: as a Vertex AI Pipelines task
    (`rqvalue compile --target vertex`) or as a Vertex AI Training job (`vertex_training`).

    Attributes:
      accelerator: a Vertex AI GPU type (ACCELERATORS, e.g. NVIDIA_TESLA_T4); empty: no GPU.
      accelerator_count: GPUs per Trainer machine; the Trainer uses them all (MirroredStrategy),
        each replica taking an equal share of model.batch_size, the global batch.
      machine_type: the Vertex AI Training job's machine, one that takes the accelerator (N1 for
        T4/V100/P100/P4, A2 for A100, G2 for L4, A3 for H100). Vertex AI Pipelines does not take a
        machine type: it picks a machine for a task from `cpus`, `memory_gb` and the accelerator.
      cpus, memory_gb: the Trainer task's CPU and memory limits on Vertex AI Pipelines (0: Vertex's
        default machine).
      components: the pipeline components (ids) that get the accelerator, cpus and memory on
        Vertex AI Pipelines: the Trainer alone unless more are named.
      precision: the Keras dtype policy of training: float32, or mixed_float16 (float16 compute in
        the layers, float32 weights, outputs and losses, dynamic loss scaling); the exported model
        is float32 either way.
      vertex_training: run the Trainer as a Vertex AI Training custom job (TFX's Google Cloud
        Trainer), from a local run or from Vertex AI Pipelines; the pipeline root must be on GCS.
      project, region: the Vertex AI Training job's Google Cloud project and region.
      image: the Trainer's container image (e.g. the GPU image, docker/gpu.Dockerfile): the Vertex
        AI Training job's, and on Vertex AI Pipelines the Trainer task's; empty: the pipeline
        image (`rqvalue compile --image`).
    """

    accelerator: str = ""
    accelerator_count: int = 1
    machine_type: str = "n1-standard-8"
    cpus: float = 0.0
    memory_gb: float = 0.0
    components: Tuple[str, ...] = ("Trainer",)
    precision: str = "float32"
    vertex_training: bool = False
    project: str = ""
    region: str = ""
    image: str = ""

    def __post_init__(self):
        if self.accelerator and self.accelerator not in ACCELERATORS:
            hint = (" (TPUs need TPUStrategy; the Trainer uses MirroredStrategy)" if self.accelerator.startswith("TPU")
                    else "")
            raise ConfigError(f"trainer.accelerator: {self.accelerator!r} is not a Vertex AI GPU type TensorFlow 2.16 "
                              f"runs on{hint}; known: {', '.join(ACCELERATORS)}")
        count = self.accelerator_count
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigError(f"trainer.accelerator_count: {count!r} must be a positive integer")
        if count > 1 and not self.accelerator:
            raise ConfigError(f"trainer.accelerator_count: {count} GPUs asked for without a trainer.accelerator type")
        if not MACHINE_PATTERN.match(self.machine_type or ""):
            raise ConfigError(f"trainer.machine_type: {self.machine_type!r} is not a machine type "
                              "such as n1-standard-8")
        for field in ("cpus", "memory_gb"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"trainer.{field}: {value!r} must be a number >= 0 (0: Vertex's default)")
        if not self.components or not all(isinstance(c, str) and c for c in self.components):
            raise ConfigError(f"trainer.components: {self.components!r} must name one or more pipeline components")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"trainer.precision: {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.image and not IMAGE_PATTERN.match(self.image):
            raise ConfigError(f"trainer.image: {self.image!r} is not a container image reference")
        if self.vertex_training:
            if not PROJECT_PATTERN.match(self.project or ""):
                raise ConfigError(f"trainer.project: {self.project!r}: trainer.vertex_training needs the Google "
                                  "Cloud project id the training job runs in")
            if not REGION_PATTERN.match(self.region or ""):
                raise ConfigError(f"trainer.region: {self.region!r}: trainer.vertex_training needs a Vertex AI "
                                  "region such as europe-west4")


@dataclasses.dataclass(frozen=True)
class ScoringConfig:
    """`rqvalue predict` (pipeline/scoring.py).

    Attributes:
      view_name: the Feast feature view of the predictions; empty: `predicted_<label>`.
      chunk_rows: entities retrieved from Feast and written as one TFRecord shard at a time.
      batch_rows: scored rows read and written to Parquet and the online store at a time.
    """

    view_name: str = ""
    chunk_rows: int = 250_000
    batch_rows: int = 100_000

    def __post_init__(self):
        for field in ("chunk_rows", "batch_rows"):
            if getattr(self, field) < 1:
                raise ConfigError(f"scoring.{field}: must be a positive integer")
        if self.view_name and not self.view_name.isidentifier():
            raise ConfigError(f"scoring.view_name: {self.view_name!r} must be letters, digits and underscores")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything one pipeline run needs."""

    data: DataConfig
    model: ModelConfig = ModelConfig()
    gate: GateConfig = GateConfig()
    trainer: TrainerConfig = TrainerConfig()
    scoring: ScoringConfig = ScoringConfig()
    distillation: DistillationConfig = DistillationConfig()
    pipeline_name: str = "rqvalue"
    output_dir: str = "runs"
    beam_args: Tuple[str, ...] = ("--direct_running_mode=in_memory", "--direct_num_workers=1")
    enable_cache: bool = True
    pipeline_root_uri: str = ""  # e.g. gs://bucket/rqvalue for Dataflow; empty: <output_dir>/pipeline_root
    serving_uri: str = ""  # where the Pusher writes model versions; empty: <output_dir>/serving

    def __post_init__(self):
        self.distillation.check_against(self.data, self.model)

    @property
    def pipeline_root(self) -> str:
        return self.pipeline_root_uri or os.path.join(self.output_dir, "pipeline_root")

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.output_dir, "metadata.sqlite")

    @property
    def serving_dir(self) -> str:
        return self.serving_uri or os.path.join(self.output_dir, "serving")


def _build(cls, values: Mapping[str, Any], where: str):
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
    kwargs = {}
    for name, value in values.items():
        if isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{where}: {e}") from None


def from_dict(values: Mapping[str, Any], base_dir: str = ".") -> RunConfig:
    """Builds a RunConfig from nested mappings (the YAML layout); relative data paths resolve against base_dir."""
    values = dict(values)
    if "data" not in values:
        raise ConfigError("data: section missing (feast_repo, spine, entity_columns, feature_refs, ...)")
    data = dict(values.pop("data"))
    for key in ("feast_repo", "spine", "schema"):
        if data.get(key) and not os.path.isabs(data[key]):
            data[key] = os.path.normpath(os.path.join(base_dir, data[key]))
    sections = {
        "data": _build(DataConfig, data, "data"),
        "model": _build(ModelConfig, values.pop("model", {}) or {}, "model"),
        "gate": _build(GateConfig, values.pop("gate", {}) or {}, "gate"),
        "trainer": _build(TrainerConfig, values.pop("trainer", {}) or {}, "trainer"),
        "scoring": _build(ScoringConfig, values.pop("scoring", {}) or {}, "scoring"),
        "distillation": _build(DistillationConfig, values.pop("distillation", {}) or {}, "distillation"),
    }
    top = _build(RunConfig, {**values, **sections}, "config")
    return top


def load(path: str) -> RunConfig:
    """Reads a YAML config file."""
    if not os.path.exists(path):
        raise ConfigError(f"config file {path!r} does not exist")
    with open(path) as f:
        values = yaml.safe_load(f) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path!r}: expected a mapping at the top level")
    return from_dict(values, base_dir=os.path.dirname(os.path.abspath(path)))


def replace(cfg: RunConfig, **sections: Mapping[str, Any]) -> RunConfig:
    """Returns cfg with fields of nested sections replaced, e.g. replace(cfg, model={'train_steps': 10})."""
    changes = {}
    for name, fields in sections.items():
        current = getattr(cfg, name)
        if dataclasses.is_dataclass(current):
            changes[name] = dataclasses.replace(current, **fields)
        else:
            changes[name] = fields
    return dataclasses.replace(cfg, **changes)
