"""The output folder's lock: one run at a time, also under the scheduled run's flock(1), and a probe."""

import os
import subprocess
import sys
import time

import pytest

from pipeline import output_lock

# A stand-in for a run: holds the lock until the file argv[2] appears; exit 3 when refused.
RUN = """
import os, sys, time
from pipeline import output_lock
try:
    with output_lock.hold(sys.argv[1]):
        print("held", flush=True)
        while not os.path.exists(sys.argv[2]):
            time.sleep(0.02)
except output_lock.OutputDirBusy as e:
    print(e, flush=True)
    sys.exit(3)
"""


def _start(argv_prefix, folder, release):
    """Starts the stand-in run (after `argv_prefix`, e.g. flock) and waits until it holds the lock."""
    child = subprocess.Popen([*argv_prefix, sys.executable, "-c", RUN, str(folder), str(release)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    return child


def _try(folder, prefix=()):
    """A second stand-in run that gives up at once when refused: (exit code, first line)."""
    done = subprocess.run([*prefix, sys.executable, "-c", RUN, str(folder), str(folder / "x")],
                          capture_output=True, text=True, timeout=60, input="")
    return done.returncode, done.stdout.strip()


def test_a_second_run_is_refused_at_once_naming_the_first(tmp_path):
    release = tmp_path / "release"
    first = _start([], tmp_path, release)
    started = time.time()
    code, message = _try(tmp_path)
    assert code == 3 and time.time() - started < 30
    assert message.startswith(f"{tmp_path} is in use by another run (pid {first.pid}, started ")
    assert message.endswith("wait for it to finish or use another --output-dir")
    assert output_lock.held(str(tmp_path))
    release.touch()
    assert first.wait(timeout=60) == 0
    assert not output_lock.held(str(tmp_path))
    (tmp_path / "x").touch()
    assert _try(tmp_path) == (0, "held")  # free again


def test_a_run_under_the_schedules_flock_keeps_that_lock_and_excludes_others(tmp_path):
    """`flock -n LOCK rqvalue run`: the run does not refuse itself, and nothing else gets in meanwhile."""
    lock = output_lock.lock_path(str(tmp_path))
    release = tmp_path / "release"
    scheduled = _start(["flock", "-n", lock], tmp_path, release)
    assert _try(tmp_path)[0] == 3  # a run started by hand
    assert subprocess.run(["flock", "-n", lock, "true"]).returncode == 1  # the next scheduled one
    release.touch()
    assert scheduled.wait(timeout=60) == 0
    # The other way round: while a run started by hand holds it, the schedule's flock skips its run.
    manual = _start([], tmp_path, tmp_path / "release2")
    assert subprocess.run(["flock", "-n", lock, "true"]).returncode == 1
    (tmp_path / "release2").touch()
    assert manual.wait(timeout=60) == 0


def test_the_lock_is_reentrant_within_a_process_and_released_after(tmp_path):
    assert not output_lock.held(str(tmp_path))  # no lock file yet
    with output_lock.hold(str(tmp_path)):
        with output_lock.hold(str(tmp_path)):  # `rqvalue run` holds it, then the runner takes it again
            assert output_lock.held(str(tmp_path))
        assert output_lock.held(str(tmp_path))
        assert _try(tmp_path)[0] == 3
    assert not output_lock.held(str(tmp_path))


def test_the_probe_takes_nothing_a_run_would_need(tmp_path):
    with output_lock.hold(str(tmp_path)):
        pass
    for _ in range(3):
        assert not output_lock.held(str(tmp_path))
    (tmp_path / "x").touch()
    assert _try(tmp_path) == (0, "held")


def test_an_unwritable_lock_file_is_an_os_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError):
        with output_lock.hold(str(blocker)):
            pass
    assert os.path.isfile(blocker)


def test_the_holder_says_whether_a_training_run_or_a_scoring_holds_the_folder(tmp_path):
    folder = str(tmp_path)
    with output_lock.hold(folder, purpose=output_lock.SCORING):
        assert output_lock.holder(folder) == output_lock.SCORING
        assert _try(tmp_path)[1].endswith(", scoring): wait for it to finish or use another --output-dir")
    assert output_lock.holder(folder) is None
    with output_lock.hold(folder):
        assert output_lock.holder(folder) == output_lock.RUN
    assert output_lock.holder(folder) is None
