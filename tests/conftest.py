"""Test-wide settings and the one small pipeline run that end-to-end tests share."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("FEAST_USAGE", "False")

import pytest  # noqa: E402

import models  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS before a test loads TensorFlow)

SMALL_MODEL = dict(codebook_sizes=(8, 4, 4), train_steps=40, eval_steps=5, batch_size=64)


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    """One completed pipeline run on 3,000 CDNOW customers: (RunConfig, RunResult).

    Shared and read-only: a test that runs the pipeline again needs its own output folder.
    """
    from pipeline import config as config_lib
    from pipeline import datasets, local_runner

    root = tmp_path_factory.mktemp("small_run")
    data = datasets.prepare("cdnow", str(root / "data"), rows=3000)
    cfg = config_lib.RunConfig(data=data, model=config_lib.ModelConfig(**SMALL_MODEL),
                               output_dir=str(root / "out"))
    return cfg, local_runner.run(cfg, report=None)
