"""TFX module code and model parts of rqvalue.

TFT's transform layer and TFMA's metrics are Keras 2 (`tf_keras`) code, so every process that loads
TensorFlow for this project must route `tf.keras` to `tf_keras`. This package sets that default, and
the project's other packages import it before anything loads TensorFlow: the one place it is set.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
