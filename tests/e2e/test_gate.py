"""The model gate both ways: a worse candidate is not blessed or pushed; a better one is pushed as a new version."""

import os

import pytest

from pipeline import config as config_lib
from pipeline import local_runner

pytestmark = pytest.mark.e2e


def test_gate_blocks_a_worse_candidate_and_pushes_a_better_one(small_run, tmp_path):
    cfg = config_lib.replace(small_run[0], output_dir=str(tmp_path / "out"))
    first = local_runner.run(cfg, report=None)
    assert first.blessed and first.pushed_model
    versions = sorted(os.listdir(cfg.serving_dir))

    worse = local_runner.run(config_lib.replace(cfg, model={"train_steps": 1}), report=None)
    assert worse.blessed is False
    assert worse.pushed_model is None
    assert worse.serving_model == first.pushed_model
    assert sorted(os.listdir(cfg.serving_dir)) == versions

    better = local_runner.run(config_lib.replace(cfg, model={"train_steps": 400}), report=None)
    assert better.blessed is True
    assert better.pushed_model not in (None, first.pushed_model)
    assert better.serving_model == better.pushed_model
    assert sorted(os.listdir(cfg.serving_dir)) == sorted(versions + [os.path.basename(better.pushed_model)])
