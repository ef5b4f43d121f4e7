"""The TFX pipeline of rqvalue: configuration, the pipeline definition, evaluation, runners, and the
read-only record of what runs produced (ML Metadata)."""

import models  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads; see models/__init__.py)
