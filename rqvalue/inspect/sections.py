"""The output of the inspect views: titled text tables with notes, or JSON, and the cell formats."""

import dataclasses
import datetime
import json
import math
import os
from typing import Any, Dict, List, Sequence

from pipeline import mlmd
from rqvalue.console import finite, table


@dataclasses.dataclass
class Section:
    """A titled text table with notes; cells are already strings."""

    title: str = ""
    headers: Sequence[str] = ()
    rows: List[List[str]] = dataclasses.field(default_factory=list)
    notes: List[str] = dataclasses.field(default_factory=list)


def render(data: Dict[str, Any], sections: List[Section], as_json: bool) -> str:
    if as_json:
        return json.dumps(jsonable(data), indent=2)
    return "\n\n".join(format_section(s) for s in sections)


def format_section(section: Section) -> str:
    lines = [section.title] if section.title else []
    if section.headers:
        lines += table(section.headers, section.rows)
    return "\n".join(lines + section.notes)


def jsonable(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def run_header(run: mlmd.Run) -> Dict[str, Any]:
    return {"id": run.short_id, "name": run.name, "status": run.status,
            "failed_component": run.failed.component if run.failed else None}


def run_title(run: mlmd.Run) -> str:
    return f"{run.label}: " + (f"{run.status} at {run.failed.component}" if run.failed else run.status)


def cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def number(value) -> str:
    if value is None or not finite(value):
        return "-"
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.0f}"


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def relative_uri(uri: str, output_dir: str) -> str:
    root = os.path.abspath(output_dir) + os.sep
    return uri[len(root):] if uri.startswith(root) else uri


def iso_time(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000.0).astimezone().isoformat(timespec="seconds")
