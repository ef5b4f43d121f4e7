"""`rqvalue report [RUN] [--output-dir runs] [--out report.html]`: one self-contained static HTML page
about a run's evaluation.

RUN is a pipeline run id as ML Metadata records it (the `pipeline_run` context name, e.g.
`2026-11-26T00:13:18.334776`; a unique prefix is enough); by default the latest run that has an
evaluation. `gather` reads and scores, `render` writes the page.
"""

import argparse
import os
import sys
from typing import Optional

from pipeline import mlmd
from rqvalue.report.gather import BATCH_SIZE, ReportError, gather
from rqvalue.report.render import render


def write_report(output_dir: str, run: Optional[str] = None, out: str = "report.html",
                 batch_size: int = BATCH_SIZE) -> str:
    """Gathers, renders and writes the report of a run in `output_dir`; returns the written path."""
    data = gather(os.path.join(output_dir, mlmd.METADATA_FILE), run, batch_size)
    page = render(data)
    path = os.path.abspath(out)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    return path


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Registers `report` on the `rqvalue` sub-command parsers."""
    parser = subparsers.add_parser(
        "report", help="write a self-contained HTML report of a run's evaluation",
        description="Write one self-contained HTML file about a run: TFMA metrics, Lorenz curve, calibration, "
                    "error per value bucket, distributions, RQ code usage and interval coverage.")
    parser.add_argument("run", nargs="?", default=None,
                        help="pipeline run id (or a unique prefix); default: the latest run with an evaluation")
    parser.add_argument("--output-dir", default="runs",
                        help="the run folder holding metadata.sqlite (default: runs)")
    parser.add_argument("--out", default="report.html", help="HTML file to write (default: report.html)")
    parser.set_defaults(func=main)
    return parser


def main(args) -> int:
    """Writes the report; prints its path. Plain errors go to stderr with exit status 2."""
    try:
        path = write_report(os.path.abspath(args.output_dir), run=args.run, out=args.out)
    except (ReportError, mlmd.MetadataError) as e:
        print(f"rqvalue report: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0
