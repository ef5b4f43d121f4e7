"""`rqvalue schedule`: retrain on a schedule.

Local target (default): one cron entry per output folder that creates the folder if it is missing
and runs `rqvalue run` under `flock -n <output_dir>/.rqvalue.lock`, so two runs never write one ML
Metadata store at once (a run that finds the previous one still going is skipped), appending its
output to `<output_dir>/schedule.log`. `rqvalue run` takes the same lock itself, so a run started
by hand and a scheduled one exclude each other too (`pipeline/output_lock.py`). Each entry sits under a marker comment `# rqvalue:<output_dir>`, so
several pipelines can be scheduled side by side and removed one by one; other crontab lines are
kept as they are. A value that would go into the crontab (output folder, config path, runner
options, Beam arguments) is refused if it holds a newline or another control character: it would
start a crontab line of its own.

  rqvalue schedule --every daily --dataset cdnow --output-dir runs/cdnow        # install or replace
  rqvalue schedule --cron "30 4 * * 1-5" --config my.yaml --output-dir runs/my --dry-run
  rqvalue schedule --list
  rqvalue schedule --remove --output-dir runs/cdnow

The crontab is read with `crontab -l` and written with `crontab -`; the environment variable
RQVALUE_CRONTAB names another executable that behaves the same (tests use a fake one).

Vertex target: `--target vertex --pipeline-spec PIPELINE.json` prints a schedule spec (cron and the
compiled pipeline, see `pipeline.pipeline.compile_vertex`) for `PipelineJob.create_schedule`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from typing import List, Optional, Sequence, Tuple

from pipeline import runners
from pipeline.config import ConfigError
from rqvalue import runner_options

EVERY = {
    "hourly": "0 * * * *",   # on the hour
    "daily": "0 2 * * *",    # 02:00 every day
    "weekly": "0 2 * * 0",   # 02:00 on Sundays
}
MARKER = "# rqvalue:"
LOCK_FILE = ".rqvalue.lock"
LOG_FILE = "schedule.log"
CRONTAB_ENV = "RQVALUE_CRONTAB"
ENVIRONMENT = ("TF_USE_LEGACY_KERAS=1", "FEAST_USAGE=False")

# (name, lowest, highest, names) of the five cron fields.
_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
    ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
_TERM = re.compile(r"^(?:(\*)|([0-9a-z]+)(?:-([0-9a-z]+))?)(?:/([0-9]+))?$")
# Control characters (C0, DEL, C1) and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# The runner options whose values the scheduled run gets (rqvalue.runner_options).
_RUNNER_VALUES = ("project", "region", "temp_location", "sdk_container_image", "extra_package", "machine_type")


class ScheduleError(ValueError):
    """A schedule option is wrong or the crontab cannot be used; the message names the flag or command."""


def _number(word: str, field, expr: str, text: str) -> int:
    """One value of a cron field, a number or a month/weekday name, checked against the field's range."""
    name, low, high, names = field
    if word.isdigit():
        number = int(word)
    elif word in names:
        number = names.index(word) + (1 if name == "month" else 0)
    else:
        raise ScheduleError(f"--cron: {expr!r}: {name} field {text!r}: {word!r} is not a number")
    if not low <= number <= high:
        raise ScheduleError(f"--cron: {expr!r}: {name} field {text!r}: {number} is outside {low}-{high}")
    return number


def validate_cron(expr: str) -> str:
    """Checks a five-field cron expression (minute hour day-of-month month day-of-week).

    Each field is a comma list of `*`, `N`, `N-M`, each optionally `/STEP`; months and weekdays may be
    written as names (jan, mon). Returns the expression with single spaces.

    Raises:
      ScheduleError: naming `--cron`, the field and the problem.
    """
    fields = (expr or "").split()
    if len(fields) != 5:
        raise ScheduleError(f"--cron: {expr!r} must have 5 fields (minute hour day-of-month month day-of-week), "
                            f"e.g. '0 2 * * *'; or use --every {{{','.join(EVERY)}}}")
    for text, field in zip(fields, _FIELDS):
        name = field[0]
        for term in text.lower().split(","):
            match = _TERM.match(term)
            if not match:
                raise ScheduleError(f"--cron: {expr!r}: {name} field {text!r} is not of the form *, N, N-M or */STEP")
            star, first, last, step = match.groups()
            if not star:
                start = _number(first, field, expr, text)
                if last is not None and _number(last, field, expr, text) < start:
                    raise ScheduleError(f"--cron: {expr!r}: {name} field {text!r}: range {term!r} runs backwards")
            if step is not None and int(step) == 0:
                raise ScheduleError(f"--cron: {expr!r}: {name} field {text!r}: step 0")
    return " ".join(fields)


def check_one_line(flag: str, value: Optional[str]) -> None:
    """Refuses a value for the crontab that holds a control character (a newline starts a new cron line).

    Raises:
      ScheduleError: naming the flag, the value and the character.
    """
    found = _CONTROL.search(value or "")
    if found:
        raise ScheduleError(f"{flag}: {value!r} holds the control character {found.group()!r}; a value written "
                            "into the crontab must be one line of printable text")


