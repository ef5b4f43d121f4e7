"""The distillation section: privileged features, their window against the label's, and errors that name the field."""

import pytest
import yaml
from test_config import DATA as CONFIG_DATA

from pipeline import config

DATA = {**CONFIG_DATA, "label": "label"}
SPEND = {"name": "spend_next_30d", "ref": "profile:spend"}
ON = {"enabled": True, "privileged_features": [SPEND], "window_days": 30, "label_window_days": 365}


def test_yaml_section_is_read_into_frozen_entries(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"data": DATA, "distillation": {
        **ON, "privileged_features": [SPEND, {"name": "cds_at_30d", "ref": "profile:cds", "read": "value"}],
        "alignment_weight": 0.5, "code_kl_weight": 0.1}}))
    cfg = config.load(str(path))
    assert cfg.distillation.enabled
    assert cfg.distillation.privileged_names == ("spend_next_30d", "cds_at_30d")
    assert [f.read for f in cfg.distillation.privileged_features] == ["change", "value"]
    assert (cfg.distillation.alignment_weight, cfg.distillation.code_kl_weight) == (0.5, 0.1)


def test_off_by_default_and_replace_takes_plain_entries():
    cfg = config.from_dict({"data": DATA})
    assert not cfg.distillation.enabled
    on = config.replace(cfg, distillation=ON)
    assert on.distillation.privileged_features == (config.PrivilegedFeature("spend_next_30d", "profile:spend"),)


@pytest.mark.parametrize("start, days", [(0, 365), (30, 335), (60, 30)])
def test_label_window_that_includes_the_privileged_window_or_starts_after_it_is_accepted(start, days):
    cfg = config.from_dict({"data": DATA, "distillation": {
        **ON, "label_window_start_days": start, "label_window_days": days}})
    assert cfg.distillation.label_window_start_days == start


@pytest.mark.parametrize("change, field, words", [
    ({"window_days": 0}, "distillation.window_days", "at least 1"),
    ({"alignment_weight": -1.0}, "distillation.alignment_weight", "negative"),
    ({"code_kl_weight": -0.1}, "distillation.code_kl_weight", "negative"),
    ({"kl_temperature": 0.0}, "distillation.kl_temperature", "positive"),
    ({"privileged_features": [{**SPEND, "read": "sum"}]}, "distillation.privileged_features", "read 'sum'"),
    ({"privileged_features": [{**SPEND, "ref": "spend"}]}, "distillation.privileged_features", "feature_view:feature"),
    ({"privileged_features": [{**SPEND, "colour": "red"}]}, "distillation.privileged_features", "colour"),
    ({"privileged_features": ["profile:spend"]}, "distillation.privileged_features", "not a mapping"),
    ({"privileged_features": [SPEND, SPEND]}, "distillation.privileged_features", "more than once"),
    ({"privileged_features": []}, "distillation.privileged_features", "declares no"),
    ({"label_window_days": 0}, "distillation.label_window_days", "declare"),
    ({"label_window_start_days": -1}, "distillation.label_window_start_days", "negative"),
    # The label window starts inside the privileged window: neither includes it nor starts after it.
    ({"label_window_start_days": 10}, "distillation.label_window_start_days", "inside the privileged window"),
    # The privileged window covers the whole label window: its features would be the label.
    ({"label_window_days": 30}, "distillation.window_days", "would be the label"),
    ({"window_days": 400}, "distillation.window_days", "would be the label"),
])
def test_bad_distillation_section_names_the_field(change, field, words):
    with pytest.raises(config.ConfigError, match=field) as error:
        config.from_dict({"data": DATA, "distillation": {**ON, **change}})
    assert words in str(error.value)


@pytest.mark.parametrize("feature, model, words", [
    ({"name": "label", "ref": "profile:spend"}, {}, "is the label"),
    ({"name": "future", "ref": "outcomes:label"}, {}, "is the label"),
    ({"name": "spend", "ref": "profile:spend"}, {}, "already a serving feature"),
    ({"name": "customer_id", "ref": "profile:spend"}, {}, "already a serving feature"),
    (SPEND, {"kind": "ziln"}, "model.kind"),
])
def test_privileged_feature_that_is_the_label_or_clashes_is_refused(feature, model, words):
    with pytest.raises(config.ConfigError, match=words):
        config.from_dict({"data": DATA, "model": model, "distillation": {**ON, "privileged_features": [feature]}})


def test_a_disabled_section_is_not_checked_against_the_data():
    cfg = config.from_dict({"data": DATA, "distillation": {"privileged_features": [{"name": "label", "ref": "a:b"}]}})
    assert not cfg.distillation.enabled
