"""Runs the pipeline in-process with TFX's LocalDagRunner, reporting progress per component.

Before the pipeline starts: the paths are checked (`preflight`), the output folder is locked
(`output_lock`: one run at a time per folder), a previous run that was interrupted is named, and
the cached artifacts are checked (`artifact_check`: a damaged one is produced again, not reused).
As each component finishes, the manifests of its new artifacts are recorded.
"""

import logging
import re
import time
from typing import Callable, Optional

import absl.logging
from tfx import v1 as tfx

from components.feature_store_example_gen import IngestionSpec, input_fingerprint, latest_span, span_window
from pipeline import artifact_check, mlmd, output_lock, preflight
from pipeline.config import RunConfig
from pipeline.pipeline import create_pipeline

_PROGRESS = re.compile(r"Component (\S+) is (running|finished)\.")


class _ProgressHandler(logging.Handler):
    """Turns the runner's 'Component X is running/finished.' log lines into progress lines, and calls
    `finished` after each component (its outputs are in ML Metadata by then)."""

    def __init__(self, report: Callable[[str], None], finished: Callable[[], None]):
        super().__init__(level=logging.INFO)
        self._report = report
        self._finished = finished
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
            self._finished()


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
      preflight.PathProblem: the output folder is not writable, or a data path is wrong.
      output_lock.OutputDirBusy: another run is using the output folder.
    """
    preflight.output_dir(config.output_dir)
    preflight.data_paths(config.data)
    with output_lock.hold(config.output_dir):
        _report_interrupted(config.output_dir, report)
        artifact_check.check(config.output_dir, config.metadata_path, report)
        _run_pipeline(config, report, span)
        return mlmd.latest_result(config.metadata_path)


def _report_interrupted(output_dir: str, report: Optional[Callable[[str], None]]) -> None:
    """Names the previous run if it was interrupted (killed while a component ran)."""
    try:
        previous = mlmd.RunHistory(output_dir, run_going=False).runs[-1]
    except mlmd.MetadataError:
        return  # no runs yet
    if previous.status == mlmd.INTERRUPTED and report:
        report(f"rqvalue: the previous run, {previous.label}, was interrupted at {previous.failed.component}; "
               "what it finished is reused from the cache, what it left unfinished runs again")


def _run_pipeline(config: RunConfig, report: Optional[Callable[[str], None]], span: Optional[int]) -> None:
    spec = IngestionSpec.from_data_config(config.data)
    fingerprint = input_fingerprint(spec)
    span = ingestion_span(spec, span)
    if config.data.spans and report:
        start, end = span_window(span, spec)
        report(f"  span {span}: prediction times in [{start.date()}, {end.date()}); "
               f"training window: the latest {config.data.window_spans} span(s)")
    pipeline = create_pipeline(config, fingerprint, span=span)
    # TFX reports component progress through absl's logger at INFO; route only that to `report`.
    # Libraries silence absl for a while and restore absl's verbosity flag, so set the flag too.
    # Each component's new artifacts get their manifest as soon as it finishes, so a run killed
    # later leaves what it finished checkable.
    handler = _ProgressHandler(report or (lambda _: None),
                               lambda: artifact_check.record(config.output_dir, config.metadata_path))
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
