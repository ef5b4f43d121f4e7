"""Beam runner choice as data: the `beam_pipeline_args` of each runner and what the components get of them.

The orchestrator stays TFX's LocalDagRunner; these arguments only choose where the Beam-based
components (StatisticsGen, Transform, Evaluator) run their data-parallel work:

  direct    Beam's DirectRunner on this machine: in memory with one worker (the default), or
            `--direct-workers N` processes (0 = one per CPU).
  dataflow  Google Cloud Dataflow (runner v2). The workers must have the project installed: the
            Transform and Trainer functions are referenced by dotted path
            (`models.preprocessing.preprocessing_fn`), and TFX ships no module file for them (its
            ephemeral user-code wheel would hold only the top-level .py files of one folder anyway),
            so `models`, `schemas` and `components` must be importable on every worker. The
            workers read and write the artifacts, so the pipeline root must be on GCS
            (`check_pipeline_root`); ML Metadata (SQLite) and the serving folder stay local.

Worker code, in order of preference:

  --sdk_container_image  the pipeline image (docker/Dockerfile): the TFX 1.16 stack plus the project,
                         with TF_USE_LEGACY_KERAS=1 set for every worker process. Nothing is
                         installed when a worker starts, and workers run the launcher's exact stack.
  --extra_package        a wheel of the project built from pyproject.toml
                         (`pip wheel --no-deps -w dist .`), installed by each worker on Beam's
                         default container at start-up. Needs no setup.py (Beam's `--setup_file`
                         insists on a file named setup.py); the wheel's pinned dependencies
                         (tfx==1.16.0, ...) are pip-installed on every worker at start, which is slower and
                         not constrained by requirements.lock.
  --setup_file           accepted for completeness: a setup.py next to pyproject.toml holding only
                         `import setuptools; setuptools.setup()` makes Beam build an sdist of the
                         project. The wheel does the same without an extra file.

`--save_main_session` is not set: it pickles the launching script's `__main__` globals for DoFns
defined there. Here `__main__` is the `rqvalue` command line, which defines no Beam code; every
DoFn lives in an installed module (tfx, tfdv, tft, tfma, `models.*`) that workers import by name.
"""

from __future__ import annotations

import os
import re
from typing import Optional, Sequence, Tuple

from pipeline import config as config_lib

RUNNERS = ("direct", "dataflow")

DIRECT_IN_MEMORY = ("--direct_running_mode=in_memory", "--direct_num_workers=1")
DATAFLOW_MACHINE_TYPE = "e2-standard-4"  # 4 vCPU / 16 GB: TFT analyzers and TFMA hold models in memory
DATAFLOW_DISK_SIZE_GB = 50  # the TFX image is several GB; 25 GB (the default with Dataflow Shuffle) is tight
KFP_INSTALL = 'pip install "kfp==2.5.0" "urllib3<2"'

_PROJECT = config_lib.PROJECT_PATTERN
_REGION = config_lib.REGION_PATTERN
_GCS = config_lib.GCS_PATTERN
_IMAGE = config_lib.IMAGE_PATTERN
_MACHINE = config_lib.MACHINE_PATTERN


class RunnerError(ValueError):
    """A runner option is missing or malformed; the message names the flag."""


def _flag(name: str) -> str:
    """'temp_location' -> "--temp-location (--temp_location)": the CLI spelling and Beam's."""
    return f"--{name.replace('_', '-')} (--{name})" if "_" in name else f"--{name}"


def _require(name: str, value: Optional[str], pattern: re.Pattern, what: str) -> str:
    if not value:
        raise RunnerError(f"{_flag(name)}: required for --runner dataflow ({what})")
    if not pattern.match(value):
        raise RunnerError(f"{_flag(name)}: {value!r} is not {what}")
    return value


