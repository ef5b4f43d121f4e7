"""`rqvalue schedule`: the cron line, and install/list/remove on a fake crontab."""

import argparse
import fcntl
import json
import os
import shlex
import subprocess
import sys

import pytest

from rqvalue import schedule

FAKE_CRONTAB = """#!/bin/sh
# A stand-in for crontab(1): `-l` prints the table, `-` replaces it from stdin.
table="$(dirname "$0")/table"
case "$1" in
  -l) if [ -f "$table" ]; then cat "$table"; else echo "no crontab for $(id -un)" >&2; exit 1; fi ;;
  -) cat > "$table" ;;
  *) echo "usage: crontab [-l | -]" >&2; exit 2 ;;
esac
"""
UNRELATED = "MAILTO=ops@example.com\n# nightly backup\n30 1 * * * /usr/local/bin/backup --all\n"


@pytest.fixture(autouse=True)
def _never_the_real_crontab(tmp_path, monkeypatch):
    """No test reads or writes the user's crontab: by default RQVALUE_CRONTAB names nothing."""
    monkeypatch.setenv(schedule.CRONTAB_ENV, str(tmp_path / "no-crontab-here"))


@pytest.fixture
def crontab(tmp_path, monkeypatch):
    """A fake crontab named by RQVALUE_CRONTAB; returns the file that holds the table."""
    folder = tmp_path / "fakecron"
    folder.mkdir()
    script = folder / "crontab"
    script.write_text(FAKE_CRONTAB)
    script.chmod(0o755)
    monkeypatch.setenv(schedule.CRONTAB_ENV, str(script))
    return folder / "table"


def _run(argv):
    parser = argparse.ArgumentParser(prog="rqvalue")
    schedule.add_parser(parser.add_subparsers(dest="command"))
    return schedule.main(parser.parse_args(["schedule", *argv]))


def _out(tmp_path, name="runs"):
    return str(tmp_path / name)


# -- the line --------------------------------------------------------------------------------------------

def test_dry_run_prints_the_exact_line_and_changes_nothing(tmp_path, crontab, capsys):
    out = _out(tmp_path, "ltv")
    assert _run(["--dry-run", "--dataset", "synthetic_ltv", "--output-dir", out]) == 0
    line = capsys.readouterr().out.strip()
    rqvalue = os.path.join(os.path.dirname(os.path.abspath(sys.executable)), "rqvalue")
    flock = subprocess.run(["sh", "-c", "command -v flock"], capture_output=True, text=True).stdout.strip()
    assert line == (f"0 2 * * * mkdir -p {out} && TF_USE_LEGACY_KERAS=1 FEAST_USAGE=False {flock} -n {out}/.rqvalue.lock "
                    f"{rqvalue} run --dataset synthetic_ltv --output-dir {out} >> {out}/schedule.log 2>&1")
    assert os.path.isabs(flock) and os.path.isabs(rqvalue)
    assert not crontab.exists() and not os.path.exists(out)


def test_trainer_flags_reach_the_scheduled_run_and_read_back_the_same(tmp_path, crontab, capsys):
    from rqvalue import cli, runner_options

    out = _out(tmp_path)
    flags = ["--trainer-accelerator", "NVIDIA_TESLA_T4", "--trainer-accelerator-count", "2",
             "--trainer-precision", "mixed_float16", "--trainer-components", "Trainer,Transform"]
    assert _run(["--dry-run", "--output-dir", out, *flags]) == 0
    line = capsys.readouterr().out.strip()
    run_words = shlex.split(line.split(" run ", 1)[1].split(" >> ")[0])
    scheduled = runner_options.trainer_overrides(cli.parser().parse_args(["run", *run_words]))
    assert scheduled == {"accelerator": "NVIDIA_TESLA_T4", "accelerator_count": 2, "precision": "mixed_float16",
                         "components": ("Trainer", "Transform")}


def test_a_bad_trainer_flag_is_refused_before_anything_is_installed(tmp_path, crontab, capsys):
    assert _run(["--output-dir", _out(tmp_path), "--trainer-accelerator", "TPU_V3"]) == 2
    assert "trainer.accelerator: 'TPU_V3'" in capsys.readouterr().err
    assert not crontab.exists()


