"""Real small and read-only file systems for the chat store's tests (no mock of the disk).

- small_disk: a tmpfs of a few MiB mounted on a folder (needs root and mount rights, as in
  the dev container); where mounting is not allowed, None (the test then uses SQLite's own
  limit, PRAGMA max_page_count, which makes SQLite fail with SQLITE_FULL for real).
- read_only_folder: a folder made read-only in a way root cannot write through either (root
  ignores permission bits): a read-only bind mount of it on itself, else `chattr +i`; None
  where neither is allowed (the test skips)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _run(*args: str) -> bool:
    try:
        done = subprocess.run(args, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@contextmanager
def small_disk(folder: Path, size: str = "2m") -> Iterator[Path | None]:
    folder.mkdir(parents=True, exist_ok=True)
    if not _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)):
        yield None
        return
    try:
        yield folder
    finally:
        _run("umount", "-l", str(folder))


def fill(folder: Path) -> Path:
    """Takes every free byte of the folder's file system; returns the file to delete."""
    filler = folder / "filler"
    st = os.statvfs(folder)
    with open(filler, "wb") as f, contextlib.suppress(OSError):  # full: as meant
        f.write(b"\0" * (st.f_bavail * st.f_frsize))
    return filler


@contextmanager
def read_only_folder(folder: Path) -> Iterator[str | None]:
    """Yields how the folder was made read-only ("bind" or "chattr"), or None."""
    folder.mkdir(parents=True, exist_ok=True)
    if _run("mount", "--bind", str(folder), str(folder)):
        if _run("mount", "-o", "remount,ro,bind", str(folder)):
            try:
                yield "bind"
            finally:
                _run("umount", "-l", str(folder))
            return
        _run("umount", "-l", str(folder))
    if _run("chattr", "+i", str(folder)):
        try:
            yield "chattr"
        finally:
            _run("chattr", "-i", str(folder))
        return
    yield None
