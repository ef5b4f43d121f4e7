"""Baseline resolver: the newest blessed model that is not the candidate."""

from tfx.components.evaluator import constants
from tfx.types import standard_artifacts

from components import baseline_resolver


def _model(artifact_id):
    model = standard_artifacts.Model()
    model.id = artifact_id
    return model


def _blessing(model_id, blessed):
    blessing = standard_artifacts.ModelBlessing()
    blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model_id)
    blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY, 1 if blessed else 0)
    return blessing


def test_newest_blessed_model_other_than_the_candidate():
    models = [_model(1), _model(2), _model(3), _model(4)]
    blessings = [_blessing(1, True), _blessing(2, True), _blessing(3, False), _blessing(4, True)]
    result = baseline_resolver.latest_blessed_other(models, blessings, candidates=[models[3]])
    assert [m.id for m in result["model"]] == [2]
    assert result["model_blessing"][0].get_int_custom_property("current_model_id") == 2


def test_no_baseline_when_only_the_candidate_is_blessed():
    models = [_model(7)]
    result = baseline_resolver.latest_blessed_other(models, [_blessing(7, True)], candidates=models)
    assert result == {"model": [], "model_blessing": []}
