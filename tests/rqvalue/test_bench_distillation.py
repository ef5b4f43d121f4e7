"""The distillation benchmark's table: mean ± sd over seeds and paired student − base differences."""

import pytest

from rqvalue.bench import distillation


def _scores(gini, mae):
    return {"normalized_gini": gini, "spearman": gini / 2, "mae": mae, "rmse": 2 * mae, "count": 100}


def test_render_pairs_each_student_with_the_base_of_its_seed():
    results = {seed: {"base": _scores(0.4 + seed / 100, 10.0), "student (λ=1)": _scores(0.45 + seed / 100, 9.0),
                      "teacher bound": _scores(0.8, 5.0)} for seed in (0, 1)}
    text = distillation.render(results, "python -m rqvalue.bench.distillation --rows 10")
    assert "Eval rows: 100 per seed; seeds [0, 1]." in text
    assert "| base | 0.4050 ± 0.0071 |" in text
    assert "| teacher bound | 0.8000 ± 0.0000 |" in text
    assert "| student (λ=1) | 0 | +0.0500 | +0.0250 | -1.0000 | -2.0000 |" in text
    assert "teacher bound | 0 |" not in text  # the bound is not a student


def test_model_of_finds_the_one_model_with_the_settings():
    found = [("Trainer", {"seed": 0, "alignment_weight": 0.0}, "/r/Trainer/model/9"),
             ("Trainer", {"seed": 0, "alignment_weight": 1.0}, "/r/Trainer/model/21"),
             ("TeacherTrainer", {"seed": 0}, "/r/TeacherTrainer/model/8"),
             ("TeacherTrainer", {"seed": 0}, "/r/TeacherTrainer/model/8")]  # a cached execution: the same model
    assert distillation._model_of(found, "Trainer", seed=0, alignment_weight=1.0) == "/r/Trainer/model/21"
    assert distillation._model_of(found, "TeacherTrainer", seed=0) == "/r/TeacherTrainer/model/8"
    with pytest.raises(RuntimeError, match="2 trained models"):
        distillation._model_of(found, "Trainer", seed=0)
