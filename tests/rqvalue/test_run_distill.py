"""`rqvalue run --distill`: the switch turns on an embedded data set's declared privileged features or a config's."""

import pytest
import yaml

from pipeline import datasets
from pipeline.datasets import cdnow_snapshots
from rqvalue import cli, run


def _config(argv):
    return run.run_config(cli.parser().parse_args(["run", *argv]))


def test_distill_turns_on_the_snapshots_privileged_features(tmp_path):
    cfg = _config(["--dataset", "cdnow_snapshots", "--rows", "20", "--distill", "--output-dir", str(tmp_path)])
    section = cfg.distillation
    assert section.enabled and section.privileged_names == tuple(n for n, _ in cdnow_snapshots.PRIVILEGED_FEATURES)
    assert (section.window_days, section.label_window_days) == (30, 365)
    assert not _config(["--dataset", "cdnow_snapshots", "--rows", "20", "--output-dir", str(tmp_path)]
                       ).distillation.enabled


def test_distill_needs_declared_privileged_features(tmp_path):
    with pytest.raises(ValueError, match="'cdnow' declares no privileged features"):
        _config(["--dataset", "cdnow", "--rows", "20", "--distill", "--output-dir", str(tmp_path)])
    data = datasets.prepare("cdnow_snapshots", str(tmp_path / "data"), rows=20)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"data": {
        "feast_repo": data.feast_repo, "spine": data.spine, "entity_columns": list(data.entity_columns),
        "feature_refs": list(data.feature_refs), "numeric_features": list(data.numeric_features)}}))
    with pytest.raises(ValueError, match="distillation.privileged_features"):
        _config(["--config", str(path), "--distill", "--output-dir", str(tmp_path)])
