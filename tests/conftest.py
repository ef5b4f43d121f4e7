"""Test-wide settings: Keras 2 for TFT/TFMA, quiet TensorFlow, no Feast telemetry."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("FEAST_USAGE", "False")
