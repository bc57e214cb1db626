"""The atomic writer of autograd/serialization.py (atomic_open / atomic_write): a failed or
interrupted write keeps the old file and leaves no temp file; the umask decides the mode."""
from __future__ import annotations

import os

import numpy as np
import pytest
from numpy.lib import format as npy_format

from autograd.serialization import (
    atomic_open,
    atomic_write,
    save_npz,
    save_safetensors,
)


# ----------------------------------------------------------------------------- atomicity

def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "ckpt.bin"
    path.write_bytes(b"old contents")

    def explode(f):
        f.write(b"half a new checkpoint")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(path, explode)
    assert path.read_bytes() == b"old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.bin"]

    # BaseException too: Ctrl-C mid-save
    with pytest.raises(KeyboardInterrupt), atomic_open(path) as f:
        f.write(b"partial")
        raise KeyboardInterrupt
    assert path.read_bytes() == b"old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.bin"]


def test_failed_save_keeps_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    save_safetensors(path, {"a": np.ones(2)})
    before = path.read_bytes()

    def broken_write_array(*args, **kwargs):
        raise OSError("no space left on device")

    npz = tmp_path / "model.npz"
    save_npz(npz, {"a": np.ones(2)})
    npz_before = npz.read_bytes()
    monkeypatch.setattr(npy_format, "write_array", broken_write_array)
    with pytest.raises(OSError, match="no space left"):
        save_npz(npz, {"a": np.zeros(2)})
    assert npz.read_bytes() == npz_before and path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz", "model.safetensors"]


def test_successful_write_replaces_target(tmp_path):
    path = tmp_path / "note.txt"
    path.write_text("old")
    with atomic_open(path, "w") as f:
        f.write("new é")
    assert path.read_text(encoding="utf-8") == "new é"
    atomic_write(path, lambda f: f.write(b"bytes"))
    assert path.read_bytes() == b"bytes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["note.txt"]


def test_new_file_permissions_follow_umask(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "p.bin", lambda f: f.write(b"x"))
    finally:
        os.umask(old)
    if os.name == "posix":
        assert (tmp_path / "p.bin").stat().st_mode & 0o777 == 0o640


def test_missing_directory_is_named(tmp_path):
    target = tmp_path / "no" / "such" / "dir" / "x.npz"
    with pytest.raises(FileNotFoundError, match=r"directory .*no/such/dir does not exist"):
        save_npz(target, {"a": np.ones(1)})
    with pytest.raises(FileNotFoundError, match=r"no/such/dir"):
        save_safetensors(target.with_suffix(".safetensors"), {"a": np.ones(1)})
    assert list(tmp_path.iterdir()) == []


def test_atomic_open_rejects_other_modes(tmp_path):
    with pytest.raises(ValueError, match=r"atomic_open: mode must be 'wb' or 'w', got 'ab'"), \
            atomic_open(tmp_path / "x", "ab"):
        pass


# ----------------------------------------------------------------------------- errors name the file

def test_a_full_or_read_only_disk_names_the_target_and_keeps_the_old_file(tmp_path, monkeypatch):
    import errno

    from autograd import files
    path = tmp_path / "vocab.txt"
    path.write_text("old\n")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    with pytest.raises(OSError) as info:
        files.atomic_write_text(path, "new\n")
    assert str(info.value) == f"[Errno 28] cannot write {path}: No space left on device"
    assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["vocab.txt"]
    monkeypatch.undo()

    real_open = os.open

    def read_only(p, flags, mode=0o777):
        if flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied", str(p))
        return real_open(p, flags, mode)

    monkeypatch.setattr(files.os, "open", read_only)
    with pytest.raises(PermissionError) as info:
        files.atomic_write_text(path, "new\n")
    assert str(info.value) == f"[Errno 13] cannot write {path}: Permission denied"
    assert ".tmp" not in str(info.value) and path.read_text() == "old\n"


def test_a_missing_directory_is_named(tmp_path):
    from autograd.files import atomic_write_text
    with pytest.raises(FileNotFoundError, match=f"cannot write {tmp_path}/no/x.txt: directory "
                                                f"{tmp_path}/no does not exist"):
        atomic_write_text(tmp_path / "no" / "x.txt", "x")