@pytest.mark.parametrize("argv, expr", [
    (["--every", "hourly"], "0 * * * *"),
    (["--every", "daily"], "0 2 * * *"),
    (["--every", "weekly"], "0 2 * * 0"),
    (["--cron", "30  4 * *  mon-fri"], "30 4 * * mon-fri"),
    (["--cron", "*/15 8-18 1,15 jan-jun *"], "*/15 8-18 1,15 jan-jun *"),
])
def test_schedule_expression(tmp_path, capsys, argv, expr):
    assert _run(["--dry-run", "--output-dir", _out(tmp_path), *argv]) == 0
    assert capsys.readouterr().out.startswith(expr + " ")


def test_relative_paths_become_absolute_and_run_options_pass_through(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my.yaml").write_text("data: {}\n")
    argv = ["--dry-run", "--config", "my.yaml", "--output-dir", "runs/my", "--runner", "dataflow",
            "--project", "my-project", "--region", "europe-west1", "--temp-location", "gs://my-bucket/tmp",
            "--sdk-container-image", "europe-docker.pkg.dev/my-project/r/rqvalue-pipeline:0.1.0",
            "--pipeline-root", "gs://my-bucket/rqvalue"]
    assert _run(argv) == 0
    words = shlex.split(capsys.readouterr().out)
    run = words[words.index("run"):words.index(">>")]
    assert run == ["run", "--config", str(tmp_path / "my.yaml"), "--output-dir", str(tmp_path / "runs/my"),
                   "--pipeline-root", "gs://my-bucket/rqvalue", "--runner", "dataflow", "--project", "my-project", "--region", "europe-west1",
                   "--temp-location", "gs://my-bucket/tmp", "--sdk-container-image",
                   "europe-docker.pkg.dev/my-project/r/rqvalue-pipeline:0.1.0"]


def test_wrong_run_options_fail_when_scheduling(tmp_path, capsys):
    assert _run(["--dry-run", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "--config" in capsys.readouterr().err
    assert _run(["--dry-run", "--runner", "dataflow", "--project", "my-project"]) == 2
    assert "--region" in capsys.readouterr().err
    dataflow = ["--runner", "dataflow", "--project", "my-project", "--region", "europe-west1",
                "--temp-location", "gs://my-bucket/tmp", "--sdk-container-image", "europe-docker.pkg.dev/p/r/i:1"]
    assert _run(["--dry-run", *dataflow]) == 2  # the pipeline root would be local
    assert "--pipeline-root" in capsys.readouterr().err


def test_the_line_runs_under_flock_and_logs(tmp_path):
    """The command part, run by sh as cron would: quoting survives a space, output goes to the log."""
    out = str(tmp_path / "my runs")
    os.makedirs(out)
    fake = tmp_path / "rqvalue"
    fake.write_text('#!/bin/sh\necho "args: $*"; echo "legacy keras: $TF_USE_LEGACY_KERAS"; echo oops >&2\n')
    fake.chmod(0o755)
    line = schedule.cron_line("0 2 * * *", out, ["--output-dir", out], rqvalue=[str(fake)])
    subprocess.run(["sh", "-c", line.split(" ", 5)[5]], check=True)
    log = open(os.path.join(out, "schedule.log")).read()
    assert log == f"args: run --output-dir {out}\nlegacy keras: 1\noops\n"
    assert os.path.exists(os.path.join(out, ".rqvalue.lock"))


def test_a_held_lock_skips_the_run(tmp_path):
    """While one run holds <output_dir>/.rqvalue.lock, the next scheduled one does not start."""
    marker = tmp_path / "ran"
    touch = ["sh", "-c", 'touch "$0"', str(marker)]  # ignores the "run" that follows
    line = schedule.cron_line("* * * * *", str(tmp_path), [], rqvalue=touch)
    with open(tmp_path / ".rqvalue.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the "previous run"
        done = subprocess.run(["sh", "-c", line.split(" ", 5)[5]])
    assert done.returncode != 0 and not marker.exists()
    subprocess.run(["sh", "-c", line.split(" ", 5)[5]], check=True)  # lock free again: it runs
    assert marker.exists()


def test_percent_is_escaped_for_cron(tmp_path):
    line = schedule.cron_line("0 2 * * *", str(tmp_path / "100%"), [], rqvalue=["rqvalue"])
    assert "%" not in line.replace("\\%", "")


# -- cron expressions ------------------------------------------------------------------------------------

@pytest.mark.parametrize("expr, message", [
    ("0 2 * *", "must have 5 fields"),
    ("@daily", "must have 5 fields"),
    ("60 2 * * *", "minute field '60': 60 is outside 0-59"),
    ("0 24 * * *", "hour field '24': 24 is outside 0-23"),
    ("0 2 0 * *", "day of month field '0': 0 is outside 1-31"),
    ("0 2 * 13 *", "month field '13'"),
    ("0 2 * * 8", "day of week field '8'"),
    ("0 2 * * fri-mon", "runs backwards"),
    ("*/0 2 * * *", "step 0"),
    ("0 2 * * funday", "'funday' is not a number"),
    ("0 2 ? * *", "is not of the form"),
])
def test_bad_cron_expressions_are_rejected(expr, message):
    with pytest.raises(schedule.ScheduleError, match="--cron") as error:
        schedule.validate_cron(expr)
    assert message in str(error.value)


def test_bad_cron_expression_on_the_command_line(tmp_path, crontab, capsys):
    assert _run(["--cron", "0 25 * * *", "--output-dir", _out(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rqvalue schedule: --cron: '0 25 * * *': hour field") and "outside 0-23" in err
    assert not crontab.exists()


# -- the crontab -----------------------------------------------------------------------------------------

def test_install_list_remove_round_trip_keeps_other_lines(tmp_path, crontab, capsys):
    crontab.write_text(UNRELATED)
    out = _out(tmp_path, "cdnow")
    assert _run(["--every", "daily", "--output-dir", out]) == 0
    table = crontab.read_text()
    assert table.startswith(UNRELATED) and table.endswith("\n")
    assert schedule.entries(table) == [(out, table.splitlines()[-1])]
    assert os.path.isdir(out)  # the lock and the log go here
    capsys.readouterr()

    assert _run(["--list"]) == 0
    listed = capsys.readouterr().out
    assert out in listed and "flock -n" in listed and "backup" not in listed

    assert _run(["--every", "hourly", "--output-dir", out]) == 0  # again: replaced, not added
    assert len(schedule.entries(crontab.read_text())) == 1
    assert schedule.entries(crontab.read_text())[0][1].startswith("0 * * * * ")

    assert _run(["--remove", "--output-dir", out]) == 0
    assert crontab.read_text() == UNRELATED
    capsys.readouterr()
    assert _run(["--list"]) == 0
    assert "no rqvalue schedules" in capsys.readouterr().out


def test_two_pipelines_side_by_side(tmp_path, crontab, capsys):
    first, second = _out(tmp_path, "cdnow"), _out(tmp_path, "ltv")
    assert _run(["--every", "daily", "--dataset", "cdnow", "--output-dir", first]) == 0
    assert _run(["--cron", "15 3 * * 1", "--dataset", "synthetic_ltv", "--output-dir", second]) == 0
    found = dict(schedule.entries(crontab.read_text()))
    assert set(found) == {first, second}
    assert "--dataset cdnow" in found[first] and "--dataset synthetic_ltv" in found[second]
    assert f"{second}/.rqvalue.lock" in found[second] and f"{second}/schedule.log" in found[second]

    assert _run(["--remove", "--output-dir", first]) == 0
    assert dict(schedule.entries(crontab.read_text())) == {second: found[second]}
    assert _run(["--remove", "--output-dir", first]) == 0  # nothing left to remove: fine
    assert "no schedule for" in capsys.readouterr().out


def test_empty_crontab_is_created(tmp_path, crontab):
    assert not crontab.exists()
    assert _run(["--output-dir", _out(tmp_path)]) == 0
    assert len(schedule.entries(crontab.read_text())) == 1


def test_missing_crontab_is_a_clear_error_but_dry_run_works(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(schedule.CRONTAB_ENV, str(tmp_path / "no-such-crontab"))
    assert _run(["--output-dir", _out(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "crontab: command" in err and "not found" in err and "--dry-run" in err
    assert _run(["--dry-run", "--output-dir", _out(tmp_path)]) == 0
    assert "flock -n" in capsys.readouterr().out


def test_failing_crontab_is_reported(tmp_path, capsys):
    broken = tmp_path / "crontab"
    broken.write_text("#!/bin/sh\necho 'permission denied' >&2\nexit 1\n")
    broken.chmod(0o755)
    parser = argparse.ArgumentParser(prog="rqvalue")
    schedule.add_parser(parser.add_subparsers(dest="command"))
    assert schedule.main(parser.parse_args(["schedule", "--list"]), crontab=str(broken)) == 2
    assert "crontab -l failed (1): permission denied" in capsys.readouterr().err


# -- Vertex ----------------------------------------------------------------------------------------------

def test_vertex_prints_a_schedule_spec(tmp_path, crontab, capsys):
    spec = tmp_path / "rqvalue-cdnow.json"
    spec.write_text("{}")
    assert _run(["--target", "vertex", "--pipeline-spec", str(spec), "--cron", "0 3 * * 1"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["cron"] == "0 3 * * 1" and printed["template_path"] == str(spec)
    assert printed["max_concurrent_run_count"] == 1
    assert not crontab.exists()


def test_vertex_needs_a_compiled_pipeline(tmp_path, capsys):
    assert _run(["--target", "vertex"]) == 2
    assert "--pipeline-spec: required" in capsys.readouterr().err
    assert _run(["--target", "vertex", "--pipeline-spec", str(tmp_path / "missing.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


# -- what goes into the crontab --------------------------------------------------------------------------

@pytest.mark.parametrize("flag, value", [
    ("--output-dir", "runs\n* * * * * touch /tmp/pwned"),
    ("--output-dir", "runs\rx"),
    ("--beam-arg", "--labels=a\n* * * * * touch /tmp/pwned"),
    ("--config", "my.yaml\n* * * * * touch pwned"),
    ("--pipeline-root", "gs://bucket/x\x00y"),
    ("--temp-location", "gs://bucket/tmp\x1b[2J"),
])
def test_control_characters_never_reach_the_crontab(tmp_path, crontab, monkeypatch, capsys, flag, value):
    monkeypatch.chdir(tmp_path)
    crontab.write_text(UNRELATED)
    if flag == "--config":
        (tmp_path / value).write_text("data: {}\n")  # the file exists: the name alone is refused
    argv = [flag, value]
    if flag in ("--pipeline-root", "--temp-location"):
        argv = ["--runner", "dataflow", "--project", "my-project", "--region", "europe-west1",
                "--temp-location", "gs://bucket/tmp", "--sdk-container-image", "europe-docker.pkg.dev/p/r/i:1",
                "--pipeline-root", "gs://bucket/root", *argv]
    for action in ([], ["--dry-run"], ["--remove"]):
        assert _run([*action, *argv]) == 2, action
        err = capsys.readouterr().err
        assert err.startswith(f"rqvalue schedule: {flag}: ") and "control character" in err
        assert len(err.strip().splitlines()) == 1
    assert crontab.read_text() == UNRELATED


def test_the_dry_run_line_works_as_printed_before_the_folder_exists(tmp_path, crontab, monkeypatch, capsys):
    """A line copied from --dry-run into a crontab runs even though the output folder is not there yet."""
    out = str(tmp_path / "new" / "runs")
    fake = tmp_path / "rqvalue"
    fake.write_text('#!/bin/sh\necho "args: $*"\n')
    fake.chmod(0o755)
    monkeypatch.setattr(schedule, "_rqvalue_command", lambda: [str(fake)])
    assert _run(["--dry-run", "--output-dir", out]) == 0
    line = capsys.readouterr().out.strip()
    assert not os.path.exists(out)  # --dry-run still changes nothing
    done = subprocess.run(["sh", "-c", line.split(" ", 5)[5]], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert open(os.path.join(out, "schedule.log")).read() == f"args: run --dataset cdnow_snapshots --output-dir {out}\n"
