"""Warm start: the trainable weights of a model, saved beside its export and loaded into a new model.

The exported SavedModel cannot be reloaded as a Keras model, so run_fn also writes every trainable
variable, by name, to `<model artifact>/weights/trainable.npz`. A later run loads into its freshly
built model each variable whose name and shape match and leaves the rest initialised: a
categorical vocabulary or a codebook size that changed between runs costs only those weights.
Non-trainable state (RQ centroids, calibration offsets, scales fitted on the new data) is never
loaded: it belongs to this run's data.
"""

import io
import os
from typing import Optional, Tuple

import numpy as np
import tensorflow as tf

WEIGHTS_DIR = "weights"
WEIGHTS_FILE = "trainable.npz"
_SERVING_DIR = "Format-Serving"


def weights_path(model_dir: str) -> str:
    """The weights file of a Model artifact, given its URI or its serving directory (`fn_args.base_model`)."""
    model_dir = model_dir.rstrip("/")
    if os.path.basename(model_dir) == _SERVING_DIR:
        model_dir = os.path.dirname(model_dir)
    return os.path.join(model_dir, WEIGHTS_DIR, WEIGHTS_FILE)


def _name(variable: tf.Variable) -> str:
    return variable.name.split(":")[0]


def save(model: tf.keras.Model, model_dir: str) -> str:
    """Writes the model's trainable variables to `weights_path(model_dir)`; returns the path."""
    path = weights_path(model_dir)
    tf.io.gfile.makedirs(os.path.dirname(path))
    buffer = io.BytesIO()  # numpy's zip writer seeks; a GCS file cannot
    np.savez(buffer, **{_name(v): v.numpy() for v in model.trainable_variables})
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(buffer.getvalue())
    return path


def load(model: tf.keras.Model, model_dir: Optional[str]) -> Tuple[int, int]:
    """Assigns the saved values whose name and shape match; returns (loaded, kept as initialised).

    The model must be built. With no `model_dir`, or none saved there, nothing is loaded.
    """
    variables = model.trainable_variables
    if not model_dir or not tf.io.gfile.exists(weights_path(model_dir)):
        return 0, len(variables)
    with tf.io.gfile.GFile(weights_path(model_dir), "rb") as f:
        saved = dict(np.load(io.BytesIO(f.read())))
    loaded = 0
    for variable in variables:
        value = saved.get(_name(variable))
        if value is not None and tuple(value.shape) == tuple(variable.shape):
            variable.assign(value)
            loaded += 1
    return loaded, len(variables) - loaded
