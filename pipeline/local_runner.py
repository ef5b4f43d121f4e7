"""Runs the pipeline in-process with TFX's LocalDagRunner, reporting progress per component."""

import logging
import os
import re
import time
from typing import Callable, Optional

import absl.logging
from tfx import v1 as tfx

from components.feature_store_example_gen import IngestionSpec, input_fingerprint
from pipeline import results
from pipeline.config import RunConfig
from pipeline.pipeline import create_pipeline

_PROGRESS = re.compile(r"Component (\S+) is (running|finished)\.")


class _ProgressHandler(logging.Handler):
    """Turns the runner's 'Component X is running/finished.' log lines into progress lines."""

    def __init__(self, report: Callable[[str], None]):
        super().__init__(level=logging.INFO)
        self._report = report
        self._started = {}

    def emit(self, record: logging.LogRecord) -> None:
        match = _PROGRESS.search(record.getMessage())
        if not match:
            return
        node, state = match.groups()
        if state == "running":
            self._started[node] = time.time()
            self._report(f"  {node} ...")
        else:
            elapsed = time.time() - self._started.get(node, time.time())
            self._report(f"  {node} done ({elapsed:.1f} s)")


def run(config: RunConfig, report: Optional[Callable[[str], None]] = print) -> results.RunResult:
    """Runs the pipeline once and returns what it produced.

    Raises:
      components.validation_gate.DataValidationError (wrapped by the runner in a RuntimeError) when
      the data fails validation; nothing is trained or pushed then.
    """
    os.makedirs(config.output_dir, exist_ok=True)
    fingerprint = input_fingerprint(IngestionSpec.from_data_config(config.data))
    pipeline = create_pipeline(config, fingerprint)
    # TFX reports component progress through absl's logger at INFO; route only that to `report`.
    # Libraries silence absl for a while and restore absl's verbosity flag, so set the flag too.
    handler = _ProgressHandler(report or (lambda _: None))
    absl_logger = logging.getLogger("absl")
    saved_verbosity, saved_propagate = absl.logging.get_verbosity(), absl_logger.propagate
    absl_logger.addHandler(handler)
    absl_logger.propagate = False
    absl.logging.set_verbosity(absl.logging.INFO)
    absl_logger.setLevel(logging.INFO)
    try:
        tfx.orchestration.LocalDagRunner().run(pipeline)
    finally:
        absl_logger.removeHandler(handler)
        absl_logger.propagate = saved_propagate
        absl.logging.set_verbosity(saved_verbosity)
    return results.latest_result(config.metadata_path)
