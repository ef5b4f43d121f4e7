"""One's own data with an inferred schema: bad labels and rows without features stop the run before
Transform with nothing pushed; an allowed share of featureless rows trains, the inferred schema gets
the label's rules, and an integer category is served by its digits."""

import dataclasses
import glob
import os

import numpy as np
import own_data
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.utils import io_utils

from components import feature_store_example_gen as ingest
from pipeline import config as config_lib
from pipeline import local_runner

pytestmark = pytest.mark.e2e

MODEL = config_lib.ModelConfig(codebook_sizes=(8, 4), train_steps=20, eval_steps=3, batch_size=64)


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """(DataConfig of 400 customers' own data, its spine, a folder for variants)."""
    root = tmp_path_factory.mktemp("own")
    data = own_data.prepare(str(root / "data"), customers=400)
    return data, pd.read_parquet(data.spine), root


def _config(own, spine: pd.DataFrame, name: str, **data_changes) -> config_lib.RunConfig:
    data, _, root = own
    path = str(root / f"{name}.csv")
    spine.to_csv(path, index=False)
    return config_lib.RunConfig(data=dataclasses.replace(data, spine=path, **data_changes), model=MODEL,
                                output_dir=str(root / name))


@pytest.fixture(scope="module")
def featureless_run(own):
    """A run whose spine has one customer unknown to the store, allowed by max_missing_feature_share."""
    spine = own[1].copy()
    spine.loc[3, "customer_id"] = 10_000
    cfg = _config(own, spine, "featureless", max_missing_feature_share=0.01)
    return cfg, local_runner.run(cfg, report=None)


def _stopped_before_transform(cfg):
    assert not os.path.exists(os.path.join(cfg.pipeline_root, "Transform"))
    assert not os.path.exists(cfg.serving_dir)


def test_bad_labels_stop_before_transform_naming_split_column_count_and_entity(own):
    spine = own[1].astype({"label": object})
    spine.loc[3, "label"], spine.loc[5, "label"], spine.loc[9, "label"] = -1.0, np.nan, "abc"
    cfg = _config(own, spine, "bad_labels")
    with pytest.raises(ingest.IngestionError) as raised:
        local_runner.run(cfg, report=None)
    message = str(raised.value)
    assert "data.label 'label'" in message and "nothing was trained or pushed" in message
    faults = (("a negative label", 4), ("no label (empty or NaN)", 6), ("a label that is not a number", 10))
    for fault, customer in faults:
        assert f"1 row with {fault} (e.g. customer_id={customer} at " in message, message
    assert len(message.splitlines()) == 4
    _stopped_before_transform(cfg)


def test_rows_with_feature_rows_only_later_stop_before_transform_with_that_cause(own):
    spine = own[1].copy()
    spine.loc[3, "prediction_time"] -= pd.Timedelta(days=2)
    cfg = _config(own, spine, "only_later")
    with pytest.raises(ingest.IngestionError, match="whose feature rows all lie after its prediction time"):
        local_runner.run(cfg, report=None)
    _stopped_before_transform(cfg)


def test_an_allowed_featureless_row_trains_pushes_and_is_counted(featureless_run):
    cfg, result = featureless_run
    assert result.pushed_model and os.path.exists(os.path.join(result.pushed_model, "saved_model.pb"))
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = cfg.metadata_path
    store = metadata_store.MetadataStore(connection)
    counted = [a.custom_properties["rows_without_features"].int_value
               for a in store.get_artifacts_by_type("Examples") if "rows_without_features" in a.custom_properties]
    assert counted == [1]


def test_the_inferred_schema_gets_the_label_rules(featureless_run):
    cfg, _ = featureless_run
    (path,) = glob.glob(os.path.join(cfg.pipeline_root, "LabelRules", "schema", "*", "schema.pbtxt"))
    label = next(f for f in io_utils.SchemaReader().read(path).feature if f.name == "label")
    assert label.float_domain.min == 0.0 and label.float_domain.disallow_nan
    assert label.presence.min_fraction == 1.0


def test_an_integer_category_is_served_by_its_digits(featureless_run):
    """Feast Int64 `tier` is a category "1", "2", "3" (never "3.0"): a client sends b"3" as bytes."""
    cfg, result = featureless_run
    (graph,) = glob.glob(os.path.join(cfg.pipeline_root, "Transform", "transform_graph", "*"))
    assert sorted(tft.TFTransformOutput(graph).vocabulary_by_name("tier")) == [b"1", b"2", b"3"]
    model = tf.saved_model.load(result.pushed_model)

    def example(tier):
        feature = {"spend": tf.train.Feature(float_list=tf.train.FloatList(value=[20.0])),
                   "channel": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"web"])),
                   "tier": tier}
        return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()

    digits = example(tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"3"])))
    decimal = example(tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"3.0"])))
    transformed = model.signatures["transform_features"](examples=tf.constant([digits, decimal]))["tier_xf"].numpy()
    assert transformed[0] < 3 and transformed[1] == 3  # in the vocabulary; the out-of-vocabulary bucket
    prediction = model.signatures["serving_default"](examples=tf.constant([digits]))["prediction"].numpy()
    assert np.isfinite(prediction).all()
    integer = example(tf.train.Feature(int64_list=tf.train.Int64List(value=[3])))
    with pytest.raises(tf.errors.InvalidArgumentError, match="tier"):
        model.signatures["serving_default"](examples=tf.constant([integer]))
