"""A trained decision forest as arrays, scored with plain TensorFlow ops.

The `gbdt` kind trains with Yggdrasil Decision Forests (`ydf`, the engine of TensorFlow Decision
Forests). A TF-DF SavedModel calls custom ops (`SimpleMLCreateModelResource`, ...) that exist only
in a process that imported `tensorflow_decision_forests`: stock TensorFlow Serving, a TFMA worker or
a report process cannot load it. So the trees are served from arrays, by ordinary TensorFlow ops:

  - every tree is laid out as N node slots (N = the largest tree's slot count; smaller trees are
    padded with unused slots), slot 0 the root;
  - an inner node tests one column of the input matrix: `x >= threshold` for a numeric feature, or,
    for a categorical one (an integer id), whether the id is in the node's set (a row of `masks`,
    indexed by id; its last entry answers for every id the training data did not name); a missing
    value (NaN) takes the node's `missing` answer; the answer picks the `positive` or `negative`
    child;
  - a leaf (feature = LEAF) holds its value; the forest's raw output is bias + Σ over trees of the
    value of the leaf each row reaches; `depth` steps bring every row from the root to its leaf.

`from_ydf` reads a trained YDF gradient-boosted model into this form.
"""

import dataclasses
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np
import tensorflow as tf

LEAF = -1
# YDF's dictionary entry for values its training data did not name (or named too rarely).
_OUT_OF_DICTIONARY = 0


@dataclasses.dataclass(frozen=True)
class Forest:
    """A forest in array form (see the module docstring).

    Attributes:
      columns: the feature each column of the input matrix holds, in order.
      feature: [T, N] int32, the column an inner node tests; LEAF for leaves and unused slots.
      threshold: [T, N] float32, numeric nodes: the positive child takes rows with x >= threshold.
      mask_row: [T, N] int32, categorical nodes: the row of `masks` with the node's set; else -1.
      masks: [M, W + 1] bool, per categorical node, whether id i (0 <= i < W) is in its set; entry W
        answers for every other id.
      missing: [T, N] bool, the answer of a node for a missing (NaN) value.
      positive, negative: [T, N] int32, child slots (a leaf points to itself).
      value: [T, N] float32, the leaf values (0 elsewhere).
      bias: the initial prediction, added to the sum of the leaves.
      depth: the most conditions on any path from a root to a leaf.
    """

    columns: Tuple[str, ...]
    feature: np.ndarray
    threshold: np.ndarray
    mask_row: np.ndarray
    masks: np.ndarray
    missing: np.ndarray
    positive: np.ndarray
    negative: np.ndarray
    value: np.ndarray
    bias: float
    depth: int

    @property
    def num_trees(self) -> int:
        return int(self.feature.shape[0])


def raw_output(forest: Forest, x: tf.Tensor) -> tf.Tensor:
    """The forest's raw output (bias + sum of leaf values, before any link function) for rows x.

    Args:
      forest: the arrays.
      x: [B, len(forest.columns)] float32, columns in `forest.columns` order; categorical ids as floats.

    Returns:
      [B] float32.
    """
    trees, slots = forest.feature.shape
    x = tf.convert_to_tensor(x, tf.float32)
    offset = tf.range(trees, dtype=tf.int32)[None, :] * slots  # [1, T]: flat index of each tree's slot 0
    flat = {name: tf.constant(getattr(forest, name).reshape(-1))
            for name in ("feature", "threshold", "mask_row", "missing", "positive", "negative", "value")}
    masks = tf.constant(forest.masks if forest.masks.size else np.zeros((1, 1), bool))
    other = int(masks.shape[1]) - 1  # the entry for ids outside the table
    node = tf.zeros([tf.shape(x)[0], trees], tf.int32)
    for _ in range(forest.depth):
        index = node + offset
        column = tf.gather(flat["feature"], index)
        seen = tf.gather(x, tf.maximum(column, 0), batch_dims=1)  # [B, T]: the value each node tests
        numeric_test = seen >= tf.gather(flat["threshold"], index)
        ids = tf.cast(tf.where(tf.math.is_nan(seen), -1.0, seen), tf.int32)
        ids = tf.where((ids >= 0) & (ids < other) & (tf.cast(ids, tf.float32) == seen), ids, other)
        row = tf.gather(flat["mask_row"], index)
        categorical_test = tf.gather_nd(masks, tf.stack([tf.maximum(row, 0), ids], axis=-1))
        test = tf.where(row >= 0, categorical_test, numeric_test)
        test = tf.where(tf.math.is_nan(seen), tf.gather(flat["missing"], index), test)
        child = tf.where(test, tf.gather(flat["positive"], index), tf.gather(flat["negative"], index))
        node = tf.where(column == LEAF, node, child)
    leaves = tf.gather(flat["value"], node + offset)
    return tf.reduce_sum(leaves, axis=1) + tf.constant(forest.bias, tf.float32)


def feature_matrix(inputs: Mapping[str, tf.Tensor], columns: Sequence[str]) -> tf.Tensor:
    """[B, C] float32 input matrix of `raw_output` from a dict of [B] (or [B, 1]) feature tensors."""
    return tf.stack([tf.reshape(tf.cast(inputs[name], tf.float32), [-1]) for name in columns], axis=1)