def beam_args(runner: str = "direct", *, direct_workers: Optional[int] = None,
              project: Optional[str] = None, region: Optional[str] = None,
              temp_location: Optional[str] = None, sdk_container_image: Optional[str] = None,
              extra_package: Optional[str] = None, setup_file: Optional[str] = None,
              machine_type: str = DATAFLOW_MACHINE_TYPE,
              extra_args: Sequence[str] = ()) -> Tuple[str, ...]:
    """Returns the Beam pipeline arguments for a runner (for `RunConfig.beam_args`).

    Args:
      runner: "direct" or "dataflow".
      direct_workers: direct only. None: in-memory, one worker (fast start, the test setting).
        N >= 1: the multi-processing DirectRunner with N worker processes; 0: one per CPU.
      project: dataflow: the Google Cloud project id.
      region: dataflow: the Dataflow region, e.g. "europe-west1".
      temp_location: dataflow: a gs:// path for temporary and staging files.
      sdk_container_image: dataflow: the pipeline image (docker/Dockerfile) pushed to a registry.
      extra_package: dataflow, instead of an image: a wheel (or sdist) of the project.
      setup_file: dataflow, instead of an image: a file named setup.py that installs the project.
      machine_type: dataflow worker machine type.
      extra_args: further Beam arguments, appended last (a later flag overrides an earlier one,
        e.g. "--machine_type=n2-highmem-8", "--max_num_workers=20").

    Returns:
      The arguments, in a stable order.

    Raises:
      RunnerError: an unknown runner, a missing or malformed option, or an option of another runner.
    """
    extra = tuple(extra_args)
    for arg in extra:
        if not arg.startswith("--"):
            raise RunnerError(f"--beam-arg: {arg!r} must look like --name=value")
    if runner == "direct":
        for name, value in (("project", project), ("region", region), ("temp_location", temp_location),
                            ("sdk_container_image", sdk_container_image), ("extra_package", extra_package),
                            ("setup_file", setup_file)):
            if value:
                raise RunnerError(f"{_flag(name)}: applies only to --runner dataflow")
        if direct_workers is None:
            return DIRECT_IN_MEMORY + extra
        if isinstance(direct_workers, bool) or not isinstance(direct_workers, int) or direct_workers < 0:
            raise RunnerError(f"--direct-workers: {direct_workers!r} must be 0 (one per CPU) or a positive integer")
        return ("--direct_running_mode=multi_processing", f"--direct_num_workers={direct_workers}") + extra
    if runner != "dataflow":
        raise RunnerError(f"--runner: {runner!r} is not a known runner (known: {', '.join(RUNNERS)})")

    if direct_workers is not None:
        raise RunnerError(f"{_flag('direct_workers')}: applies only to --runner direct")
    args = [
        "--runner=DataflowRunner",
        f"--project={_require('project', project, _PROJECT, 'a Google Cloud project id')}",
        f"--region={_require('region', region, _REGION, 'a Dataflow region such as europe-west1')}",
        f"--temp_location={_require('temp_location', temp_location, _GCS, 'a gs://bucket/path')}",
        "--experiments=use_runner_v2",
    ]
    code = [(n, v) for n, v in (("sdk_container_image", sdk_container_image), ("extra_package", extra_package),
                                ("setup_file", setup_file)) if v]
    if len(code) != 1:
        given = " and ".join(_flag(n) for n, _ in code) if code else "none"
        raise RunnerError(
            f"{_flag('sdk_container_image')}: Dataflow workers need the project installed; give exactly one of "
            f"{_flag('sdk_container_image')} (the docker/Dockerfile image), {_flag('extra_package')} (a wheel: "
            f"pip wheel --no-deps -w dist .) or {_flag('setup_file')} (got {given})")
    name, value = code[0]
    if name == "sdk_container_image":
        _require(name, value, _IMAGE, "a container image reference such as REGION-docker.pkg.dev/PROJECT/REPO/IMAGE:TAG")
    elif name == "extra_package":
        if not value.endswith((".whl", ".tar.gz", ".tar", ".zip")):
            raise RunnerError(f"{_flag(name)}: {value!r} must be a .whl or .tar.gz of the project")
        if not value.startswith("gs://"):
            if not os.path.isfile(value):
                raise RunnerError(f"{_flag(name)}: {value!r} does not exist (build it: pip wheel --no-deps -w dist .)")
            value = os.path.abspath(value)
    else:
        if os.path.basename(value) != "setup.py" or not os.path.isfile(value):
            raise RunnerError(f"{_flag(name)}: {value!r} must be an existing file named setup.py")
        value = os.path.abspath(value)
    args.append(f"--{name}={value}")
    if not _MACHINE.match(machine_type or ""):
        raise RunnerError(f"{_flag('machine_type')}: {machine_type!r} is not a machine type such as e2-standard-4")
    args += [f"--machine_type={machine_type}", f"--disk_size_gb={DATAFLOW_DISK_SIZE_GB}"]
    return tuple(args) + extra


def component_beam_args(beam_pipeline_args: Sequence[str]) -> Tuple[str, ...]:
    """The `beam_pipeline_args` the pipeline hands its Beam components.

    The one-worker in-memory DirectRunner is Beam's default, so for it the components get no
    arguments at all. That is not only shorter: given any Beam argument but none that ships
    code (--extra_package, --setup_file, --sdk_container_image, ...), TFX copies its whole
    installation into a temporary folder and builds an sdist of it for every Beam component it
    runs (about 3 s and 49 MB left in the temp folder each), for remote workers that a
    DirectRunner never has. Every other choice is passed through unchanged.
    """
    args = tuple(beam_pipeline_args)
    return () if args == DIRECT_IN_MEMORY else args


def check_pipeline_root(beam_pipeline_args: Sequence[str], pipeline_root: str) -> str:
    """Checks that remote Beam workers can reach the pipeline root; returns it.

    Beam-based components read their input artifacts and write their outputs on the workers, so
    with DataflowRunner the pipeline root must be a gs:// path (ML Metadata, a SQLite file, and the
    Pusher's serving folder stay on the launching machine).

    Raises:
      RunnerError: naming --pipeline-root.
    """
    if "--runner=DataflowRunner" in beam_pipeline_args and not _GCS.match(pipeline_root or ""):
        raise RunnerError(f"--pipeline-root: {pipeline_root!r} is not a gs://bucket/path; with --runner dataflow "
                          "the workers read and write the pipeline's artifacts there")
    return pipeline_root
