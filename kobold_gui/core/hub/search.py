"""The Hugging Face Hub through huggingface_hub: search GGUF repositories, list a
repository's GGUF files (sizes, SHA-256 from the LFS metadata), and their download URLs.

The endpoint is part of every URL and passed to hf_hub_url explicitly (huggingface_hub
reads HF_ENDPOINT only once, at import), so tests and mirrors can point it elsewhere. The
API's JSON is fetched with limits of its own (core/hub/net.py: HfApi.list_models would wait
without end) and read by huggingface_hub's ModelInfo. Files are not downloaded with
hf_hub_download (it checks only the size and cannot pause): see core/hub/download.py.

The HTTP module is huggingface_hub's own, from huggingface_hub.utils (httpx in its 1.x,
httpx2 from 2.0): its client and the errors it raises come from that one, whichever release
is installed."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from huggingface_hub import ModelInfo, get_session, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import build_hf_headers, httpx

from kobold_gui import __version__
from kobold_gui.core.hub.net import NetLimits, get_json

DEFAULT_ENDPOINT = "https://huggingface.co"
TIMEOUT = NetLimits().timeout()  # the shared client's, for header reads and downloads
SEARCH_FIELDS = ["downloads", "likes", "lastModified", "gated", "private"]
_SPLIT = re.compile(r"^(?P<prefix>.*)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
# Quantization names as they appear in file names (Q4_K_M, IQ3_XXS, F16, BF16, Q8_0...).
_QUANT = re.compile(r"(?<![A-Za-z0-9])(I?Q\d+(?:_[A-Z0-9]+)*|BF16|F16|F32)(?![A-Za-z0-9])", re.I)


class HubError(Exception):
    """The hub could not answer as needed; the message says why, for the user."""


@dataclass(frozen=True)
class RepoSummary:
    repo_id: str
    downloads: int
    likes: int
    updated: datetime | None
    gated: bool
    private: bool


@dataclass(frozen=True)
class RemoteFile:
    name: str  # path in the repository
    size: int
    sha256: str | None  # from the LFS metadata (None for a file not stored in LFS)


@dataclass(frozen=True)
class ModelEntry:
    """One downloadable model: a GGUF file, or every part of a split one."""

    label: str
    files: tuple[RemoteFile, ...]
    projector: bool = False  # a vision projector (mmproj), not a model by itself

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def quant(self) -> str:
        m = _QUANT.search(self.files[0].name.rsplit("/", 1)[-1])
        return m.group(1).upper() if m else "—"


@dataclass(frozen=True)
class RepoFiles:
    repo_id: str
    revision: str  # the commit the listing (and the downloads) are pinned to
    entries: tuple[ModelEntry, ...]
    gated: bool = False
    notes: tuple[str, ...] = ()


def endpoint_from_env() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


@contextmanager
def _hub_errors(what: str, endpoint: str) -> Iterator[None]:
    """Turn huggingface_hub's and httpx's exceptions into a HubError a user can act on."""
    host = endpoint.split("://", 1)[-1]
    try:
        yield
    except GatedRepoError:
        raise HubError(
            f"{what} is gated: accept its terms on the model's page on {host}, then paste an "
            "access token (Settings → Access Tokens) in the token field"
        ) from None
    except RepositoryNotFoundError:
        raise HubError(
            f"{what} was not found on {host} (a private repository needs an access token)"
        ) from None
    except RevisionNotFoundError:
        raise HubError(f"{what}: that revision does not exist") from None
    except OfflineModeIsEnabled:
        raise HubError("HF_HUB_OFFLINE is set: the hub is not contacted") from None
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else "?"
        raise HubError(f"{host} answered {status} for {what}: {_first_line(e)}") from None
    except httpx.TimeoutException:
        raise HubError(f"{host} did not answer in time ({what}); try again") from None
    except httpx.HTTPError as e:
        raise HubError(f"cannot reach {host} ({_first_line(e)}): are you online?") from None
    except (ValueError, KeyError, TypeError) as e:
        raise HubError(f"{host} sent an answer this app cannot read ({what}): {e}") from None


def _model_info(data: dict[str, Any]) -> ModelInfo:
    """A repository's description as huggingface_hub reads the hub's JSON."""
    return ModelInfo(**data)  # type: ignore[no-untyped-call]


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


class Hub:
    """A session with one hub endpoint, with or without an access token."""

    def __init__(
        self, endpoint: str | None = None, token: str | None = None, limits: NetLimits | None = None
    ) -> None:
        self.endpoint = (endpoint or endpoint_from_env()).rstrip("/")
        # None is sent as token=False: never a token saved by other tools, behind the user's back.
        self.token = token or None
        self.limits = limits or NetLimits()  # for the API's calls (search, file lists)
        session = get_session()
        session.timeout = TIMEOUT  # huggingface_hub's shared client has none by default

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        url = f"{self.endpoint}/api/{path}"
        return get_json(get_session(), url, self.limits, self.headers(), params)

    def search(self, query: str, limit: int = 40) -> list[RepoSummary]:
        """GGUF repositories whose name contains `query`, most downloaded first."""
        params: dict[str, Any] = {"filter": ["gguf"], "sort": "downloads", "limit": limit}
        params |= {"expand": SEARCH_FIELDS} | ({"search": query.strip()} if query.strip() else {})
        with _hub_errors("the search", self.endpoint):
            found = self._get("models", params)
            models = [_model_info({"siblings": None, **item}) for item in found[:limit]]
            return [
                RepoSummary(
                    repo_id=m.id,
                    downloads=int(m.downloads or 0),
                    likes=int(m.likes or 0),
                    updated=m.last_modified,
                    gated=bool(m.gated),
                    private=bool(m.private),
                )
                for m in models
            ]

    def list_files(self, repo_id: str) -> RepoFiles:
        """The repository's GGUF models (split ones grouped), pinned to its current commit."""
        with _hub_errors(repo_id, self.endpoint):
            info = _model_info(self._get(f"models/{repo_id}", {"blobs": True}))
            files = [
                RemoteFile(
                    s.rfilename,
                    int(s.lfs.size if s.lfs else (s.size or 0)),
                    s.lfs.sha256 if s.lfs else None,
                )
                for s in info.siblings or ()
                if s.rfilename.lower().endswith(".gguf")
            ]
            if not info.sha:
                raise ValueError("no commit id in the repository's description")
            entries, notes = group_entries(files)
            return RepoFiles(repo_id, info.sha, tuple(entries), bool(info.gated), tuple(notes))

    def url(self, repo_id: str, revision: str, filename: str) -> str:
        return hf_hub_url(repo_id, filename, revision=revision, endpoint=self.endpoint)

    def headers(self) -> dict[str, str]:
        """Request headers (user agent, and the token when there is one) for file reads."""
        return dict(
            build_hf_headers(
                token=self.token or False,
                library_name="kobold-gui",
                library_version=__version__,
            )
        )

    def client(self) -> httpx.Client:
        """The HTTP client huggingface_hub uses (redirects followed, its proxies)."""
        return get_session()


