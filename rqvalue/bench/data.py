"""Bench data: ingestion and Transform of one embedded data set, as the pipeline does them.

Ingestion: `pipeline.datasets.prepare`, then `components.feature_store_example_gen.retrieve` (Feast
point-in-time join) and `to_examples`, split train/eval by the same entity hash (`split_of`) as
`FeatureStoreExampleGen`; a validation slice for early stopping is carved out of train by a second
entity hash (`split_of("validation|" + key, VALIDATION_FRACTION)`), so the eval split is used for the
final metrics only. Transform: `models.preprocessing.preprocessing_fn` analysed on train with
`tensorflow_transform.beam` (in memory, curated schema as the raw schema) and written with
`WriteTransformFn`; every split's transformed features come from the written
`tft.TFTransformOutput.transform_features_layer()`, the graph `TransformDataset` applies.
"""

import dataclasses
import os
import shutil
import tempfile
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from rqvalue.bench.rows import VALIDATION_FRACTION


@dataclasses.dataclass
class Prepared:
    """One data set after ingestion and Transform."""

    name: str
    data: Any  # pipeline.config.DataConfig
    model: Any  # pipeline.config.ModelConfig (transform settings used)
    transform_dir: str
    tft_output: Any
    splits: Dict[str, Dict[str, np.ndarray]]  # split -> transformed features (incl. the target)
    labels: Dict[str, np.ndarray]  # split -> labels in label units (from the raw examples)
    keys: Dict[str, np.ndarray]  # split -> entity key of each row (rows of one entity are resampled together)
    serialized: Dict[str, List[bytes]]  # split -> serialized raw tf.Examples
    counts: Dict[str, int]
    seconds: float
    times: Optional[Dict[str, np.ndarray]] = None  # split -> prediction time of each row (text)


def _entity_key(frame, spec) -> List[str]:
    from components import feature_store_example_gen as gen
    return gen.entity_keys_of(frame, spec).tolist()


def ingest(data) -> Tuple[Dict[str, List[bytes]], Dict[str, np.ndarray], Dict[str, np.ndarray],
                         Dict[str, np.ndarray]]:
    """Serialized raw examples, labels, entity keys and prediction times per split: train / validation / eval."""
    from components import feature_store_example_gen as gen

    spec = gen.IngestionSpec.from_data_config(data)
    frame = gen.retrieve(spec)
    examples = gen.to_examples(frame, spec)
    labels = frame[spec.label].astype(float).to_numpy()
    serialized = {"train": [], "validation": [], "eval": []}
    split_labels = {"train": [], "validation": [], "eval": []}
    split_keys = {"train": [], "validation": [], "eval": []}
    split_times = {"train": [], "validation": [], "eval": []}
    times = frame[spec.timestamp_column].astype(str).to_numpy()
    for example, key, label, when in zip(examples, _entity_key(frame, spec), labels, times):
        split = gen.split_of(key, spec.eval_fraction)
        if split == "train" and gen.split_of("validation|" + key, VALIDATION_FRACTION) == "eval":
            split = "validation"
        serialized[split].append(example.SerializeToString())
        split_labels[split].append(label)
        split_keys[split].append(key)
        split_times[split].append(when)
    for split, rows in serialized.items():
        if not rows:
            raise ValueError(f"bench: split {split!r} of {data.spine!r} is empty; use more rows")
    return (serialized, {k: np.asarray(v, dtype=np.float64) for k, v in split_labels.items()},
            {k: np.asarray(v) for k, v in split_keys.items()}, {k: np.asarray(v) for k, v in split_times.items()})


def _load_schema(path: str):
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2
    with open(path) as f:
        return text_format.Parse(f.read(), schema_pb2.Schema())


