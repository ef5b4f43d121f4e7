"""Custom TFX components of rqvalue: feature-store ingestion, the data validation gate and resolvers."""

import models  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads; see models/__init__.py)
