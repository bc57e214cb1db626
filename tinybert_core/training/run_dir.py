"""The run-directory guard: one process per output directory, and no run mixes with another's
files.

Every command that writes a run directory (pretrain, distill, finetune, quantize, quickstart)
opens it with `open_run_directory` before it writes anything there:

    with open_run_directory(output_dir, resume=resume, overwrite=overwrite,
                            inputs=[teacher_dir, *corpus_files]):
        ...  # write checkpoints, metrics.jsonl, model/ ...

The rules, checked in this order:
1. Never write into an input: the output directory may not be, or lie inside, a directory the
   command reads (a teacher, a model); with `overwrite`, no input may lie inside it either.
2. Lock: an exclusive `flock` on `OUTPUT_DIR/.tinybert-run.lock`, held until the block exits.
   The kernel drops it when the process dies, however it dies, so a lock is never stale in
   the kernel; the file records who holds it (pid, host, command, start time) for the message
   a second run gets, and whether that run exited cleanly, so a crashed run is reported.
3. Reuse: a fresh run needs an empty (or new) directory; `resume=True` continues the run in
   it; `overwrite=True` (`--overwrite-output-dir`, Hugging Face's name) first deletes the
   previous run's files, and only from a directory that holds a tinybert run.
4. Stale temp files: every `.NAME.<16 hex>.tmp` that `atomic_open` left behind when a process
   was killed mid-write is removed (under the lock no other process is writing them).
The training loop's `open_metrics_log` trims metrics.jsonl to the checkpoint's step on resume.
A data-parallel job opens its directory once, on rank 0 (`open_job_directory`).
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import socket
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

try:                                    # POSIX; msvcrt below is the Windows equivalent
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

LOCK_NAME = ".tinybert-run.lock"
# What marks a directory as a tinybert run (so --overwrite-output-dir may empty it), besides a
# lock record left by an earlier run: the files every run or model directory writes.
RUN_MARKERS = ("checkpoint.npz", "metrics.jsonl", "config.json")
_TEMP_RE = re.compile(r"^\..+\.[0-9a-f]{16}\.tmp$")        # atomic_open's temp-file names


class RunDirectoryError(ValueError):
    """The output directory cannot be used as asked (busy, not empty, an input, ...)."""


class RunDirectoryBusy(RunDirectoryError):
    """Another live process holds the directory's lock."""


@dataclass
class RunDirectory:
    """An output directory held by this process (see `open_run_directory`).

    `previous` is the lock record of the last run in this directory when that run did not exit
    cleanly (killed, crashed, out of power), else None; `removed` lists what was deleted
    (previous run files with `overwrite`, stale temp files).
    """

    path: Path
    previous: dict[str, Any] | None
    removed: list[str]


@contextmanager
def open_run_directory(path: str | os.PathLike, *, resume: bool = False,
                       overwrite: bool = False, inputs: Iterable[str | os.PathLike | None] = (),
                       command: str | None = None) -> Iterator[RunDirectory]:
    """Create (if needed), lock and check the run directory `path`; see the module docstring.

    Raises RunDirectoryError (a ValueError) with a one-line message naming the directory and
    what to do, before anything is written; RunDirectoryBusy when another process holds it.
    The lock is released when the block exits, by return or exception.
    """
    if resume and overwrite:
        raise RunDirectoryError("resume and overwrite exclude each other: resuming continues "
                                "the run in the directory, overwriting deletes it")
    path = Path(path)
    _check_inputs(path, [Path(p) for p in inputs if p is not None], overwrite)
    if path.exists() and not path.is_dir():
        raise RunDirectoryError(f"output directory {path} exists and is not a directory")
    if resume and not path.is_dir():
        raise RunDirectoryError(f"cannot resume: output directory {path} does not exist")
    path.mkdir(parents=True, exist_ok=True)
    f, record = _lock(path)
    try:
        removed = _check_contents(path, resume, overwrite, record is not None)
    except BaseException:
        if record is None:              # the lock file is ours alone: leave no trace behind
            (path / LOCK_NAME).unlink()
        f.close()
        raise
    previous = record if record and record.get("state") == "running" else None
    try:
        try:
            _write_record(f, {"pid": os.getpid(), "host": socket.gethostname(),
                              "started": time.time(), "command": command or _command_line(),
                              "state": "running"})
        except OSError as e:            # a full or read-only disk: say which file
            raise type(e)(e.errno, f"cannot write {path / LOCK_NAME}: {e.strerror}") from e
        removed += _remove_temp_files(path)
        yield RunDirectory(path, previous, removed)
    finally:
        _unlock(f)


# ----------------------------------------------------------------------------- the rules

def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def _check_inputs(output: Path, inputs: list[Path], overwrite: bool) -> None:
    out = output.resolve()
    for given in inputs:
        src = given.resolve()
        if src.is_dir() and _inside(out, src):
            raise RunDirectoryError(f"output directory {output} is inside the input directory "
                                    f"{given}; write the run somewhere else (--output-dir)")
        if overwrite and _inside(src, out):
            raise RunDirectoryError(f"--overwrite-output-dir would delete the input {given}, "
                                    f"which lies inside the output directory {output}")


