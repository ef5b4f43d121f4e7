"""Pipeline definition, configuration, runners and command line of rqvalue."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
