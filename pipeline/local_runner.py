"""Runs the pipeline in-process with TFX's LocalDagRunner, reporting progress per component."""

import logging
import os
import re
import time
from typing import Callable, Optional

import absl.logging
from tfx import v1 as tfx

from components.feature_store_example_gen import IngestionSpec, input_fingerprint, latest_span, span_window
from pipeline import mlmd
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


def ingestion_span(spec: IngestionSpec, span: Optional[int] = None) -> int:
    """The span a run ingests: `span` (checked) if given, else the latest in the spine; 0 without spans."""
    if not spec.span_days:
        if span:
            raise ValueError(f"--span {span}: the data is not cut into spans (set data.span_days)")
        return 0
    if span is None:
        return latest_span(spec)
    span_window(span, spec)  # raises IngestionError if `span` is not the first day of a span
    return span


def run(config: RunConfig, report: Optional[Callable[[str], None]] = print,
        span: Optional[int] = None) -> mlmd.RunResult:
    """Runs the pipeline once and returns what it produced.

    Args:
      config: the run configuration.
      report: where progress lines go (None: nowhere).
      span: with spans (data.span_days > 0), the span to ingest (YYYYMMDD of its first day);
        None takes the latest span in the spine.

    Raises:
      components.validation_gate.DataValidationError (wrapped by the runner in a RuntimeError) when
      the data fails validation; nothing is trained or pushed then.
    """
    os.makedirs(config.output_dir, exist_ok=True)
    spec = IngestionSpec.from_data_config(config.data)
    fingerprint = input_fingerprint(spec)
    span = ingestion_span(spec, span)
    if config.data.spans and report:
        start, end = span_window(span, spec)
        report(f"  span {span}: prediction times in [{start.date()}, {end.date()}); "
               f"training window: the latest {config.data.window_spans} span(s)")
    pipeline = create_pipeline(config, fingerprint, span=span)
    run_with_progress(pipeline, report)
    return mlmd.latest_result(config.metadata_path)


def run_with_progress(pipeline, report: Optional[Callable[[str], None]]) -> None:
    """Runs a pipeline with LocalDagRunner, sending one line per component start and end to `report`."""
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


def run_scoring(config: RunConfig, scoring_run, report: Optional[Callable[[str], None]] = print):
    """Runs the scoring pipeline (`pipeline.scoring`) once and returns what it wrote (`mlmd_scoring.Scoring`).

    Args:
      config: the run configuration of the training runs.
      scoring_run: a `pipeline.scoring.ScoringRun`.
      report: where progress lines go (None: nowhere).
    """
    from pipeline import mlmd_scoring, scoring

    os.makedirs(scoring.scoring_dir(config), exist_ok=True)
    run_with_progress(scoring.create_scoring_pipeline(config, scoring_run), report)
    return mlmd_scoring.scorings(scoring.metadata_path(config))[-1]
