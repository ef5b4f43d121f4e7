"""The ingestion in chunks: the same examples, splits, order and stop messages whatever `chunk_rows` is."""

import dataclasses
import glob
import os
import re

import numpy as np
import own_data
import pandas as pd
import pytest
import tensorflow as tf

from components import feature_store_example_gen as ingest
from components import privileged_retrieval, spine_chunks, training_examples
from pipeline import datasets
from pipeline.config import ConfigError
from schemas.feature_repo import definitions

WHOLE = 1_000_000  # one chunk


@pytest.fixture(scope="module")
def ltv(tmp_path_factory):
    data = datasets.prepare("synthetic_ltv", str(tmp_path_factory.mktemp("ltv")), rows=300)
    return ingest.IngestionSpec.from_data_config(data)


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """A user's own data: Int64 `tier` as a category, a 30-day TTL, 60 spine rows."""
    return ingest.IngestionSpec.from_data_config(own_data.prepare(str(tmp_path_factory.mktemp("own"))))


def _records(uri):
    """The examples of each split, file after file.

    Compared as protos: the order in which a serialized Example lists its features follows the
    protobuf map's hashing, which differs even between two serializations of one example.
    """
    found = {}
    for split in ingest.SPLITS:
        paths = sorted(glob.glob(os.path.join(uri, f"Split-{split}", "*.gz")))
        found[split] = [tf.train.Example.FromString(r.numpy())
                        for r in tf.data.TFRecordDataset(paths, compression_type="GZIP")]
    return found


def _spine(spec):
    return pd.read_parquet(spec.spine)


def _ingested(spec, tmp_path, chunk_rows, **kwargs):
    uri = str(tmp_path / f"chunks_{chunk_rows}")
    counts = ingest.ingest(dataclasses.replace(spec, chunk_rows=chunk_rows), uri, **kwargs)
    return counts, _records(uri)


def test_small_chunks_write_exactly_what_one_chunk_writes(ltv, tmp_path):
    counts, whole = _ingested(ltv, tmp_path, WHOLE)
    assert _ingested(ltv, tmp_path, 37) == (counts, whole)  # 9 chunks: same examples, splits and order
    # One file per chunk and split, so Beam can read a split in parallel; one chunk, one file.
    files = {chunks: len(glob.glob(os.path.join(tmp_path, f"chunks_{chunks}", "Split-train", "*.gz")))
             for chunks in (WHOLE, 37)}
    assert files == {WHOLE: 1, 37: 9}
    assert sum(counts[f"{split}_examples"] for split in ingest.SPLITS) == 300


def test_the_examples_are_those_of_the_whole_frame_encoding(ltv, tmp_path):
    """Each split holds, in spine order, the rows whose entity hashes to it, as `to_examples` encodes them."""
    _, written = _ingested(ltv, tmp_path, 100)
    frame = ingest.retrieve(ltv)
    splits = ingest.splits_of(frame, ltv)
    for split in ingest.SPLITS:
        expected = ingest.to_examples(frame[splits == split], ltv)
        assert written[split] == expected, split


def test_rows_with_missing_values_leave_the_feature_out(own, tmp_path):
    """The column-wise encoder would write an empty feature; rows with a missing value go the row-wise way."""
    spine = _spine(own)
    spine.loc[[3, 40], "customer_id"] = 10_000  # unknown to the store: every feature missing
    spec = _with_spine(own, spine, tmp_path, max_missing_feature_share=0.05)
    frame = ingest.retrieve(spec)
    encoded = training_examples.serialized_examples(frame, spec)
    for row in (3, 40):
        assert set(tf.train.Example.FromString(encoded[row]).features.feature) == {
            "customer_id", "prediction_time", "label"}
    assert [tf.train.Example.FromString(e) for e in encoded] == ingest.to_examples(frame, spec)
    counts, whole = _ingested(spec, tmp_path, WHOLE)
    assert counts["rows_without_features"] == 2
    assert _ingested(spec, tmp_path, 5) == (counts, whole)


def _with_spine(spec, spine, tmp_path, name="spine.csv", **changes):
    path = str(tmp_path / name)
    spine.to_csv(path, index=False) if name.endswith(".csv") else spine.to_parquet(path, index=False)
    return dataclasses.replace(spec, spine=path, **changes)


