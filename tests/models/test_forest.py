"""models.forest: a YDF forest served from arrays agrees with YDF's own predictions, row by row."""

import numpy as np
import pytest
import tensorflow as tf
import ydf

from models import forest


def _data(n=1500, seed=0):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n).astype(np.float32), rng.normal(size=n).astype(np.float32)
    c = rng.integers(0, 6, n)
    c[:3] = 40  # too rare for YDF's dictionary: out of dictionary
    y = np.where(rng.random(n) < 0.4, 0.0, np.exp(a + 0.4 * (c % 6))).astype(np.float32)
    return {"a": a, "b": b, "c": c, "y": y}


@pytest.mark.parametrize("loss, link", [("POISSON", np.exp), ("SQUARED_ERROR", lambda v: v)])
def test_array_forest_matches_ydf_on_seen_unseen_and_missing_values(loss, link):
    data = _data()
    model = ydf.GradientBoostedTreesLearner(
        label="y", task=ydf.Task.REGRESSION, loss=loss, num_trees=40, random_seed=1,
        features=[ydf.Feature("c", ydf.Semantic.CATEGORICAL), "a", "b"], include_all_columns=False,
    ).train(data, verbose=0)
    arrays = forest.from_ydf(model, ["a", "b", "c"])
    assert arrays.num_trees == model.num_trees() and arrays.masks.shape[0] > 0  # categorical splits were taken
    rows = {"a": np.r_[data["a"][:300], [0.2, 6.0, np.nan, 0.0]].astype(np.float32),
            "b": np.r_[data["b"][:300], [0.0, -9.0, 0.0, np.nan]].astype(np.float32),
            "c": np.r_[data["c"][:300], [7, 40, -1, 2]]}  # an id never seen, a rare one, a negative one
    served = link(forest.raw_output(arrays, forest.feature_matrix(
        {k: tf.constant(v) for k, v in rows.items()}, arrays.columns)).numpy())
    np.testing.assert_allclose(served, model.predict(rows), rtol=2e-5, atol=1e-5)


def test_a_tree_on_a_column_that_is_not_an_input_is_refused():
    data = _data(300)
    model = ydf.GradientBoostedTreesLearner(label="y", task=ydf.Task.REGRESSION, num_trees=3,
                                            features=["a", "b"], include_all_columns=False).train(data, verbose=0)
    with pytest.raises(ValueError, match="not an input"):
        forest.from_ydf(model, ["b"])
