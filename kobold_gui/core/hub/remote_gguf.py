"""A GGUF model's description from its header, read over HTTP with range requests: the
first megabyte, then up to where the parser expects the header to end (extrapolated from
the part of the vocabulary it has seen), until the tensor table is complete (the
vocabulary sits before it: 1 to 10 MB for today's models). Split models are read from
every part, since each part has its own tensor table."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

# huggingface_hub's HTTP module (httpx in 1.x, httpx2 from 2.0): see core/hub/search.py
from huggingface_hub.utils import httpx

from kobold_gui.core.hub.net import NetLimits, with_retries
from kobold_gui.core.hub.search import Hub, HubError, ModelEntry, RepoFiles
from kobold_gui.core.models.gguf_header import (
    GGUFHeader,
    HeaderError,
    HeaderTruncated,
    parse_header,
)
from kobold_gui.core.models.gguf_info import (
    GGUF_MAGIC,
    GGUFInfo,
    ModelFileError,
    ShardHeader,
    info_from_headers,
)

FIRST_READ = 1 << 20
DEFAULT_LIMITS = NetLimits()
MAX_HEADER = 256 << 20  # no real header comes near this; a bound against a runaway loop


@dataclass(frozen=True)
class FetchStats:
    bytes_read: int = 0
    requests: int = 0
    seconds: float = 0.0

    def __add__(self, other: FetchStats) -> FetchStats:
        return FetchStats(
            self.bytes_read + other.bytes_read,
            self.requests + other.requests,
            self.seconds + other.seconds,
        )


def _read_range(
    client: httpx.Client,
    url: str,
    headers: dict[str, str],
    start: int,
    end: int,
    limits: NetLimits,
) -> bytes:
    """Bytes [start, end) of the file. A server that ignores Range answers 200 with the
    whole file: only what is needed is read from that stream, then it is closed."""
    want = end - start
    request_headers = {**headers, "Range": f"bytes={start}-{end - 1}"}
    timeout = limits.timeout()
    with client.stream("GET", url, headers=request_headers, timeout=timeout) as r:
        if r.status_code in (401, 403):
            raise HubError(
                f"the hub refused to read {url.rsplit('/', 1)[-1]} ({r.status_code}): "
                "the repository needs an access token with access to it"
            )
        if r.status_code == 404:
            raise HubError(f"{url.rsplit('/', 1)[-1]} is no longer on the hub (404)")
        if r.status_code not in (200, 206):
            raise HubError(f"the hub answered {r.status_code} reading {url}")
        skip = start if r.status_code == 200 else 0
        out = bytearray()
        for chunk in r.iter_bytes(256 << 10):
            if skip:
                cut = min(skip, len(chunk))
                chunk, skip = chunk[cut:], skip - cut
            out += chunk
            if len(out) >= want:
                break
        return bytes(out[:want])


def _next_read(have: int, need: int) -> int:
    """How far to read next: the parser's estimate of the header's end with a margin (it is
    extrapolated from a vocabulary read part way), and at least half again what is here, so
    a low estimate costs a few requests, never dozens."""
    return max(need + need // 16 + (64 << 10), have + have // 2)


def fetch_header(
    client: httpx.Client,
    url: str,
    headers: dict[str, str],
    file_size: int,
    name: str,
    first_read: int = FIRST_READ,
    limits: NetLimits = DEFAULT_LIMITS,
) -> tuple[GGUFHeader, FetchStats]:
    """The file's parsed header, read in growing steps until it parses completely."""
    t0 = time.perf_counter()
    buf = b""
    requests = 0
    want = min(first_read, file_size)
    while True:
        try:
            read = partial(_read_range, client, url, headers, len(buf), want, limits)
            buf += with_retries(limits, read)
        except httpx.TimeoutException:
            raise HubError(f"the hub did not answer in time reading {name}; try again") from None
        except httpx.HTTPError as e:
            raise HubError(f"reading the header of {name} failed: {e}") from None
        requests += 1
        if buf[:4] != GGUF_MAGIC:
            raise ModelFileError(f"{name} on the hub is not a GGUF file (it starts {buf[:4]!r})")
        try:
            header = parse_header(buf, Path(name), file_size, keep=True)
        except HeaderTruncated as e:
            if len(buf) >= file_size or want >= MAX_HEADER:
                raise ModelFileError(f"{name}: its header never ends (corrupt file)") from None
            if len(buf) < want:  # the server sent less than asked: the file is shorter
                raise ModelFileError(f"{name} on the hub is shorter than its listed size") from None
            want = min(_next_read(len(buf), e.need), file_size, MAX_HEADER)
            continue
        except HeaderError as e:
            raise ModelFileError(f"{name} on the hub is not a readable GGUF file: {e}") from None
        return header, FetchStats(len(buf), requests, time.perf_counter() - t0)


def remote_info(hub: Hub, repo: RepoFiles, entry: ModelEntry) -> tuple[GGUFInfo, FetchStats]:
    """The entry's GGUFInfo from the headers of all its files, as read_gguf would give for
    the same files on disk (the path is the repository's, for display only)."""
    shards = []
    stats = FetchStats()
    client, headers = hub.client(), hub.headers()
    for f in entry.files:
        url = hub.url(repo.repo_id, repo.revision, f.name)
        header, s = fetch_header(client, url, headers, f.size, f.name, limits=hub.limits)
        shards.append(ShardHeader(header, f.size, f.name.rsplit("/", 1)[-1]))
        stats += s
    info = info_from_headers(shards, Path(repo.repo_id) / entry.files[0].name)
    return info, stats