def from_ydf(model, columns: Sequence[str]) -> Forest:
    """The arrays of a trained YDF gradient-boosted model with one tree per iteration (regression, binary).

    Args:
      model: a trained `ydf` GradientBoostedTreesModel whose input features are `columns` (numeric,
        or categorical integer ids, which YDF keeps as strings in its dictionary).
      columns: the feature names, in the order of the input matrix.

    Raises:
      ValueError: if the model has several trees per iteration, or a tree tests a condition other
        than a numeric threshold or a categorical set (the `gbdt` kind's settings never ask for one).
    """
    from ydf.model import tree as ydf_tree

    if model.num_trees_per_iteration() != 1:
        raise ValueError(f"gbdt: {model.num_trees_per_iteration()} trees per iteration; only regression and "
                         "binary classification forests (one tree per iteration) are served")
    spec = model.data_spec().columns
    position = {name: i for i, name in enumerate(columns)}
    column_of = {spec_index: position[spec[spec_index].name] for spec_index in range(len(spec))
                 if spec[spec_index].name in position}
    id_items = {i: _id_items(spec[i]) for i in column_of if spec[i].HasField("categorical")}
    width = max((items.size - 1 for items in id_items.values()), default=0)
    trees: List[List[Dict]] = []
    masks: List[np.ndarray] = []
    depth = 0
    for tree in model.get_all_trees():
        slots: List[Dict] = [{}]
        stack = [(tree.root, 0, 0)]  # (node, its slot, its depth); children get slots as their parent is laid out
        while stack:
            node, slot, level = stack.pop()
            if isinstance(node, ydf_tree.Leaf):
                slots[slot] = {"value": float(node.value.value)}
                depth = max(depth, level)
                continue
            test = node.condition
            if test.attribute not in column_of:
                raise ValueError(f"gbdt: a tree tests column {spec[test.attribute].name!r}, which is not an input")
            entry = {"feature": column_of[test.attribute], "missing": bool(test.missing),
                     "positive": len(slots), "negative": len(slots) + 1}
            if isinstance(test, ydf_tree.NumericalHigherThanCondition):
                entry["threshold"] = float(test.threshold)
            elif isinstance(test, ydf_tree.CategoricalIsInCondition):
                entry["mask_row"] = len(masks)
                masks.append(_id_mask(id_items[test.attribute], test.mask, width))
            else:
                raise ValueError(f"gbdt: tree condition {type(test).__name__} on {spec[test.attribute].name!r} "
                                 "cannot be served as arrays")
            slots[slot] = entry
            slots.extend([{}, {}])
            stack.append((node.pos_child, entry["positive"], level + 1))
            stack.append((node.neg_child, entry["negative"], level + 1))
        trees.append(slots)
    bias = float(np.reshape(model.initial_predictions(), -1)[0])
    return _arrays(trees, masks, width, columns, bias, depth)


def _id_items(column) -> np.ndarray:
    """[W + 1] int: the dictionary item of each integer id 0..W-1 that YDF's dictionary names, then
    the out-of-dictionary item (for every other id)."""
    named = {}
    for key, value in column.categorical.items.items():
        if key.lstrip("-").isdigit() and int(key) >= 0:
            named[int(key)] = value.index
    items = np.full(max(named, default=-1) + 2, _OUT_OF_DICTIONARY, np.int64)
    for identifier, item in named.items():
        items[identifier] = item
    return items


def _id_mask(id_items: np.ndarray, item_mask: Sequence[int], width: int) -> np.ndarray:
    """[width + 1] bool: whether each id (then any other id) is in a node's set of dictionary items."""
    in_set = np.zeros(max(int(id_items.max()), max(item_mask, default=0)) + 1, bool)
    in_set[list(item_mask)] = True
    mask = np.full(width + 1, in_set[_OUT_OF_DICTIONARY])
    mask[:id_items.size - 1] = in_set[id_items[:-1]]
    return mask


def _arrays(trees: List[List[Dict]], masks: List[np.ndarray], width: int, columns: Sequence[str], bias: float,
            depth: int) -> Forest:
    count, slots = len(trees), max((len(t) for t in trees), default=1)
    feature = np.full((count, slots), LEAF, np.int32)
    threshold = np.zeros((count, slots), np.float32)
    mask_row = np.full((count, slots), -1, np.int32)
    missing = np.zeros((count, slots), bool)
    positive = np.tile(np.arange(slots, dtype=np.int32), (count, 1))
    negative = positive.copy()
    value = np.zeros((count, slots), np.float32)
    for t, tree in enumerate(trees):
        for s, entry in enumerate(tree):
            if "feature" not in entry:
                value[t, s] = entry.get("value", 0.0)
                continue
            feature[t, s], missing[t, s] = entry["feature"], entry["missing"]
            threshold[t, s] = entry.get("threshold", 0.0)
            mask_row[t, s] = entry.get("mask_row", -1)
            positive[t, s], negative[t, s] = entry["positive"], entry["negative"]
    return Forest(columns=tuple(columns), feature=feature, threshold=threshold, mask_row=mask_row,
                  masks=np.stack(masks) if masks else np.zeros((0, width + 1), bool), missing=missing,
                  positive=positive, negative=negative, value=value, bias=bias, depth=depth)