def analyze(data, model, train_serialized: Sequence[bytes], transform_dir: str) -> None:
    """Runs preprocessing_fn's analyzers on train with TFT's Beam implementation; writes the transform fn."""
    import apache_beam as beam
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from tensorflow_transform.tf_metadata import metadata_io
    from tfx_bsl.public import tfxio

    from models import preprocessing

    schema = _load_schema(data.schema)
    custom_config = preprocessing.transform_config(data, model)
    raw_tfxio = tfxio.TFExampleBeamRecord(physical_format="inmem", telemetry_descriptors=["rqvalue", "bench"],
                                          schema=schema)
    options = PipelineOptions(["--direct_running_mode=in_memory", "--direct_num_workers=1"])
    os.makedirs(os.path.dirname(transform_dir), exist_ok=True)
    temp_dir = tempfile.mkdtemp(prefix="tft_tmp_", dir=os.path.dirname(transform_dir))
    try:
        with beam.Pipeline(options=options) as p, tft_beam.Context(temp_dir=temp_dir):
            raw = p | "Create" >> beam.Create(list(train_serialized)) | "Decode" >> raw_tfxio.BeamSource()
            (_, _), transform_fn = ((raw, raw_tfxio.TensorAdapterConfig())
                                    | tft_beam.AnalyzeAndTransformDataset(
                                        lambda inputs: preprocessing.preprocessing_fn(inputs, custom_config),
                                        output_record_batches=True))
            _ = transform_fn | tft_beam.WriteTransformFn(transform_dir)
        # The raw schema, as TFX's Transform executor writes it (raw_feature_spec, serving).
        metadata_io.write_metadata(tft.DatasetMetadata(schema),
                                   os.path.join(transform_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)


def transform(tft_output, serialized: Sequence[bytes], batch: int = 4096) -> Dict[str, np.ndarray]:
    """Transformed features of serialized raw examples (with label), in input order."""
    import tensorflow as tf

    layer = tft_output.transform_features_layer()
    spec = tft_output.raw_feature_spec()
    columns: Dict[str, List[np.ndarray]] = {}
    for start in range(0, len(serialized), batch):
        raw = tf.io.parse_example(tf.constant(list(serialized[start:start + batch])), spec)
        for key, value in layer(raw).items():
            if isinstance(value, tf.Tensor):
                columns.setdefault(key, []).append(value.numpy())
    return {key: np.concatenate(parts) for key, parts in columns.items()}


def prepare_dataset(name: str, work_dir: str, rows: Optional[int], log=print) -> Prepared:
    """Ingestion and Transform (default ModelConfig transform settings) of one embedded data set."""
    from pipeline import config as config_lib
    from pipeline import datasets

    started = time.time()
    data = datasets.prepare(name, os.path.join(work_dir, "data", name), rows=rows)
    serialized, labels, keys, times = ingest(data)
    prepared = _with_transform(name, data, config_lib.ModelConfig(), serialized, labels, keys,
                               os.path.join(work_dir, "transform", name), started)
    prepared.times = times
    log(f"[{name}] prepared in {prepared.seconds:.0f} s: "
        + ", ".join(f"{k} {v:,}" for k, v in prepared.counts.items()))
    return prepared


def reanalyze(prepared: Prepared, changes: Mapping[str, Any], work_dir: str, log=print) -> Prepared:
    """The same ingested data set under another Transform: ModelConfig with `changes` (transform settings)."""
    started = time.time()
    model = dataclasses.replace(prepared.model, **changes)
    key = transform_key(changes)
    variant = _with_transform(prepared.name, prepared.data, model, prepared.serialized, prepared.labels,
                              prepared.keys, os.path.join(work_dir, "transform", prepared.name + "@" + key), started)
    variant.times = prepared.times
    log(f"[{prepared.name}] Transform with {key} in {variant.seconds:.0f} s")
    return variant


def transform_key(changes: Mapping[str, Any]) -> str:
    """A name for a set of Transform settings, e.g. "codebook_sizes=16x8x8" (its folder, its log line)."""
    return "-".join(f"{k}={'x'.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
                    for k, v in sorted(changes.items()))


def _with_transform(name: str, data, model, serialized: Dict[str, List[bytes]], labels: Dict[str, np.ndarray],
                    keys: Dict[str, np.ndarray], transform_dir: str, started: float) -> Prepared:
    """Analyses train under `model`'s transform settings into transform_dir and transforms every split."""
    import tensorflow_transform as tft

    shutil.rmtree(transform_dir, ignore_errors=True)
    os.makedirs(os.path.dirname(transform_dir), exist_ok=True)
    analyze(data, model, serialized["train"], transform_dir)
    tft_output = tft.TFTransformOutput(transform_dir)
    splits = {split: transform(tft_output, rows_) for split, rows_ in serialized.items()}
    counts = {split: len(rows_) for split, rows_ in serialized.items()}
    return Prepared(name, data, model, transform_dir, tft_output, splits, labels, keys, serialized, counts,
                    time.time() - started)
