"""A run going on in an output folder, played by another process that holds the folder's lock."""

import contextlib
import subprocess
import sys

# Holds the lock of the folder argv[1] until the file argv[2] appears.
_RUN_GOING = """
import os, sys, time
from pipeline import output_lock
with output_lock.hold(sys.argv[1]):
    print("held", flush=True)
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.02)
"""


@contextlib.contextmanager
def another_run_holding(folder):
    """Yields the process holding `folder`'s lock (once it holds it); releases it on exit."""
    release = folder.parent / f"{folder.name}.release"
    going = subprocess.Popen([sys.executable, "-c", _RUN_GOING, str(folder), str(release)], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert going.stdout.readline().strip() == "held"
        yield going
    finally:
        release.touch()
        going.wait(timeout=60)
