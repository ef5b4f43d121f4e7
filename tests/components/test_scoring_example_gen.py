"""Scoring examples: which entities, features as of the time (never later), chunks, and the unscored list."""

import glob
import os

import pandas as pd
import pytest
import tensorflow as tf

from components import scoring_example_gen as scoring
from components.feature_store_example_gen import IngestionError
from pipeline import datasets
from schemas import features


@pytest.fixture(scope="module")
def ltv(tmp_path_factory):
    data = datasets.prepare("synthetic_ltv", str(tmp_path_factory.mktemp("ltv")), rows=200)
    table = pd.read_parquet(os.path.join(data.feast_repo, "data", "customer_profile.parquet"))
    return data, table


def _spec(data, as_of, **changes):
    values = dict(feast_repo=data.feast_repo, entity_columns=data.entity_columns, feature_refs=data.feature_refs,
                  numeric_features=data.numeric_features, categorical_features=data.categorical_features,
                  timestamp_column=data.timestamp_column, as_of=as_of)
    values.update(changes)
    return scoring.ScoringSpec(**values)


def _read(uri):
    files = sorted(glob.glob(os.path.join(uri, "Split-score", "*.gz")))
    examples = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(files, "GZIP")]
    return files, {int(e.features.feature["customer_id"].bytes_list.value[0]): e for e in examples}


def test_every_entity_known_by_then_with_its_latest_features(ltv, tmp_path):
    data, table = ltv
    as_of = pd.Timestamp("2023-07-01", tz="UTC")
    counts = scoring.write_scoring_examples(_spec(data, as_of.isoformat(), chunk_rows=60), str(tmp_path))
    known = table[table[features.EVENT_TIMESTAMP_KEY] <= as_of]
    assert counts == {"entities": known.customer_id.nunique(), "score_examples": known.customer_id.nunique(),
                      "entities_without_features": 0}
    assert table.customer_id.nunique() > counts["entities"], "entities first seen after the as-of time are not scored"
    files, examples = _read(str(tmp_path))
    assert len(files) == -(-counts["entities"] // 60)  # one shard per chunk
    latest = known.sort_values(features.EVENT_TIMESTAMP_KEY).groupby("customer_id").last()
    for customer, example in list(examples.items())[:40]:
        feature = example.features.feature
        assert feature["spend_to_date"].float_list.value[0] == pytest.approx(latest.at[customer, "spend_to_date"])
        assert feature["channel"].bytes_list.value[0].decode() == latest.at[customer, "channel"]
        assert feature[data.timestamp_column].int64_list.value[0] == int(as_of.timestamp())
        assert data.label not in feature


def test_listed_entities_without_features_are_listed_not_scored(ltv, tmp_path):
    data, table = ltv
    ids = tmp_path / "ids.csv"
    pd.DataFrame({"customer_id": [1, 2, 999_999], "other": ["a", "b", "c"]}).to_csv(ids, index=False)
    out = tmp_path / "out"
    counts = scoring.write_scoring_examples(_spec(data, "2024-12-31", entities=str(ids)), str(out))
    assert counts == {"entities": 3, "score_examples": 2, "entities_without_features": 1}
    assert pd.read_csv(out / scoring.MISSING_FILE).customer_id.tolist() == [999_999]
    assert sorted(_read(str(out))[1]) == [1, 2]


def test_nothing_to_score_is_an_error_naming_the_time(ltv, tmp_path):
    data, _ = ltv
    with pytest.raises(IngestionError, match=r"--as-of 2020-01-01T00:00:00\+00:00: nothing to score"):
        scoring.write_scoring_examples(_spec(data, "2020-01-01"), str(tmp_path))


def test_bad_inputs_name_the_option(ltv, tmp_path):
    data, _ = ltv
    with pytest.raises(IngestionError, match="--as-of: 'yesterday' is not a time"):
        _spec(data, "yesterday").as_of_time
    ids = tmp_path / "ids.csv"
    pd.DataFrame({"user": [1]}).to_csv(ids, index=False)
    with pytest.raises(IngestionError, match="--entities: column 'customer_id' is missing"):
        scoring.write_scoring_examples(_spec(data, "2024-01-01", entities=str(ids)), str(tmp_path))
