"""Search and file lists through the real huggingface_hub against the FAKE hub on
127.0.0.1 (tests/fakes/hub.py): the hub's URL layout and JSON, no internet."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kobold_gui.core.hub.net import NetLimits
from kobold_gui.core.hub.remote_gguf import remote_info
from kobold_gui.core.hub.search import Hub, HubError
from tests.fakes.hub import FakeFile, FakeHub, FakeRepo


@pytest.fixture
def fake_hub(default_model: Path, split_model: Path) -> Iterator[FakeHub]:
    smol = FakeFile(default_model)
    parts = {p.name: FakeFile(p) for p in sorted(split_model.parent.glob("tiny-split-*.gguf"))}
    repos = [
        FakeRepo(
            "bartowski/SmolLM2-135M-Instruct-GGUF",
            {"SmolLM2-135M-Instruct-Q4_1.gguf": smol},
            downloads=900,
            likes=12,
        ),
        FakeRepo("someone/tiny-split-GGUF", parts, downloads=5000, likes=3),
        FakeRepo(
            "someone/half-a-split-GGUF",
            dict(list(parts.items())[:2]) | {"mmproj-f16.gguf": smol},
            downloads=1,
        ),
        FakeRepo("corp/Gated-GGUF", {"gated-Q4_1.gguf": smol}, downloads=50, gated=True),
        FakeRepo("corp/not-a-gguf-repo", {"model.safetensors": smol}, downloads=10**6),
    ]
    with FakeHub(repos, token="hf_secret") as hub:
        yield hub


def test_search_lists_gguf_repositories_most_downloaded_first(fake_hub: FakeHub) -> None:
    found = Hub(fake_hub.endpoint).search("GGUF")
    assert [r.repo_id for r in found][:3] == [
        "someone/tiny-split-GGUF",
        "bartowski/SmolLM2-135M-Instruct-GGUF",
        "corp/Gated-GGUF",
    ]
    smol = found[1]
    assert (smol.downloads, smol.likes) == (900, 12)
    assert smol.updated is not None and smol.updated.year == 2026
    assert next(r for r in found if r.repo_id == "corp/Gated-GGUF").gated
    assert [r.repo_id for r in Hub(fake_hub.endpoint).search("smollm")] == [
        "bartowski/SmolLM2-135M-Instruct-GGUF"
    ]


def test_files_of_a_split_model_are_one_entry_in_order(
    fake_hub: FakeHub, split_model: Path
) -> None:
    repo = Hub(fake_hub.endpoint).list_files("someone/tiny-split-GGUF")
    assert len(repo.revision) == 40
    (entry,) = repo.entries
    assert entry.label == "tiny-split-Q8_0 (3 parts)"
    assert [f.name for f in entry.files] == [
        f"tiny-split-Q8_0-0000{i}-of-00003.gguf" for i in (1, 2, 3)
    ]
    assert entry.size == sum(p.stat().st_size for p in split_model.parent.glob("tiny-split-*"))
    assert entry.quant == "Q8_0"
    assert all(f.sha256 and len(f.sha256) == 64 for f in entry.files)


def test_an_incomplete_split_is_left_out_and_a_projector_is_marked(fake_hub: FakeHub) -> None:
    repo = Hub(fake_hub.endpoint).list_files("someone/half-a-split-GGUF")
    assert [e.label for e in repo.entries] == ["mmproj-f16.gguf"]
    assert repo.entries[0].projector
    assert repo.notes == ("tiny-split-Q8_0: 2 of its 3 parts are listed, left out",)


def test_a_gated_file_needs_the_token(fake_hub: FakeHub) -> None:
    anonymous = Hub(fake_hub.endpoint)
    repo = anonymous.list_files("corp/Gated-GGUF")  # the listing is public, the bytes are not
    assert repo.gated
    with pytest.raises(HubError, match="access token"):
        remote_info(anonymous, repo, repo.entries[0])
    authorized = Hub(fake_hub.endpoint, token="hf_secret")
    info, _ = remote_info(authorized, repo, repo.entries[0])
    assert info.n_layers == 30


def test_unknown_repository_and_unreachable_hub_get_clear_messages(fake_hub: FakeHub) -> None:
    with pytest.raises(HubError, match="not found"):
        Hub(fake_hub.endpoint).list_files("nobody/nothing")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(HubError, match=r"cannot reach 127\.0\.0\.1"):
        Hub(closed).list_files("a/b")


def test_a_hub_that_never_answers_ends_in_a_message(fake_hub: FakeHub) -> None:
    """It accepts the connection and says nothing: each call ends at its read limit (short
    here) with a message, instead of waiting for ever."""
    fake_hub.stall = True
    hub = Hub(fake_hub.endpoint, limits=NetLimits(connect_s=1.0, read_s=0.5))
    with pytest.raises(HubError, match=r"127\.0\.0\.1:\d+ did not answer in time \(the search\)"):
        hub.search("smol")
    with pytest.raises(HubError, match="did not answer in time"):
        hub.list_files("someone/tiny-split-GGUF")
    assert [p for _m, p, _r in fake_hub.log].count("/api/models") == 1  # a read is not retried

    fake_hub.stall = False
    repo = hub.list_files("someone/tiny-split-GGUF")
    fake_hub.stall = True  # and now its header reads hang
    with pytest.raises(HubError, match="did not answer in time reading tiny-split"):
        remote_info(hub, repo, repo.entries[0])


def test_a_refused_connection_is_said_quickly() -> None:
    """With the app's own limits: a few quick retries, not the library's 24 s backoff."""
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    started = time.monotonic()
    with pytest.raises(HubError, match=r"cannot reach 127\.0\.0\.1"):
        Hub(closed).search("llama")
    assert time.monotonic() - started < 8.0
