"""Distillation end to end on CDNOW snapshots: privileged features only in training, a teacher, a served student."""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from conftest import SMALL_MODEL

from components import feature_store_example_gen as ingest
from models import distillation
from pipeline import config as config_lib
from pipeline import datasets, local_runner
from pipeline.pipeline import TEACHER_ID
from schemas.feature_repo import definitions

pytestmark = pytest.mark.e2e

VIEW = definitions.CDNOW_SNAPSHOTS_VIEW
PRIVILEGED = ("spend_next_30d", "purchases_next_30d")
DISTILLATION = {
    "enabled": True,
    "privileged_features": [{"name": PRIVILEGED[0], "ref": f"{VIEW}:total_spend"},
                            {"name": PRIVILEGED[1], "ref": f"{VIEW}:num_purchases"}],
    "window_days": 30, "label_window_days": 365, "alignment_weight": 1.0, "code_kl_weight": 0.5,
}


@pytest.fixture(scope="module")
def distilled_run(tmp_path_factory):
    """One run with distillation on 400 CDNOW customers at four cut-offs: (RunConfig, RunResult)."""
    root = tmp_path_factory.mktemp("distilled_run")
    data = datasets.prepare("cdnow_snapshots", str(root / "data"), rows=400)
    cfg = config_lib.RunConfig(
        data=data, model=config_lib.ModelConfig(**SMALL_MODEL),
        distillation=config_lib.DistillationConfig(**DISTILLATION), output_dir=str(root / "out"))
    return cfg, local_runner.run(cfg, report=None)


def _only(pattern):
    found = glob.glob(pattern)
    assert len(found) == 1, (pattern, found)
    return found[0]


def _model(cfg, node):
    return _only(os.path.join(cfg.pipeline_root, node, "model", "*", "Format-Serving"))


def _records(cfg, split):
    path = _only(os.path.join(cfg.pipeline_root, "FeatureStoreExampleGen", "examples", "*", f"Split-{split}", "*.gz"))
    return [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(path, compression_type="GZIP")]


def test_privileged_features_are_in_the_training_splits_only(distilled_run):
    cfg, _ = distilled_run
    for split in ("train", "valid"):
        carrying = [all(name in e.features.feature for name in PRIVILEGED) for e in _records(cfg, split)]
        assert all(carrying), split
    assert not any(name in e.features.feature for e in _records(cfg, "eval") for name in PRIVILEGED)
    schema = tfdv.load_schema_text(
        _only(os.path.join(cfg.pipeline_root, "PrivilegedSchema", "privileged_schema", "*", "schema.pbtxt")))
    for name in PRIVILEGED:
        assert "SERVING" in tfdv.get_feature(schema, name).not_in_environment


def _with_privileged(examples, values):
    serialized = []
    for example, value in zip(examples, values):
        copy = tf.train.Example()
        copy.CopyFrom(example)
        for name in PRIVILEGED:
            copy.features.feature[name].float_list.value[:] = [value]
        serialized.append(copy.SerializeToString())
    return tf.constant(serialized)


def test_student_serves_without_privileged_features_and_ignores_them(distilled_run):
    cfg, result = distilled_run
    spec = ingest.IngestionSpec.from_data_config(cfg.data)
    rows = ingest.retrieve(spec).head(32).assign(**{cfg.data.label: np.nan})
    examples = ingest.to_examples(rows, spec)
    student = tf.saved_model.load(_model(cfg, "Trainer"))
    assert distillation.TEACHER_TARGETS_SIGNATURE not in student.signatures
    serve = student.signatures["serving_default"]
    assert set(serve.structured_input_signature[1]) == {"examples"}
    plain = serve(examples=tf.constant([e.SerializeToString() for e in examples]))
    rng = np.random.default_rng(0)
    for values in (rng.uniform(0, 5000, 32), np.full(32, np.nan)):
        present = serve(examples=_with_privileged(examples, values))
        for key in ("prediction", "median", "lower", "upper", "codes"):
            np.testing.assert_array_equal(present[key].numpy(), plain[key].numpy(), err_msg=key)
    # The teacher does read them: the same change moves its predictions (the check above can fail).
    teacher = tf.saved_model.load(_model(cfg, TEACHER_ID))
    low = teacher.signatures["serving_default"](examples=_with_privileged(examples, np.zeros(32)))["prediction"]
    high = teacher.signatures["serving_default"](examples=_with_privileged(examples, np.full(32, 5000.0)))["prediction"]
    assert not np.allclose(low.numpy(), high.numpy())
    represented = teacher.signatures[distillation.REPRESENTATION_SIGNATURE](
        examples=_with_privileged(examples, np.zeros(32)))[distillation.REPRESENTATION_KEY]
    assert represented.shape == (32, cfg.model.hidden_units[-1])
    # The evaluated and pushed model is the student.
    assert result.metrics and result.pushed_model
    served = tf.saved_model.load(result.pushed_model).signatures["serving_default"]
    np.testing.assert_array_equal(served(examples=_with_privileged(examples, np.zeros(32)))["prediction"].numpy(),
                                  plain["prediction"].numpy())


def test_rerun_is_cached_teacher_and_student_included(distilled_run):
    cfg, first = distilled_run
    second = local_runner.run(cfg, report=None)
    assert second.pushed_model == first.pushed_model
    for node in ("Trainer", TEACHER_ID, "PrivilegedSchema"):
        outputs = [o for o in os.listdir(os.path.join(cfg.pipeline_root, node)) if not o.startswith(".")]
        executions = {output: os.listdir(os.path.join(cfg.pipeline_root, node, output)) for output in outputs}
        assert all(len(ids) == 1 for ids in executions.values()), (node, executions)