def group_entries(files: list[RemoteFile]) -> tuple[list[ModelEntry], list[str]]:
    """One entry per model: single files as they are, the parts of a split model together
    (in order); a split model with parts missing from the listing is left out, and said."""
    singles: list[ModelEntry] = []
    groups: dict[tuple[str, int], dict[int, RemoteFile]] = {}
    for f in files:
        m = _SPLIT.match(f.name)
        if m:
            groups.setdefault((m.group("prefix"), int(m.group("count"))), {})[
                int(m.group("no"))
            ] = f
        else:
            base = f.name.rsplit("/", 1)[-1]
            singles.append(ModelEntry(base, (f,), projector="mmproj" in base.lower()))
    notes = []
    for (prefix, count), parts in groups.items():
        base = prefix.rsplit("/", 1)[-1]
        if sorted(parts) != list(range(1, count + 1)):
            notes.append(f"{base}: {len(parts)} of its {count} parts are listed, left out")
            continue
        ordered = tuple(parts[i] for i in range(1, count + 1))
        singles.append(ModelEntry(f"{base} ({count} parts)", ordered))
    return sorted(singles, key=lambda e: (e.projector, e.size)), notes


def describe_error(e: BaseException) -> str:
    """A one-line message for an unexpected exception from a network job."""
    return str(e) if isinstance(e, HubError) else f"{type(e).__name__}: {_first_line(e)}"
