"""The `rqvalue` command line (each command lives in a module of its own).

  rqvalue run      run the pipeline on an embedded data set or one's own (--config)
  rqvalue inspect  what each run produced, from ML Metadata (runs, artifacts, metrics, codebook, ...)
  rqvalue report   one self-contained HTML report of a run's evaluation, with plots
  rqvalue compile  the pipeline as a Vertex AI Pipelines (Kubeflow V2) job spec
  rqvalue schedule retrain on a schedule: a cron entry under flock (or a Vertex AI schedule spec)
  rqvalue bench    every model on every embedded data set, several seeds -> benchmarks/RESULTS.md
"""

import argparse
import sys
from typing import List, Optional

from pipeline import config as config_lib
from pipeline import output_lock
from rqvalue import console

BUSY = 3  # the exit status of a run refused because another run is using its output folder


def parser() -> argparse.ArgumentParser:
    from rqvalue import run, schedule
    from rqvalue.bench import command as bench
    from rqvalue.inspect import command as inspect
    from rqvalue.report import command as report

    # Each command sets `func`, the function that runs it.
    root = argparse.ArgumentParser(prog="rqvalue", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = root.add_subparsers(dest="command", required=True)
    run.add_parsers(commands)
    inspect.add_parser(commands)
    report.add_parser(commands)
    schedule.add_parser(commands)
    bench.add_parser(commands)
    return root


def main(argv: Optional[List[str]] = None) -> int:
    console.quiet()
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except config_lib.ConfigError as e:
        print(f"rqvalue: configuration error: {e}", file=sys.stderr)
        return 2
    except output_lock.OutputDirBusy as e:
        print(f"rqvalue: {e}", file=sys.stderr)
        return BUSY
    except ValueError as e:  # IngestionError and data set errors name the field themselves
        print(f"rqvalue: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
