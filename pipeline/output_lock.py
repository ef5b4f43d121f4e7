"""The lock on an output folder: one run at a time writes its ML Metadata store, data and serving folder.

The lock is `<output_dir>/.rqvalue.lock`, taken with flock(2), the lock flock(1) takes, so a run
started by hand and one started by the `rqvalue schedule` cron line (`flock -n LOCK rqvalue run`)
exclude each other. A second run does not wait: `hold` raises `OutputDirBusy` at once.

A process started by flock(1) inherits the descriptor flock(1) locked. flock(2) locks belong to an
open file description, so a second `open` of the same file would be refused the lock its own parent
holds; instead `hold` looks among the process's open descriptors for one on the lock file (same
device and inode) and locks through it, which succeeds when that description already holds the
lock. The same makes `hold` re-entrant within one process. A descriptor found that way is made
non-inheritable, so a worker process that outlives the run cannot keep the folder locked.

While it holds the lock, a process writes its id, start time and purpose (a training `run` or a
`scoring`) into the file; a run refused the lock quotes them. `holder` asks what holds the lock,
without taking it for longer than the question: the run views use it to tell a training run still
going from one that was killed (a scoring holding the folder is not the unfinished training run).
"""

import contextlib
import datetime
import errno
import fcntl
import os
from typing import Iterator, Optional

LOCK_FILE = ".rqvalue.lock"
RUN, SCORING = "run", "scoring"  # what a holder does in the folder


class OutputDirBusy(RuntimeError):
    """Another run holds the output folder's lock; the message names the folder and that run."""


def lock_path(output_dir: str) -> str:
    return os.path.join(output_dir, LOCK_FILE)


def _open_descriptors() -> Iterator[int]:
    for folder in ("/proc/self/fd", "/dev/fd"):
        if os.path.isdir(folder):
            yield from sorted(int(name) for name in os.listdir(folder) if name.isdigit())
            return
    yield from range(3, 1024)


def _descriptor_on(path: str) -> Optional[int]:
    """An open descriptor of this process on `path` (same device and inode), e.g. one flock(1) passed on."""
    try:
        target = os.stat(path)
    except OSError:
        return None
    for fd in _open_descriptors():
        try:
            found = os.fstat(fd)
        except OSError:
            continue
        if (found.st_dev, found.st_ino) == (target.st_dev, target.st_ino):
            return fd
    return None


def _holder_line(path: str) -> str:
    """What the holder wrote into the lock file (`_write_holder`), or '' if nothing can be read."""
    try:
        with open(path) as f:
            return f.read(200).strip()
    except OSError:
        return ""


def _holder(path: str) -> str:
    text = _holder_line(path)
    return f" ({text})" if text else ""


@contextlib.contextmanager
def hold(output_dir: str, purpose: str = RUN) -> Iterator[None]:
    """Holds the output folder's lock for the duration of the block; the folder must exist.

    Args:
      output_dir: the folder.
      purpose: RUN (a training run) or SCORING, written into the lock file for `holder`.

    Raises:
      OutputDirBusy: another process holds the lock.
      OSError: the lock file cannot be created or opened (an unwritable folder).
    """
    path = lock_path(output_dir)
    fd = _descriptor_on(path)
    own = fd is None
    if own:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    else:
        os.set_inheritable(fd, False)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise OutputDirBusy(f"{output_dir} is in use by another run{_holder(path)}: wait for it to finish "
                                "or use another --output-dir") from None
        _write_holder(path, purpose)
        yield
    finally:
        if own:
            os.close(fd)  # releases the lock


def _write_holder(path: str, purpose: str) -> None:
    """Notes this process in the lock file (another descriptor: the lock stays with the one that holds it)."""
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    try:
        with open(path, "w") as f:
            f.write(f"pid {os.getpid()}, started {started}, {purpose}\n")
    except OSError:
        pass  # only a courtesy for the message of a refused run


def held(output_dir: str) -> bool:
    """Whether a process (this one included) holds the output folder's lock now."""
    return holder(output_dir) is not None


def holder(output_dir: str) -> Optional[str]:
    """What holds the output folder's lock now: RUN or SCORING (RUN if the file does not say), or
    None when no process (this one included) holds it."""
    path = lock_path(output_dir)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None  # no lock file: no run has taken it
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return SCORING if _holder_line(path).endswith(", " + SCORING) else RUN
    finally:
        os.close(fd)  # also releases the shared lock just taken
    return None