def check_crontab_values(args: argparse.Namespace) -> None:
    """Applies `check_one_line` to every option of `args` that the crontab entry would hold."""
    values = [("--output-dir", args.output_dir), ("--config", args.config), ("--pipeline-root", args.pipeline_root)]
    values += [(f"--{name.replace('_', '-')}", getattr(args, name)) for name in _RUNNER_VALUES]
    values += [("--beam-arg", arg) for arg in args.beam_arg or ()]
    for flag, value in values:
        check_one_line(flag, value)


def _rqvalue_command() -> List[str]:
    """The absolute command that runs `rqvalue` in this environment (cron has a bare PATH)."""
    script = os.path.join(os.path.dirname(os.path.abspath(sys.executable)), "rqvalue")
    if os.access(script, os.X_OK):
        return [script]
    return [os.path.abspath(sys.executable), "-m", "rqvalue"]


def run_argv(args: argparse.Namespace) -> List[str]:
    """The `rqvalue run` options that the scheduled run gets, with absolute paths."""
    argv = ["--config", os.path.abspath(args.config)] if args.config else ["--dataset", args.dataset]
    argv += ["--output-dir", os.path.abspath(args.output_dir)]
    if args.pipeline_root:
        argv += ["--pipeline-root", args.pipeline_root]
    if getattr(args, "then_predict", False):
        argv.append("--then-predict")
    return argv + list(runner_options.runner_argv(args)) + list(runner_options.trainer_argv(args))


def cron_line(expr: str, output_dir: str, run_options: Sequence[str], rqvalue: Optional[Sequence[str]] = None,
              flock: Optional[str] = None) -> str:
    """The crontab line: `EXPR mkdir -p DIR && env flock -n LOCK rqvalue run OPTIONS >> LOG 2>&1`.

    The line creates the output folder first: the shell opens the log there before flock runs.

    Args:
      expr: a valid cron expression.
      output_dir: absolute output folder; holds the lock file and the log.
      run_options: options of `rqvalue run`.
      rqvalue: the command that starts rqvalue (default: this environment's).
      flock: the flock executable (default: found on PATH, else "flock").
    """
    words = list(ENVIRONMENT) + [flock or shutil.which("flock") or "flock", "-n",
                                 os.path.join(output_dir, LOCK_FILE)]
    words += list(rqvalue or _rqvalue_command()) + ["run"] + list(run_options)
    command = f"mkdir -p {shlex.quote(output_dir)} && " + " ".join(shlex.quote(w) for w in words)
    command += f" >> {shlex.quote(os.path.join(output_dir, LOG_FILE))} 2>&1"
    line = f"{expr} {command.replace('%', chr(92) + '%')}"  # cron turns a bare % into a newline
    check_one_line("the crontab line", line)
    return line


# -- the crontab --------------------------------------------------------------------------------------

def _crontab(executable: Optional[str] = None) -> str:
    name = executable or os.environ.get(CRONTAB_ENV) or "crontab"
    path = shutil.which(name)
    if not path:
        raise ScheduleError(f"crontab: command {name!r} not found. Install cron (e.g. `apt-get install cron`), or "
                            f"print the line with --dry-run and add it yourself; {CRONTAB_ENV} names another "
                            "crontab executable.")
    return path


def read_crontab(executable: Optional[str] = None) -> str:
    """The user's crontab (`crontab -l`); empty when there is none yet."""
    done = subprocess.run([_crontab(executable), "-l"], capture_output=True, text=True)
    if done.returncode == 0:
        return done.stdout
    if "no crontab" in done.stderr.lower():
        return ""
    raise ScheduleError(f"crontab -l failed ({done.returncode}): {done.stderr.strip()}")


def write_crontab(text: str, executable: Optional[str] = None) -> None:
    """Replaces the user's crontab with `text` (`crontab -`)."""
    if text and not text.endswith("\n"):
        text += "\n"  # cron ignores a last line without a newline
    done = subprocess.run([_crontab(executable), "-"], input=text, capture_output=True, text=True)
    if done.returncode != 0:
        raise ScheduleError(f"crontab - failed ({done.returncode}): {done.stderr.strip()}")


def entries(table: str) -> List[Tuple[str, str]]:
    """The rqvalue entries of a crontab: (output_dir, cron line) per marker."""
    lines = table.splitlines()
    return [(line[len(MARKER):], lines[i + 1] if i + 1 < len(lines) else "")
            for i, line in enumerate(lines) if line.startswith(MARKER)]


def without(table: str, output_dir: str) -> str:
    """The crontab without the entry of `output_dir` (its marker line and the line after it)."""
    lines, kept, skip = table.splitlines(), [], False
    for line in lines:
        if skip:
            skip = False
            continue
        if line == MARKER + output_dir:
            skip = True
            continue
        kept.append(line)
    return "\n".join(kept) + ("\n" if kept else "")


