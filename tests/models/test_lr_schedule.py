"""The warm-up + cosine learning-rate schedule."""

import pytest

from models import lr_schedule


def test_warmup_rises_linearly_then_cosine_falls_to_the_floor():
    rates = [lr_schedule.warmup_cosine(step, 1.0, warmup_steps=4, total_steps=12, floor=0.1) for step in range(16)]
    assert rates[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert rates[4] == pytest.approx(1.0)  # the decay starts at the peak
    assert rates[8] == pytest.approx(0.1 + 0.9 * 0.5)  # halfway down the cosine
    assert all(a >= b for a, b in zip(rates[4:], rates[5:]))
    assert rates[12:] == pytest.approx([0.1] * 4)  # past total_steps: the floor


def test_no_warmup_starts_at_the_peak():
    assert lr_schedule.warmup_cosine(0, 0.003, warmup_steps=0, total_steps=10) == pytest.approx(0.003)


@pytest.mark.parametrize("change, field", [
    ({"learning_rate_schedule": "step"}, "model.learning_rate_schedule"),
    ({"warmup_steps": -1}, "model.warmup_steps"),
    ({"feature_encoder": "transformer"}, "model.feature_encoder"),
    ({"mixer_blocks": 0}, "model.mixer_blocks"),
    ({"cross_layers": 0}, "model.cross_layers"),
    ({"feature_encoder": "token_mixing", "numeric_encoding": "piecewise_linear"}, "model.feature_encoder"),
])
def test_model_config_names_a_bad_encoder_or_schedule_setting(change, field):
    from pipeline import config as config_lib

    with pytest.raises(config_lib.ConfigError, match=field):
        config_lib.ModelConfig(**change)
    assert config_lib.ModelConfig().feature_encoder == "mlp"
    assert config_lib.ModelConfig().learning_rate_schedule == "constant"
