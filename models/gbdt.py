"""Gradient boosted trees (`gbdt`): YDF's gradient-boosted learner on the transformed features.

Trees do not train in Keras' fit loop: `run_fn` hands the kind the training and valid rows
(`fit_on_rows`), and the kind grows one forest per setting of a small grid, each stopped early on
the valid rows, and keeps the one with the lowest valid loss. The forest is then served from
arrays by plain TensorFlow ops (`models.forest`), so the SavedModel has the same serving signature
as every other kind and loads wherever TensorFlow does.

Loss (`model.gbdt_loss`): `poisson` (default) fits log E[y | x] with the Poisson deviance on the
label in label units, which is defined for zeros and any non-negative value; exp of the forest's
output is then the mean itself, where least squares on log1p(y) would give a geometric mean that
under-predicts a heavy tail. `squared_error` fits y directly (the mean too, but heavy tails pull
every split). The kind is a point predictor: its mean stands for the median and both bounds, and
the split-conformal calibration on the valid split (`models.calibration`) widens them into the
served 80% interval, as for the other point models.
"""

import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from models import base, forest
from schemas import features

# model.gbdt_loss -> (YDF loss name, link from the forest's raw output to the mean).
LOSSES: Dict[str, Tuple[str, Callable[[tf.Tensor], tf.Tensor]]] = {
    "poisson": ("POISSON", tf.exp),
    "squared_error": ("SQUARED_ERROR", lambda raw: raw),
}
_LABEL = "__label__"


class GBDTModel(base.ValueModel):
    """A gradient-boosted forest over the transformed features; serves its mean as a point prediction."""

    trains_itself = True

    def __init__(self, context: base.TrainContext, categorical_keys: Sequence[str], loss: str, max_trees: int,
                 max_depths: Sequence[int], shrinkages: Sequence[float], min_examples: Sequence[int], seed: int,
                 **kwargs):
        super().__init__(context, **kwargs)
        if loss not in LOSSES:
            raise ValueError(f"model.gbdt_loss: {loss!r} is not one of {tuple(LOSSES)}")
        self.numeric_keys = tuple(context.numeric_keys)
        self.categorical_keys = tuple(categorical_keys)
        self.loss_name = loss
        self.max_trees = int(max_trees)
        self.grid = [dict(max_depth=int(d), shrinkage=float(s), min_examples=int(m))
                     for d in max_depths for s in shrinkages for m in min_examples]
        if not self.grid:
            raise ValueError("model.gbdt_max_depths, gbdt_shrinkages, gbdt_min_examples: each needs at least one value")
        self.seed = int(seed)
        self.forest: Optional[forest.Forest] = None
        self.search: List[Dict[str, Any]] = []

    @classmethod
    def from_config_and_context(cls, config: Mapping, context: base.TrainContext):
        return cls(context, categorical_keys=config["categorical_features"], loss=config["gbdt_loss"],
                   max_trees=config["gbdt_max_trees"], max_depths=config["gbdt_max_depths"],
                   shrinkages=config["gbdt_shrinkages"], min_examples=config["gbdt_min_examples"],
                   seed=config["seed"])

    @property
    def columns(self) -> Tuple[str, ...]:
        """The transformed features the trees read, in input-matrix order."""
        return tuple(features.transformed_name(k) for k in self.numeric_keys + self.categorical_keys)

    def loss_config(self):
        raise NotImplementedError("gbdt trains its trees with fit_on_rows, not in a Keras fit loop")

    def training_targets(self, inputs, target):
        raise NotImplementedError("gbdt trains its trees with fit_on_rows, not in a Keras fit loop")

    def call(self, inputs, training=None) -> tf.Tensor:
        """The forest's mean in label units, [B]."""
        if self.forest is None:
            raise ValueError("gbdt: the forest is not trained yet (fit_on_rows)")
        raw = forest.raw_output(self.forest, forest.feature_matrix(inputs, self.columns))
        return LOSSES[self.loss_name][1](raw)

    def serving_outputs(self, inputs):
        return base.point_outputs(self.call(inputs))

    def fit_on_rows(self, train: Tuple[Mapping[str, np.ndarray], np.ndarray],
                    valid: Tuple[Mapping[str, np.ndarray], np.ndarray],
                    log: Optional[Callable[[str], None]] = print) -> Dict[str, Any]:
        """Grows a forest per grid setting, each stopped early on the valid rows; keeps the best.

        Args:
          train, valid: (transformed features by name, labels in label units [n]).
          log: called with one line per grid setting and one for the choice; None for silence.

        Returns:
          The chosen setting with its valid loss, trees and seconds, plus `search` (every setting's).
        """
        import ydf

        train_rows, valid_rows = self._rows(*train), self._rows(*valid)
        semantics = [ydf.Feature(k, ydf.Semantic.NUMERICAL) for k in self.columns[:len(self.numeric_keys)]]
        semantics += [ydf.Feature(k, ydf.Semantic.CATEGORICAL) for k in self.columns[len(self.numeric_keys):]]
        best_model, best_loss, chosen, self.search = None, np.inf, None, []
        for setting in self.grid:
            started = time.perf_counter()
            learner = ydf.GradientBoostedTreesLearner(
                label=_LABEL, task=ydf.Task.REGRESSION, loss=LOSSES[self.loss_name][0], features=semantics,
                include_all_columns=False, num_trees=self.max_trees, early_stopping="LOSS_INCREASE",
                random_seed=self.seed, **setting)
            model = learner.train(train_rows, valid=valid_rows, verbose=0)
            result = {**setting, "valid_loss": float(model.validation_loss()), "trees": int(model.num_trees()),
                      "seconds": round(time.perf_counter() - started, 2)}
            self.search.append(result)
            if log is not None:
                log(f"    gbdt {self.loss_name} depth {setting['max_depth']} shrinkage {setting['shrinkage']} "
                    f"min examples {setting['min_examples']}: valid loss {result['valid_loss']:.5f}, "
                    f"{result['trees']} trees, {result['seconds']:.1f} s")
            if best_model is None or result["valid_loss"] < best_loss:
                best_model, best_loss, chosen = model, result["valid_loss"], result
        self.forest = forest.from_ydf(best_model, self.columns)
        if log is not None:
            log(f"    gbdt: kept depth {chosen['max_depth']}, shrinkage {chosen['shrinkage']}, min examples "
                f"{chosen['min_examples']} ({chosen['trees']} trees) of {len(self.search)} settings, by valid loss")
        return {**chosen, "loss": self.loss_name, "search": list(self.search)}

    def _rows(self, columns: Mapping[str, np.ndarray], labels: np.ndarray) -> Dict[str, np.ndarray]:
        missing = [k for k in self.columns if k not in columns]
        if missing:
            raise ValueError(f"gbdt: transformed features {missing} are not in the rows")
        labels = np.asarray(labels, np.float32).reshape(-1)
        if labels.size == 0 or np.any(labels < 0) or not np.all(np.isfinite(labels)):
            raise ValueError("gbdt: labels must be finite and non-negative, with at least one row")
        rows = {k: np.asarray(columns[k]).reshape(-1) for k in self.columns}
        rows[_LABEL] = labels
        return rows
