"""Resumable, pausable, cancellable downloads of hub files, checked against the hub's
SHA-256 before the file gets its final name.

Plain HTTP range requests on huggingface_hub's own httpx client, not hf_hub_download: that
one checks only the size, cannot be paused or cancelled from another thread, and on x86_64
may go through hf-xet, a second transport to test. Here the bytes go to NAME.part, with
NAME.part.json beside it saying what it is (URL pinned to a commit, size, SHA-256), so a
download paused, dropped or interrupted by quitting the app goes on from where it stopped,
also after a restart. The hash covers every byte: a resumed part is hashed from disk first.
"""

from __future__ import annotations

import errno
import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

# huggingface_hub's HTTP module (httpx in 1.x, httpx2 from 2.0): see core/hub/search.py
from huggingface_hub.utils import httpx

from kobold_gui.core.hub.download_types import (
    Control,
    DownloadError,
    DownloadStopped,
    FileSpec,
    Meter,
    Progress,
)
from kobold_gui.core.paths import write_json_atomic
from kobold_gui.core.units import human_bytes

__all__ = [
    "Control",
    "DownloadError",
    "DownloadStopped",
    "FileSpec",
    "Progress",
    "discard",
    "download_files",
    "pending_downloads",
    "sha256_of",
]

CHUNK = 1 << 20  # reading a part from disk
MAX_RETRIES = 6  # in a row without progress
MAX_REQUESTS = 500  # per file, whatever happens (a server that drops every few bytes)
RETRY_PAUSE_S = 0.5
DISK_RESERVE = 1 << 20


