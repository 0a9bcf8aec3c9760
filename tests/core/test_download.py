"""Downloads from the FAKE hub on 127.0.0.1 with the real httpx client: verified against
the hub's SHA-256, resumed after a dropped connection and after a restart, paused,
cancelled, and stopped cleanly by a full disk (a small tmpfs, when mounting is allowed)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kobold_gui.core.hub.download import (
    Control,
    DownloadError,
    DownloadStopped,
    FileSpec,
    Progress,
    download_files,
    pending_downloads,
)
from kobold_gui.core.hub.search import Hub
from tests.fakes.hub import FakeFile, FakeHub, FakeRepo

REPO = "me/dl-GGUF"
NAME = "model.gguf"


def _serve(source: Path, **faults: object) -> FakeHub:
    return FakeHub([FakeRepo(REPO, {NAME: FakeFile(source, **faults)})])  # type: ignore[arg-type]


def _specs(fake: FakeHub, folder: Path) -> tuple[Hub, list[FileSpec]]:
    hub = Hub(fake.endpoint)
    repo = hub.list_files(REPO)
    return hub, [
        FileSpec(hub.url(REPO, repo.revision, f.name), str(folder / f.name), f.size, f.sha256)
        for f in repo.entries[0].files
    ]


def _download(hub: Hub, specs: list[FileSpec], control: Control | None = None, report=None):  # type: ignore[no-untyped-def]
    return download_files(
        specs, hub.client(), hub.headers(), control or Control(), report or (lambda p: None)
    )


def test_a_download_arrives_whole_and_verified(tmp_path: Path, split_model: Path) -> None:
    seen: list[Progress] = []
    with _serve(split_model) as fake:
        hub, specs = _specs(fake, tmp_path)
        (path,) = _download(hub, specs, report=seen.append)
    assert path.read_bytes() == split_model.read_bytes()
    assert not list(tmp_path.glob("*.part*"))
    assert seen[-1].phase == "done" and seen[-1].done == seen[-1].total == len(path.read_bytes())
    assert [p.done for p in seen] == sorted(p.done for p in seen)


def test_a_corrupt_download_is_caught_and_not_kept(tmp_path: Path, split_model: Path) -> None:
    with _serve(split_model, corrupt=True) as fake:
        hub, specs = _specs(fake, tmp_path)
        with pytest.raises(DownloadError, match="arrived damaged: its SHA-256"):
            _download(hub, specs)
    assert list(tmp_path.iterdir()) == []


def test_a_truncated_file_on_the_server_is_not_offered(tmp_path: Path, split_model: Path) -> None:
    size = split_model.stat().st_size
    with _serve(split_model, truncate_to=size - 4096) as fake:
        hub, specs = _specs(fake, tmp_path)
        with pytest.raises(DownloadError, match="incomplete"):
            _download(hub, specs)
    assert not (tmp_path / NAME).exists()


def test_a_dropped_connection_resumes_where_it_stopped(tmp_path: Path, split_model: Path) -> None:
    with _serve(split_model, drop_after=3 << 20, drops=2) as fake:
        hub, specs = _specs(fake, tmp_path)
        (path,) = _download(hub, specs)
        ranges = fake.ranges(NAME)
    assert path.read_bytes() == split_model.read_bytes()
    assert ranges == ["bytes=0-", f"bytes={3 << 20}-", f"bytes={6 << 20}-"]


def test_a_download_dropped_every_800_kb_still_finishes(tmp_path: Path, split_model: Path) -> None:
    """Each drop made progress, so none of them counts against the download; every byte that
    arrived before a drop is kept (the next request starts exactly where the drop was)."""
    drop = 800_000
    with _serve(split_model, drop_after=drop, drops=10_000) as fake:
        hub, specs = _specs(fake, tmp_path)
        (path,) = _download(hub, specs)
        ranges = fake.ranges(NAME)
        sha = fake.repos[REPO].files[NAME].sha256
    assert path.read_bytes() == split_model.read_bytes()
    assert specs[0].sha256 == sha  # what the download checked before keeping the file
    size = split_model.stat().st_size
    assert len(ranges) > 7  # more drops than the retries allowed in a row without progress
    assert ranges == [f"bytes={start}-" for start in range(0, size, drop)]


def test_a_paused_download_resumes_after_a_restart(tmp_path: Path, split_model: Path) -> None:
    control = Control()

    def pause_after_2mib(p: Progress) -> None:
        if p.done >= 2 << 20:
            control.pause()

    with _serve(split_model, throttle_bps=8 << 20) as fake:
        hub, specs = _specs(fake, tmp_path)
        with pytest.raises(DownloadStopped) as stopped:
            _download(hub, specs, control, pause_after_2mib)
        assert not stopped.value.cancelled
        # The app quits here. After a restart, the .part.json says what to fetch.
        ((spec, have),) = pending_downloads(tmp_path)
        assert spec == specs[0] and 2 << 20 <= have < spec.size
        seen: list[Progress] = []
        (path,) = _download(Hub(fake.endpoint), [spec], Control(), seen.append)
        ranges = fake.ranges(NAME)
    assert path.read_bytes() == split_model.read_bytes()
    assert ranges[-1] == f"bytes={have}-"  # not from the start again
    assert seen[0].phase == "checking"  # the part on disk is hashed before going on
    assert pending_downloads(tmp_path) == []


def test_cancel_deletes_the_part(tmp_path: Path, split_model: Path) -> None:
    control = Control()
    with _serve(split_model, throttle_bps=8 << 20) as fake:
        hub, specs = _specs(fake, tmp_path)
        with pytest.raises(DownloadStopped) as stopped:
            _download(hub, specs, control, lambda p: control.cancel())
    assert stopped.value.cancelled
    assert list(tmp_path.iterdir()) == []


def test_a_different_file_with_the_same_name_is_not_overwritten(
    tmp_path: Path, split_model: Path
) -> None:
    (tmp_path / NAME).write_bytes(b"mine")
    with _serve(split_model) as fake:
        hub, specs = _specs(fake, tmp_path)
        with pytest.raises(DownloadError, match="already exists"):
            _download(hub, specs)
    assert (tmp_path / NAME).read_bytes() == b"mine"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 20 MiB tmpfs: a real full disk. Skipped where mounting is not allowed."""
    folder = tmp_path / "small"
    folder.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_not_enough_space_is_said_before_starting(small_disk: Path, default_model: Path) -> None:
    with _serve(default_model) as fake:  # 94 MiB into 20 MiB
        hub, specs = _specs(fake, small_disk)
        with pytest.raises(DownloadError, match="not enough disk space"):
            _download(hub, specs)
        assert fake.ranges(NAME) == []  # not a byte was asked for
    assert list(small_disk.iterdir()) == []


def test_a_disk_that_fills_up_keeps_the_part_for_later(small_disk: Path, tiny_model: Path) -> None:
    filler = small_disk / "someone-else.bin"

    def fill_the_disk(p: Progress) -> None:
        if p.done and not filler.exists():
            free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
            with filler.open("wb") as f, pytest.raises(OSError):
                f.write(b"\0" * (free + 4096))

    with _serve(tiny_model) as fake:
        hub, specs = _specs(fake, small_disk)
        with pytest.raises(DownloadError, match="the disk is full"):
            _download(hub, specs, report=fill_the_disk)
        assert specs[0].part.exists() and specs[0].meta.exists()
        filler.unlink()
        (path,) = _download(hub, specs)
    assert path.read_bytes() == tiny_model.read_bytes()
