"""Files, safely: the one atomic writer, and readers that refuse anything but a regular file.

Writing: every file tinybert writes (checkpoints, configs, vocabularies, token caches,
embeddings) goes through `atomic_open`: a temp file in the target's directory, flushed, fsynced
and `os.replace`d over the target, so a crash or an exception never leaves a half-written file
under the real name. The new file gets the mode any new file gets under the umask (0644 with the
usual 022), not mkstemp's 0600. An OSError (read-only or full disk) names the target, never the
temp file.

Reading: `open_regular` opens without blocking and refuses whatever is not a regular file (a
directory, a FIFO that would block forever, /dev/zero that never ends), so no loader hangs.
`read_text` decodes strict UTF-8 and `load_json` parses strict JSON (no duplicate keys, no
NaN/Infinity, no nesting deep enough to exhaust the stack). Every problem with a file's content
raises `CheckpointError`, a ValueError whose message names the file and the problem.
"""
from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any, Union

PathLike = Union[str, "os.PathLike[str]"]


class CheckpointError(ValueError):
    """A file that cannot be read: truncated, corrupt, not a regular file, or not what its
    header says. Every loader (weights, checkpoints, configs, vocabularies) raises it."""


# ----------------------------------------------------------------------------- reading

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def open_regular(path: PathLike, what: str = "file") -> IO[bytes]:
    """Open `path` for binary reading if it is a regular file (symlinks to one are fine).

    The open itself cannot block (O_NONBLOCK: a FIFO with no writer would wait forever); the
    file type is then checked on the open descriptor. A missing file raises
    FileNotFoundError naming it; anything else that is wrong raises CheckpointError.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    except OSError as e:
        raise CheckpointError(f"{what} {path}: cannot open it: {e.strerror}") from e
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
            raise CheckpointError(f"{what} {path} is {kind}, not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_text(path: PathLike, what: str = "file") -> str:
    """A regular file's content as strict UTF-8 (a leading BOM dropped); a decoding error
    names the file, the line and the byte."""
    with open_regular(path, what) as f:
        data = f.read()
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise CheckpointError(f"{what} {path} is not UTF-8 text: {e.reason} at line {line} "
                              f"(byte {e.start})") from None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        keys = [k for k, _ in pairs]
        raise ValueError(f"duplicate key {next(k for k in keys if keys.count(k) > 1)!r}")
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(text: str, where: str) -> Any:
    """Strict JSON: duplicate keys, NaN/Infinity and deep nesting are CheckpointErrors that
    start with `where` (the file, or the file and the entry)."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
    except RecursionError:
        raise CheckpointError(f"{where}: invalid JSON: nested too deeply") from None
    except ValueError as e:                  # JSONDecodeError, duplicates, NaN / Infinity
        raise CheckpointError(f"{where}: invalid JSON: {e}") from None


def load_json(path: PathLike, what: str = "JSON file") -> Any:
    """The strict JSON content of a regular UTF-8 file (see `parse_json`)."""
    return parse_json(read_text(path, what), f"{what} {path}")


# ----------------------------------------------------------------------------- atomic writes

@contextmanager
def atomic_open(path: PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temp file next to `path`; on a clean exit, fsync it and rename it onto `path`.

    If the body raises, the temp file is removed and an existing `path` is left untouched.
    The parent directory must exist (FileNotFoundError naming it otherwise).
    `mode` is "wb" (binary) or "w" (UTF-8 text).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open: mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    parent = path.parent
    if not parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: directory {parent} does not exist")
    # Our own O_EXCL create instead of mkstemp: mkstemp makes the file 0600, whereas mode 0666
    # lets the umask give the checkpoint the same permissions any other new file would get.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
        except OSError as e:               # read-only directory, no permission, disk full
            raise _naming(e, path) from None
    else:  # pragma: no cover - 100 collisions of a 64-bit random name
        raise FileExistsError(f"atomic_open: could not create a temp file in {parent}")
    try:
        text = {"encoding": "utf-8", "newline": "\n"} if mode == "w" else {}
        with os.fdopen(fd, mode, **text) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise _naming(e, path) from e
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_directory(parent)


def _naming(e: OSError, path: Path) -> OSError:
    """The same kind of OSError, about `path` (the file the user asked for), not a temp file."""
    if e.errno is None:
        return e
    return type(e)(e.errno, f"cannot write {path}: {e.strerror}")


def _fsync_directory(directory: Path) -> None:
    """Persist the rename itself (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: PathLike, write_fn: Callable[[IO[bytes]], Any]) -> None:
    """Call `write_fn(f)` on a binary temp file, then move it onto `path` (see `atomic_open`)."""
    with atomic_open(path, "wb") as f:
        write_fn(f)


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write `text` as UTF-8 with "\n" line ends to `path` (see `atomic_open`)."""
    with atomic_open(path, "w") as f:
        f.write(text)


__all__ = ["CheckpointError", "atomic_open", "atomic_write", "atomic_write_text", "load_json",
           "open_regular", "parse_json", "read_text"]