def with_entry(table: str, output_dir: str, line: str) -> str:
    """The crontab with the entry of `output_dir` set to `line` (added at the end, or replaced)."""
    check_one_line("--output-dir", output_dir)  # the marker line
    check_one_line("the crontab line", line)
    rest = without(table, output_dir)
    return rest + f"{MARKER}{output_dir}\n{line}\n"


# -- the command ----------------------------------------------------------------------------------------

def add_parser(subparsers) -> argparse.ArgumentParser:
    """Adds `schedule` to the `rqvalue` subcommands."""
    from pipeline import datasets

    parser = subparsers.add_parser(
        "schedule", help="retrain on a schedule: install a cron entry (or print a Vertex schedule spec)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--every", choices=tuple(EVERY), help="hourly (on the hour), daily (02:00, the default) "
                                                            "or weekly (Sunday 02:00)")
    when.add_argument("--cron", metavar="EXPR", help="a five-field cron expression, e.g. '30 4 * * 1-5'")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--dry-run", action="store_true", help="print the crontab line and change nothing")
    action.add_argument("--list", action="store_true", help="show the rqvalue entries of the crontab")
    action.add_argument("--remove", action="store_true", help="remove the entry of --output-dir")
    parser.add_argument("--target", choices=("local", "vertex"), default="local",
                        help="local: cron + LocalDagRunner (default); vertex: print a Vertex AI schedule spec")
    parser.add_argument("--pipeline-spec", metavar="JSON",
                        help="vertex: the compiled pipeline (pipeline.pipeline.compile_vertex), local or gs://")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dataset", choices=datasets.NAMES, default="cdnow_snapshots", help="as for `rqvalue run`")
    source.add_argument("--config", help="as for `rqvalue run`")
    parser.add_argument("--output-dir", default="runs", help="as for `rqvalue run` (default: runs); one entry each")
    parser.add_argument("--then-predict", action="store_true",
                        help="after each run, score every entity with the latest pushed model (rqvalue predict)")
    runner_options.add_runner_arguments(parser)
    runner_options.add_trainer_arguments(parser)
    parser.set_defaults(func=main)
    return parser


def _expr(args: argparse.Namespace) -> str:
    return validate_cron(args.cron) if args.cron else EVERY[args.every or "daily"]


def _vertex(args: argparse.Namespace) -> int:
    spec = args.pipeline_spec
    if not spec:
        raise ScheduleError("--pipeline-spec: required for --target vertex (compile the pipeline first with "
                            "pipeline.pipeline.compile_vertex)")
    if not spec.startswith("gs://"):
        if not os.path.isfile(spec):
            raise ScheduleError(f"--pipeline-spec: {spec!r} does not exist")
        spec = os.path.abspath(spec)
    print(json.dumps({
        "display_name": f"rqvalue-{os.path.splitext(os.path.basename(spec))[0]}",
        "cron": _expr(args),
        "template_path": spec,
        "max_concurrent_run_count": 1,
        "create_with": "google.cloud.aiplatform.PipelineJob(display_name, template_path, pipeline_root)"
                       ".create_schedule(display_name, cron, max_concurrent_run_count)",
    }, indent=2))
    return 0


def _local(args: argparse.Namespace, crontab: Optional[str]) -> int:
    output_dir = os.path.abspath(args.output_dir)
    if args.list:
        found = entries(read_crontab(crontab))
        for directory, line in found:
            print(f"{directory}\n  {line}")
        if not found:
            print("no rqvalue schedules in the crontab")
        return 0
    check_crontab_values(args)
    if args.remove:
        table = read_crontab(crontab)
        if MARKER + output_dir not in table.splitlines():
            print(f"no schedule for {output_dir}")
            return 0
        write_crontab(without(table, output_dir), crontab)
        print(f"removed the schedule of {output_dir}")
        return 0
    if args.config and not os.path.isfile(args.config):
        raise ScheduleError(f"--config: {args.config!r} does not exist")
    # A bad runner option fails now, not at 2 a.m.
    runners.check_pipeline_root(runner_options.beam_args_from(args), args.pipeline_root or output_dir)
    line = cron_line(_expr(args), output_dir, run_argv(args))
    if args.dry_run:
        print(line)
        return 0
    if not shutil.which("flock"):
        raise ScheduleError("flock: not found; it keeps two runs off one ML Metadata store (util-linux package)")
    table = read_crontab(crontab)
    os.makedirs(output_dir, exist_ok=True)  # the lock and the log live here
    write_crontab(with_entry(table, output_dir, line), crontab)
    print(f"scheduled: {line}\nlog: {os.path.join(output_dir, LOG_FILE)}")
    return 0


def main(args: argparse.Namespace, crontab: Optional[str] = None) -> int:
    """Runs `rqvalue schedule`; returns the exit status (2 on a wrong option or a crontab failure).

    Args:
      args: options parsed by the parser of `add_parser`.
      crontab: the crontab executable (default: $RQVALUE_CRONTAB, else `crontab`).
    """
    try:
        if args.target == "vertex":
            return _vertex(args)
        return _local(args, crontab)
    except (ScheduleError, runners.RunnerError, ConfigError) as e:
        print(f"rqvalue schedule: {e}", file=sys.stderr)
        return 2