def pending_downloads(folder: Path) -> list[tuple[FileSpec, int]]:
    """Unfinished downloads in a models folder (their .part.json, in the folder or in its
    OWNER/REPOSITORY/ subfolders), with the bytes already there."""
    found: list[tuple[FileSpec, int]] = []
    if not folder.is_dir():
        return found
    metas = sorted([*folder.glob("*.part.json"), *folder.glob("*/*/*.part.json")])
    for meta in metas:
        try:
            spec = FileSpec(**json.loads(meta.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            continue  # not ours, or damaged: left alone
        part = spec.part
        found.append((spec, part.stat().st_size if part.exists() else 0))
    return found


def download_files(
    specs: Sequence[FileSpec],
    client: httpx.Client,
    headers: dict[str, str],
    control: Control,
    report: Callable[[Progress], None] = lambda p: None,
) -> list[Path]:
    """Fetch every file (the parts of a split model in order); returns their paths.

    Raises DownloadStopped when paused or cancelled, DownloadError when it cannot go on.
    Disk space for all of them is checked before the first byte."""
    total = sum(s.size for s in specs)
    _check_space(specs)
    paths, base = [], 0
    try:
        for i, spec in enumerate(specs):
            meter = Meter(report, total, base)
            paths.append(_download_one(spec, client, headers, control, meter, i, len(specs)))
            base += spec.size
    except DownloadStopped as e:
        if e.cancelled:
            discard(specs)
        raise
    return paths


def discard(specs: Sequence[FileSpec]) -> None:
    """Delete what a cancelled download left (parts and their notes, not finished files)."""
    for s in specs:
        s.part.unlink(missing_ok=True)
        s.meta.unlink(missing_ok=True)


def _check_space(specs: Sequence[FileSpec]) -> None:
    by_folder: dict[Path, int] = {}
    for s in specs:
        have = s.part.stat().st_size if s.part.exists() else 0
        if s.path.exists():
            have = s.size
        folder = s.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        by_folder[folder] = by_folder.get(folder, 0) + max(0, s.size - have)
    for folder, need in by_folder.items():
        free = shutil.disk_usage(folder).free
        if need + DISK_RESERVE > free:
            raise DownloadError(
                f"not enough disk space in {folder}: the download needs {human_bytes(need)} "
                f"more and {human_bytes(free)} is free. Free some space or choose another folder."
            )


def sha256_of(
    path: Path, control: Control | None = None, on_bytes: Callable[[int], None] | None = None
) -> str:
    h = hashlib.sha256()
    _hash_into(h, path, control, on_bytes)
    return h.hexdigest()


def _hash_into(
    hasher: Any,
    path: Path,
    control: Control | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> None:
    """Feed the file to `hasher`; `on_bytes` gets the count so far, `control` may pause or
    cancel between reads."""
    done = 0
    with path.open("rb") as f:
        while chunk := f.read(8 * CHUNK):
            hasher.update(chunk)
            done += len(chunk)
            if on_bytes:
                on_bytes(done)
            if control:
                control.check()


def _download_one(
    spec: FileSpec,
    client: httpx.Client,
    headers: dict[str, str],
    control: Control,
    meter: Meter,
    index: int,
    count: int,
) -> Path:
    dest = spec.path
    if dest.exists():
        if dest.stat().st_size == spec.size and (
            spec.sha256 is None or sha256_of(dest, control) == spec.sha256
        ):
            return dest  # already here and intact
        raise DownloadError(f"{dest} already exists and is a different file: move it first")
    write_json_atomic(spec.meta, asdict(spec))
    hasher, done = _hash_part(spec, control, meter, index, count)
    hasher, done = _fetch_rest(spec, client, headers, control, meter, index, count, hasher, done)
    _keep_if_intact(spec, hasher, done, meter, index, count)
    return dest


def _hash_part(
    spec: FileSpec, control: Control, meter: Meter, index: int, count: int
) -> tuple[Any, int]:
    """The hash of the bytes a part already has, and how many (a part longer than the file
    is deleted)."""
    part = spec.part
    hasher = hashlib.sha256()
    done = part.stat().st_size if part.exists() else 0
    if done > spec.size:
        part.unlink()
        done = 0
    if done:  # resuming: the hash must cover the bytes already there
        _hash_into(hasher, part, control, lambda n: meter.update(n, "checking", index, count))
    return hasher, done


def _fetch_rest(
    spec: FileSpec,
    client: httpx.Client,
    headers: dict[str, str],
    control: Control,
    meter: Meter,
    index: int,
    count: int,
    hasher: Any,
    done: int,
) -> tuple[Any, int]:
    """Range requests until the part has every byte, retrying what is transient; returns
    the hash and the byte count (a new hash when the server made it start over)."""
    dest, part = spec.path, spec.part
    failures, last_error, requests = 0, "", 0
    while done < spec.size:
        control.check()
        requests += 1
        if requests > MAX_REQUESTS:
            raise DownloadError(
                f"the server keeps cutting {dest.name} short ({last_error or 'no reason'}); "
                "what arrived is kept: press Resume to try again later"
            )
        try:
            got = _fetch_range(
                spec, client, headers, control, part, done, hasher, meter, index, count
            )
        except (httpx.TransportError, _Retry) as e:
            before, done = done, part.stat().st_size if part.exists() else 0
            failures = 0 if done > before else failures + 1  # only drops that brought nothing
            last_error = str(e) or type(e).__name__
            if failures > MAX_RETRIES:
                raise DownloadError(
                    f"the download of {dest.name} keeps failing ({last_error}); what arrived "
                    "is kept: press Resume to try again"
                ) from None
            control.wait(RETRY_PAUSE_S * failures)
            continue
        if got < 0:  # the server ignored the range and sent the file from its start
            hasher, done = hashlib.sha256(), 0
            part.unlink(missing_ok=True)
            continue
        if got:
            failures = 0
        done += got
    return hasher, done


def _keep_if_intact(
    spec: FileSpec, hasher: Any, done: int, meter: Meter, index: int, count: int
) -> None:
    """Give the finished part its name if its SHA-256 is the hub's; else delete it."""
    dest, part = spec.path, spec.part
    meter.update(done, "verifying", index, count, force=True)
    digest = hasher.hexdigest()
    if spec.sha256 is not None and digest != spec.sha256.lower():
        part.unlink(missing_ok=True)
        spec.meta.unlink(missing_ok=True)
        raise DownloadError(
            f"{dest.name} arrived damaged: its SHA-256 is {digest[:16]}…, the hub says "
            f"{spec.sha256[:16]}…. It was deleted; download it again."
        )
    part.replace(dest)
    spec.meta.unlink(missing_ok=True)
    meter.update(done, "done", index, count, force=True)


class _Retry(Exception):
    """A transient answer (5xx, a range the server could not serve right now)."""


def _fetch_range(
    spec: FileSpec,
    client: httpx.Client,
    headers: dict[str, str],
    control: Control,
    part: Path,
    start: int,
    hasher: Any,
    meter: Meter,
    index: int,
    count: int,
) -> int:
    """Append bytes from `start` to the part; returns how many (-1: start over at 0)."""
    name = spec.path.name
    request_headers = {**headers, "Range": f"bytes={start}-"}
    with client.stream("GET", spec.url, headers=request_headers) as r:
        if r.status_code in (401, 403):
            raise DownloadError(
                f"the hub refused {name} ({r.status_code}): it needs an access token that has "
                "access to this repository (and its terms accepted on its page)"
            )
        if r.status_code == 404:
            raise DownloadError(f"{name} is no longer on the hub at this revision (404)")
        if r.status_code == 416:
            raise DownloadError(
                f"the hub has only {human_bytes(start)} or less of {name}, which should have "
                f"{human_bytes(spec.size)}: the download is incomplete; try again later"
            )
        if r.status_code >= 500:
            raise _Retry(f"the server answered {r.status_code}")
        if r.status_code == 200 and start > 0:
            return -1
        if r.status_code not in (200, 206):
            raise DownloadError(f"the hub answered {r.status_code} for {name}")
        got = 0
        try:
            with part.open("ab") as out:
                for chunk in r.iter_bytes():  # as it arrives: a drop loses nothing
                    if start + got + len(chunk) > spec.size:
                        raise _too_long(name, spec.size)
                    out.write(chunk)
                    hasher.update(chunk)
                    got += len(chunk)
                    meter.update(start + got, "downloading", index, count)
                    if control.stopping:
                        break
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise DownloadError(
                    f"the disk is full ({part.parent}): {human_bytes(start + got)} of "
                    f"{name} are kept. Free some space, then press Resume."
                ) from None
            raise DownloadError(f"cannot write {part}: {e.strerror or e}") from None
        if got == 0 and not control.stopping:
            raise _Retry("the server sent nothing")
        return got


def _too_long(name: str, size: int) -> DownloadError:
    return DownloadError(
        f"the hub sent more than the {human_bytes(size)} listed for {name}: stopped"
    )
