"""Own data in, predictions out: init -> run -> predict -> an online lookup equals the SavedModel on the
entity's features; scoring the same as-of time again replaces its rows."""

import json
import os

import numpy as np
import own_tables
import pandas as pd
import pytest
import tensorflow as tf
from feast import FeatureStore

from components import bulk_scoring
from rqvalue import cli

pytestmark = pytest.mark.e2e

AS_OF = pd.Timestamp("2024-04-15", tz="UTC")


def _served(model_dir, features, ids):
    """The SavedModel's serving_default outputs for each id, from its latest feature row at or before AS_OF."""
    known = features[features.event_timestamp <= AS_OF].sort_values("event_timestamp").groupby("customer_id").last()
    serialized = []
    for customer in ids:
        row = known.loc[customer]
        example = tf.train.Example()
        feature = example.features.feature
        feature["basket_value"].float_list.value.append(row.basket_value)
        feature["visits"].float_list.value.append(row.visits)
        feature["store_id"].bytes_list.value.append(str(row.store_id).encode())
        feature["channel"].bytes_list.value.append(row.channel.encode())
        serialized.append(example.SerializeToString())
    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    return {key: value.numpy() for key, value in serve(examples=tf.constant(serialized)).items()}


def test_init_run_predict_online_and_rescore(tmp_path, capsys):
    features_path, spine_path = own_tables.write(tmp_path, customers=300)
    out = tmp_path / "mine"
    assert cli.main(["init", "--features", features_path, "--spine", spine_path, "--entity", "customer_id",
                     "--out", str(out)]) == 0
    config, runs = str(out / "rqvalue.yaml"), str(out / "runs")
    assert cli.main(["run", "--config", config, "--output-dir", runs, "--train-steps", "40"]) == 0
    version = os.listdir(os.path.join(runs, "serving"))[0]
    capsys.readouterr()

    predict = ["predict", "--config", config, "--output-dir", runs, "--as-of", AS_OF.isoformat()]
    assert cli.main(predict) == 0
    printed = capsys.readouterr().out
    view_dir = os.path.join(runs, "predictions", "predicted_label")
    table = pd.read_parquet(view_dir)
    features = pd.read_parquet(features_path)
    store = FeatureStore(repo_path=str(out / "feature_repo"))
    ttl_start = AS_OF - store.get_feature_view("features").ttl
    recent = features[(features.event_timestamp <= AS_OF) & (features.event_timestamp >= ttl_start)]
    assert sorted(table.customer_id) == sorted(recent.customer_id.unique())
    unscored = 300 - len(table)
    assert unscored > 0 and f"entities without features (not scored): {unscored}" in printed
    assert set(table.model_version) == {version} and (table.as_of == AS_OF).all()

    ids = table.customer_id.sort_values().to_numpy()[:8]
    online = store.get_online_features(["predicted_label:prediction", "predicted_label:model_version"],
                                       [{"customer_id": int(i)} for i in ids]).to_dict()
    model_dir = os.path.join(runs, "serving", version)
    assert bulk_scoring.scoring_signature(model_dir) == "score_packed"  # what BulkInferrer scored with
    expected = _served(model_dir, features, ids)
    np.testing.assert_allclose(online["prediction"], expected["prediction"], rtol=1e-5)
    written = table.set_index("customer_id").loc[ids]
    for key in ("median", "lower", "upper"):
        np.testing.assert_allclose(written[key], expected[key], rtol=1e-5, err_msg=key)
    np.testing.assert_array_equal(np.stack(written.rq_codes), expected["codes"])
    assert online["model_version"] == [version] * len(ids)

    assert cli.main(predict) == 0, "scoring the same as-of time again"
    again = pd.read_parquet(view_dir)
    assert len(again) == len(table) and again.customer_id.is_unique and again.run_id.nunique() == 1
    assert again.run_id.iat[0] != table.run_id.iat[0]
    capsys.readouterr()
    assert cli.main(["inspect", "predictions", "--output-dir", runs, "--json"]) == 0
    scorings = json.loads(capsys.readouterr().out)["scorings"]
    assert [(s["as_of"], s["rows"], s["replaced"]) for s in scorings] == [
        (AS_OF.isoformat(), len(table), 0), (AS_OF.isoformat(), len(table), 1)]

    assert cli.main([*predict, "--model-version", "1"]) == 2
    assert f"not among the pushed versions ({version})" in capsys.readouterr().err
