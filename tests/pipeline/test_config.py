"""Run config: YAML loading, relative paths, and errors that name the field."""

import pytest
import yaml

from pipeline import config

DATA = {
    "feast_repo": "repo",
    "spine": "spine.parquet",
    "entity_columns": ["customer_id"],
    "feature_refs": ["profile:spend", "profile:channel"],
    "numeric_features": ["spend"],
    "categorical_features": ["channel"],
}


def test_load_resolves_paths_against_the_file_and_reads_sections(tmp_path):
    path = tmp_path / "own.yaml"
    path.write_text(yaml.safe_dump({"data": DATA, "model": {"codebook_sizes": [16, 8], "train_steps": 10}}))
    cfg = config.load(str(path))
    assert cfg.data.feast_repo == str(tmp_path / "repo")
    assert cfg.data.entity_columns == ("customer_id",)
    assert cfg.model.codebook_sizes == (16, 8)
    assert cfg.model.train_steps == 10


@pytest.mark.parametrize("change, field", [
    ({"feature_refs": ["spend"]}, "data.feature_refs"),
    ({"numeric_features": ["nope"]}, "data.numeric_features"),
    ({"entity_columns": []}, "data.entity_columns"),
    ({"eval_fraction": 1.5}, "data.eval_fraction"),
    ({"label": "spend"}, "data.label"),
    ({"span_days": -7}, "data.span_days"),
    ({"window_spans": 0}, "data.window_spans"),
    ({"span_origin": "monday"}, "data.span_origin"),
    ({"max_missing_feature_share": -0.1}, "data.max_missing_feature_share"),
    ({"max_missing_feature_share": 1.5}, "data.max_missing_feature_share"),
    ({"colour": "red"}, "colour"),
])
def test_bad_data_section_names_the_field(change, field):
    with pytest.raises(config.ConfigError, match=field):
        config.from_dict({"data": {**DATA, **change}})


@pytest.mark.parametrize("model, field", [
    ({"label_transform": "sqrt"}, "model.label_transform"),
    ({"codebook_sizes": [1]}, "model.codebook_sizes"),
    ({"train_steps": 0}, "model.train_steps"),
    ({"gbdt_loss": "tweedie"}, "model.gbdt_loss"),
    ({"gbdt_max_depths": []}, "model.gbdt_max_depths"),
    ({"gbdt_shrinkages": [0.1, -0.1]}, "model.gbdt_shrinkages"),
])
def test_bad_model_section_names_the_field(model, field):
    with pytest.raises(config.ConfigError, match=field):
        config.from_dict({"data": DATA, "model": model})


def test_missing_file_and_missing_data_section_are_clear(tmp_path):
    with pytest.raises(config.ConfigError, match="does not exist"):
        config.load(str(tmp_path / "none.yaml"))
    with pytest.raises(config.ConfigError, match="data: section missing"):
        config.from_dict({})


def test_replace_changes_nested_fields_only():
    cfg = config.from_dict({"data": DATA})
    changed = config.replace(cfg, model={"train_steps": 7}, output_dir="/tmp/x")
    assert changed.model.train_steps == 7 and changed.output_dir == "/tmp/x"
    assert changed.model.codebook_sizes == cfg.model.codebook_sizes


def test_the_own_data_template_is_a_valid_config():
    import os
    cfg = config.load(os.path.join(os.path.dirname(config.__file__), "configs", "own_data.yaml"))
    assert cfg.model.kind == "rqreg" and cfg.gate.gini_tolerance == 0.02


def test_every_configurable_model_kind_has_a_builder():
    from models import registry
    assert set(config.MODEL_KINDS) == set(registry.KINDS)


def test_spans_from_yaml_take_a_bare_date_as_the_origin(tmp_path):
    path = tmp_path / "own.yaml"
    path.write_text("data:\n" + "".join(f"  {k}: {v}\n" for k, v in DATA.items())
                    + "  span_days: 7\n  span_origin: 2024-01-01\n  window_spans: 3\n")
    cfg = config.load(str(path))
    assert (cfg.data.spans, cfg.data.span_days, cfg.data.span_origin, cfg.data.window_spans) == (True, 7, "2024-01-01", 3)
    assert not config.from_dict({"data": DATA}).data.spans