def _entries(path: Path) -> list[str]:
    """The directory's entries, less the lock file and atomic_open's temp files."""
    return sorted(e for e in os.listdir(path) if e != LOCK_NAME and not _TEMP_RE.match(e))


def _check_contents(path: Path, resume: bool, overwrite: bool, had_run: bool) -> list[str]:
    entries = _entries(path)
    if resume or not entries:
        return []
    shown = ", ".join(entries[:6]) + (f" and {len(entries) - 6} more" if len(entries) > 6 else "")
    if not overwrite:
        raise RunDirectoryError(
            f"output directory {path} is not empty (it holds {shown}); continue that run with "
            f"--resume, replace it with --overwrite-output-dir, or choose another --output-dir")
    if not had_run and not any((path / m).exists() for m in RUN_MARKERS):
        raise RunDirectoryError(
            f"--overwrite-output-dir: {path} does not hold a tinybert run (it holds {shown}), so "
            f"its files are not deleted; choose another --output-dir")
    for name in entries:
        target = path / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()
    return entries


def _remove_temp_files(path: Path) -> list[str]:
    """Delete the temp files of writes that a killed process never finished."""
    removed = []
    for root, dirs, files in os.walk(path):           # does not follow symlinked directories
        for name in files:
            if _TEMP_RE.match(name):
                target = Path(root, name)
                target.unlink()
                removed.append(str(target.relative_to(path)))
    return sorted(removed)


# ----------------------------------------------------------------------------- the lock

def _describe(record: dict[str, Any]) -> str:
    started = record.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) \
        if isinstance(started, (int, float)) else "an unknown time"
    return (f"pid {record.get('pid', '?')} on {record.get('host', '?')}, started {when}"
            f"{', ' + repr(record['command']) if record.get('command') else ''}")


def _read_record(f: IO[str]) -> dict[str, Any] | None:
    f.seek(0)
    try:
        record = json.loads(f.read() or "null")
    except ValueError:                                 # torn by a crash mid-write: no record
        return None
    return record if isinstance(record, dict) else None


def _write_record(f: IO[str], record: dict[str, Any]) -> None:
    f.seek(0)
    f.truncate()
    f.write(json.dumps(record) + "\n")
    f.flush()
    os.fsync(f.fileno())


def _try_lock(f: IO[str]) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:  # pragma: no cover - Windows
            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise
    return True


def _command_line() -> str:
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300]


def _lock(path: Path) -> tuple[IO[str], dict[str, Any] | None]:
    """Take the directory's lock; returns the open lock file and the record the last run left
    in it (None if no run has held this directory).

    After flock succeeds, the file must still be the one at LOCK_NAME: a run that gave up
    removes a lock file it created, and a process that opened it just before then would
    otherwise hold a lock on a file nobody else can see.
    """
    for _ in range(100):
        f = open(path / LOCK_NAME, "a+", encoding="utf-8")   # the file persists between runs
        try:
            if not _try_lock(f):
                record = _read_record(f)
                who = _describe(record) if record else "another process"
                raise RunDirectoryBusy(f"output directory {path} is in use by another run "
                                       f"({who}); wait for it to finish or choose another "
                                       f"--output-dir")
            try:
                same = os.stat(path / LOCK_NAME).st_ino == os.fstat(f.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return f, _read_record(f)
        except BaseException:
            f.close()
            raise
        f.close()
    raise RunDirectoryBusy(f"output directory {path}: could not take its lock file "
                           f"{LOCK_NAME}")  # pragma: no cover - 100 lost races


def _unlock(f: IO[str]) -> None:
    """Mark the run as exited cleanly, then release the lock (closing the file does)."""
    try:
        record = _read_record(f) or {}
        _write_record(f, {**record, "state": "exited", "ended": time.time()})
    except OSError:                     # a full or read-only disk: the lock still goes away
        pass
    finally:
        f.close()


@contextmanager
def open_job_directory(path: str | os.PathLike, data_parallel: Any = None,
                       **kwargs: Any) -> Iterator[RunDirectory]:
    """`open_run_directory` for a job of one or more processes (`data_parallel`, an
    autograd.distributed.DataParallel, or None for one process): rank 0 alone takes the lock
    and applies the rules, the other ranks wait until it has, then get the directory without
    its lock (they write nothing there). A rule that fails raises on rank 0; the command line
    then ends the whole job."""
    if data_parallel is None:
        with open_run_directory(path, **kwargs) as run_dir:
            yield run_dir
    elif data_parallel.is_main:
        with open_run_directory(path, **kwargs) as run_dir:
            data_parallel.barrier()
            yield run_dir
    else:
        data_parallel.barrier()
        yield RunDirectory(Path(path), None, [])


def describe_previous(run_dir: RunDirectory) -> str | None:
    """A sentence about a previous run that did not exit cleanly, for the CLI to print."""
    if run_dir.previous is None:
        return None
    return (f"the previous run in {run_dir.path} ({_describe(run_dir.previous)}) did not exit "
            f"cleanly")


__all__ = ["LOCK_NAME", "RunDirectory", "RunDirectoryBusy", "RunDirectoryError",
           "describe_previous", "open_job_directory", "open_run_directory"]