def _message(spec, chunk_rows):
    with pytest.raises(ingest.IngestionError) as raised:
        ingest.retrieve(dataclasses.replace(spec, chunk_rows=chunk_rows))
    return str(raised.value)


@pytest.mark.parametrize("name", ["spine.csv", "spine.parquet"])
def test_whole_spine_checks_count_across_chunks(own, tmp_path, name):
    spine = _spine(own).astype({"label": object})
    spine.loc[[4, 9, 50], "label"] = -1.0
    spine.loc[[20, 33], "label"] = np.nan
    spec = _with_spine(own, spine, tmp_path, name)
    message = _message(spec, 4)
    assert message == _message(spec, WHOLE)
    assert sum(int(n) for n in re.findall(r"(\d+) rows? with a negative", message)) == 3


def test_repeated_rows_in_different_chunks_are_found(own, tmp_path):
    spine = _spine(own)
    spine = pd.concat([spine, spine.iloc[[7, 30]]], ignore_index=True)
    spec = _with_spine(own, spine, tmp_path, "spine.parquet")
    message = _message(spec, 4)
    assert message == _message(spec, WHOLE)
    assert "4 spine rows share their (customer_id) and 'prediction_time'" in message


def test_rows_without_features_are_counted_across_chunks(own, tmp_path):
    spine = _spine(own)
    spine.loc[[3, 41], "customer_id"] = 10_000
    spine.loc[55, "prediction_time"] = spine.loc[55, "prediction_time"] + pd.Timedelta(days=45)
    spec = _with_spine(own, spine, tmp_path, "spine.parquet")
    message = _message(spec, 4)
    assert message == _message(spec, WHOLE)
    assert "3 of 60 spine rows (5.0%) have no feature row" in message
    assert "2 rows whose entity is not in the feature store" in message
    assert "1 row whose latest feature row is older than the view's TTL" in message


def test_privileged_features_are_the_same_in_chunks(tmp_path):
    data = datasets.prepare("cdnow_snapshots", str(tmp_path / "snapshots"), rows=20)
    spec = ingest.IngestionSpec.from_data_config(data)
    view = definitions.CDNOW_SNAPSHOTS_VIEW
    privileged = privileged_retrieval.PrivilegedSpec(names=("spend_next",), refs=(f"{view}:total_spend",),
                                                     reads=("change",), window_days=30)
    counts, whole = _ingested(spec, tmp_path, WHOLE, privileged=privileged)
    assert "rows_without_privileged_features" in counts
    assert _ingested(spec, tmp_path, 25, privileged=privileged) == (counts, whole)
    assert not any("spend_next" in e.features.feature for e in whole["eval"])
    assert any("spend_next" in e.features.feature for e in whole["train"])
    # The label check sees every training row, not one chunk's.
    spine = _spine(spec)
    frame = ingest.retrieve(spec)
    spine[spec.label] = privileged_retrieval.forward_values(frame, spec.feast_repo, spec.timestamp_column,
                                                            privileged)["spend_next"].to_numpy()
    leaking = _with_spine(spec, spine, tmp_path, "leaking.parquet", chunk_rows=40)
    with pytest.raises(ingest.IngestionError, match="'spend_next' equals the label 'label' on 100.0%"):
        ingest.ingest(leaking, str(tmp_path / "leaking"), privileged=privileged)


def test_chunk_rows_must_be_positive(ltv):
    with pytest.raises(ingest.IngestionError, match="data.chunk_rows"):
        dataclasses.replace(ltv, chunk_rows=0)
    data = datasets.prepare("synthetic_ltv", os.path.dirname(ltv.spine), rows=300)
    with pytest.raises(ConfigError, match=r"data\.chunk_rows: 0 must be a positive"):
        dataclasses.replace(data, chunk_rows=0)


def test_rebatched_keeps_order_and_sizes():
    pieces = [pd.DataFrame({"x": range(a, b)}) for a, b in ((0, 3), (3, 3), (3, 10), (10, 11))]
    chunks = list(spine_chunks.rebatched(iter(pieces), 4))
    assert [len(c) for c in chunks] == [4, 4, 3]
    assert pd.concat(chunks)["x"].tolist() == list(range(11))


def test_duplicated_positions_are_every_row_sharing_a_hash():
    hashes = np.array([5, 1, 5, 2, 1, 9], dtype=np.uint64)
    assert spine_chunks.duplicated_positions(hashes).tolist() == [0, 1, 2, 4]
