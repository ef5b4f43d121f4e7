"""The distillation benchmark's choice of λ on the valid split and its bootstrap intervals against the base."""

import numpy as np

from rqvalue.bench import distillation


def test_choose_weight_takes_the_best_mean_valid_gini_over_seeds():
    valid = {0: {"a": {"normalized_gini": 0.50}, "b": {"normalized_gini": 0.40}, "c": {"normalized_gini": 0.50}},
             1: {"a": {"normalized_gini": 0.30}, "b": {"normalized_gini": 0.45}, "c": {"normalized_gini": 0.30}}}
    assert distillation.choose_weight(valid, ["a", "b"]) == "b"  # 0.425 > 0.40, though "a" wins seed 0
    assert distillation.choose_weight(valid, ["c", "a"]) == "c"  # equal means: the first listed


def test_intervals_separate_a_better_model_from_a_copy_of_the_base():
    rng = np.random.default_rng(0)
    labels = rng.lognormal(size=400)
    groups = np.repeat(np.arange(100), 4)  # four snapshots per customer
    noise = [rng.normal(scale=2.0, size=400) for _ in range(2)]
    predictions = [{"base": labels + n, "same": labels + n, "better": labels + 0.1 * n} for n in noise]
    rows = distillation.intervals(labels, groups, predictions, "base", ["same", "better"], resamples=200)
    by = {(r["model"], r["metric"]): r for r in rows}
    assert set(by) == {(m, k) for m in ("same", "better") for k in distillation.RANKING}
    for metric in distillation.RANKING:
        assert by[("same", metric)]["difference"] == 0.0 and by[("same", metric)]["high"] == 0.0
        assert by[("better", metric)]["low"] > 0.0
        assert by[("better", metric)]["clusters"] == 100


def test_render_marks_the_choice_and_the_intervals():
    scores = {"normalized_gini": 0.4, "spearman": 0.2, "mae": 1.0, "rmse": 2.0, "count": 10}
    results = {0: {"base": scores, "student (λ=1)": scores, "student (λ=3)": scores, "teacher": scores}}
    valid = {0: {"base": scores, "student (λ=1)": scores, "student (λ=3)": {**scores, "normalized_gini": 0.5}}}
    rows = [{"model": "student (λ=3)", "metric": "normalized_gini", "difference": 0.01, "low": 0.002, "high": 0.02,
             "resamples": 200, "clusters": 5}]
    text = distillation.render(results, "cmd", valid, "student (λ=3)", rows)
    assert "| student (λ=3) (chosen) | 0.5000 | 0.2000 |" in text
    assert "| student (λ=3) (chosen on valid) | normalized_gini | +0.0100 | [+0.0020, +0.0200] | yes |" in text
    assert "teacher (chosen" not in text
