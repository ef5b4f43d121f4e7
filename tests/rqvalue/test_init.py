"""`rqvalue init`: the repo, config and schema it writes from a features table and a spine, and its refusals."""

import os
import subprocess
import sys

import own_tables
import pandas as pd
import pytest
from feast import FeatureStore
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from pipeline import config as config_lib
from rqvalue import cli
from rqvalue import init as init_lib


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("own")
    return own_tables.write(folder)


def _init(argv, capsys=None):
    code = cli.main(["init", *argv])
    return code, (capsys.readouterr() if capsys else None)


@pytest.fixture(scope="module")
def written(inputs, tmp_path_factory):
    features, spine = inputs
    out = tmp_path_factory.mktemp("repo")
    assert cli.main(["init", "--features", features, "--spine", spine, "--entity", "customer_id",
                     "--out", str(out)]) == 0
    return out


def test_the_config_loads_and_names_every_feature_with_its_role(written, inputs):
    cfg = config_lib.load(str(written / "rqvalue.yaml"))
    assert cfg.data.feast_repo == str(written / "feature_repo") and cfg.data.spine == inputs[1]
    assert cfg.data.feature_refs == ("features:basket_value", "features:visits", "features:store_id",
                                     "features:channel")
    assert cfg.data.numeric_features == ("basket_value", "visits")  # a count is a number
    assert cfg.data.categorical_features == ("store_id", "channel")  # an integer *_id is a code
    assert cfg.data.schema == str(written / "schema.pbtxt") and cfg.pipeline_name == "rqvalue-features"


def test_feast_knows_the_view_with_types_from_the_data_and_an_explicit_ttl(written):
    store = FeatureStore(repo_path=str(written / "feature_repo"))
    view = store.get_feature_view("features")
    assert {f.name: str(f.dtype) for f in view.features} == {
        "basket_value": "Float64", "visits": "Int64", "store_id": "Int64", "channel": "String"}
    features = pd.read_parquet(view.batch_source.path)
    span = features.event_timestamp.max() - features.event_timestamp.min()
    assert view.ttl.days == -(-span // pd.Timedelta(days=1))  # the span of the feature rows, whole days
    assert [e.name for e in store.list_entities()] == ["customer_id"]
    assert store.get_feature_service("features_v1").feature_view_projections[0].name == "features"


def test_the_definitions_file_registers_with_the_feast_command(written, tmp_path):
    copy = tmp_path / "repo"
    subprocess.run(["cp", "-r", str(written / "feature_repo"), str(copy)], check=True)
    os.remove(copy / "data" / "registry.db")
    feast = os.path.join(os.path.dirname(sys.executable), "feast")
    done = subprocess.run([feast, "apply"], cwd=copy, capture_output=True, text=True,
                          env={**os.environ, "FEAST_USAGE": "False"})
    assert done.returncode == 0, done.stderr
    assert "features" in FeatureStore(repo_path=str(copy)).list_feature_views()[0].name


def test_the_starter_schema_holds_the_label_domain(written):
    schema = text_format.Parse((written / "schema.pbtxt").read_text(), schema_pb2.Schema())
    label = next(f for f in schema.feature if f.name == "label")
    assert label.type == schema_pb2.FLOAT and label.float_domain.min == 0.0
    assert label.presence.min_fraction == 1.0 and list(label.not_in_environment) == ["SERVING"]
    kinds = {f.name: f.type for f in schema.feature}
    assert kinds["store_id"] == schema_pb2.BYTES and kinds["visits"] == schema_pb2.FLOAT
    assert kinds["customer_id"] == schema_pb2.BYTES and kinds["prediction_time"] == schema_pb2.INT


def test_flags_override_roles_and_a_csv_features_table_is_converted(inputs, tmp_path, capsys):
    features = pd.read_parquet(inputs[0])
    features.to_csv(tmp_path / "features.csv", index=False)
    code, printed = _init(["--features", str(tmp_path / "features.csv"), "--spine", inputs[1], "--entity",
                           "customer_id", "--out", str(tmp_path / "o"), "--numeric", "store_id", "--categorical",
                           "visits", "--exclude", "basket_value", "--ttl-days", "30", "--name", "Shop Stats"],
                          capsys)
    assert code == 0, printed.err
    cfg = config_lib.load(str(tmp_path / "o" / "rqvalue.yaml"))
    assert cfg.data.numeric_features == ("store_id",) and cfg.data.categorical_features == ("visits", "channel")
    view = FeatureStore(repo_path=cfg.data.feast_repo).get_feature_view("shop_stats")
    assert view.ttl.days == 30 and view.batch_source.path.startswith(cfg.data.feast_repo)
    assert "next: rqvalue run --config" in printed.out


@pytest.mark.parametrize("change, message", [
    (lambda f, s: (f.drop(columns="event_timestamp"), s), "--features: column 'event_timestamp' is missing"),
    (lambda f, s: (f, s.drop(columns="customer_id")), "--spine: column 'customer_id' is missing"),
    (lambda f, s: (f, s.assign(label=s.label.astype(str) + " USD")),
     "--spine column 'label' (the label) is not numeric"),
    (lambda f, s: (f, s.assign(label=-s.label)), "labels are negative"),
    (lambda f, s: (f, s.assign(customer_id=s.customer_id.astype(str) + "x")), "--spine column 'customer_id' holds"),
    (lambda f, s: (f.assign(tags=[["a"]] * len(f)), s), "--features column 'tags'"),
])
def test_bad_inputs_are_refused_naming_the_column(inputs, tmp_path, capsys, change, message):
    features, spine = change(pd.read_parquet(inputs[0]), pd.read_csv(inputs[1]))
    features.to_parquet(tmp_path / "f.parquet", index=False)
    spine.to_csv(tmp_path / "s.csv", index=False)
    code, printed = _init(["--features", str(tmp_path / "f.parquet"), "--spine", str(tmp_path / "s.csv"),
                           "--entity", "customer_id", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and message in printed.err, printed.err
    assert not os.path.exists(tmp_path / "o" / "feature_repo")


def test_a_folder_that_holds_a_repo_is_refused_unless_forced(written, inputs, capsys):
    argv = ["--features", inputs[0], "--spine", inputs[1], "--entity", "customer_id", "--out", str(written)]
    code, printed = _init(argv, capsys)
    assert code == 2 and "already holds a repository or config" in printed.err
    assert str(written / "feature_repo" / "feature_store.yaml") in printed.err
    code, printed = _init([*argv, "--force", "--ttl-days", "200"], capsys)
    assert code == 0, printed.err
    assert FeatureStore(repo_path=str(written / "feature_repo")).get_feature_view("features").ttl.days == 200


def test_types_and_roles_are_inferred_from_the_data():
    frame = pd.DataFrame({"customer_id": [1], "event_timestamp": pd.to_datetime(["2024-01-01"], utc=True),
                          "amount": [1.5], "n": [2], "region_code": [7], "vip": [True], "name": ["x"]})
    request = init_lib.InitRequest(features="f", spine="s", out_dir="o", entity_columns=("customer_id",))
    found = {c.name: (c.feast_type, c.role) for c in init_lib.infer_features(frame, request)}
    assert found == {"amount": ("Float64", "numeric"), "n": ("Int64", "numeric"),
                     "region_code": ("Int64", "categorical"), "vip": ("Bool", "numeric"),
                     "name": ("String", "categorical")}
