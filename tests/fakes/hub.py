"""A FAKE Hugging Face Hub: a small HTTP server on 127.0.0.1 that serves real GGUF files
under the hub's URL layout, for tests, the header benchmark and screenshots. The app talks
to it through huggingface_hub and httpx exactly as to huggingface.co (the endpoint is the
only difference), so only the network boundary is faked.

Routes, as the hub answers them (JSON shapes from huggingface_hub's parsers):
  GET  /api/models?search=&filter=gguf&sort=downloads&limit=&expand=   search
  GET  /api/models/{repo}[/revision/{rev}]?blobs=true   siblings with size and lfs.sha256
  GET  /api/models/{repo}/tree/{rev}                    the file list (type, path, lfs.oid)
  HEAD|GET /{repo}/resolve/{rev}/{file}   302 to /cdn/... with X-Repo-Commit, X-Linked-Size,
                                          X-Linked-Etag (401 GatedRepo without the token)
  HEAD|GET /cdn/{repo}/{file}             the bytes, with Range (206, 416) and an ETag
Faults for tests: a corrupt byte, a truncated file, a connection dropped after N bytes,
a throttled speed (for a download you can watch), and a hub that accepts every connection
and never answers (`stall`)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit


@dataclass
class FakeFile:
    source: Path  # the real file whose bytes are served
    sha256: str = ""  # computed from the source when empty
    corrupt: bool = False  # one byte in the middle is flipped (the listed SHA stays right)
    truncate_to: int | None = None  # serve only this many bytes (the listed size stays)
    drop_after: int | None = None  # cut the connection after this many bytes ...
    drops: int = 0  # ... on this many GET requests
    throttle_bps: int | None = None  # bytes per second

    def __post_init__(self) -> None:
        self.size = self.source.stat().st_size
        if not self.sha256:
            h = hashlib.sha256()
            with self.source.open("rb") as f:
                while chunk := f.read(1 << 24):
                    h.update(chunk)
            self.sha256 = h.hexdigest()


@dataclass
class FakeRepo:
    repo_id: str
    files: dict[str, FakeFile]
    downloads: int = 0
    likes: int = 0
    last_modified: str = "2026-10-01T12:00:00.000Z"
    gated: bool = False
    private: bool = False
    commit: str = ""
    extra_files: dict[str, bytes] = field(default_factory=dict)  # README.md and such

    def __post_init__(self) -> None:
        if not self.commit:
            self.commit = hashlib.sha1(self.repo_id.encode()).hexdigest()


class FakeHub:
    """Start with `with FakeHub(repos) as hub:`; `hub.endpoint` is its URL."""

    def __init__(self, repos: list[FakeRepo], token: str | None = None) -> None:
        self.repos = {r.repo_id: r for r in repos}
        self.token = token
        self.log: list[tuple[str, str, str]] = []  # (method, path, Range header)
        self.bytes_sent = 0
        self.stall = False  # read each request, answer none (until the hub stops)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def ranges(self, name: str) -> list[str]:
        """The Range headers of the byte requests for a file."""
        return [
            r for m, p, r in self.log if m == "GET" and p.startswith("/cdn/") and p.endswith(name)
        ]

    def _record(self, method: str, path: str, range_header: str) -> None:
        with self._lock:
            self.log.append((method, path, range_header))


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet

        def do_HEAD(self) -> None:
            self._route(head=True)

        def do_GET(self) -> None:
            self._route(head=False)

        # -- routing ----------------------------------------------------------------
        def _route(self, head: bool) -> None:
            url = urlsplit(self.path)
            path, query = unquote(url.path), parse_qs(url.query)
            hub._record(self.command, path, self.headers.get("Range", ""))
            if hub.stall:
                hub._stopping.wait()
                self.close_connection = True
                return
            try:
                if path == "/api/models":
                    self._json(self._search(query))
                elif m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)", path):
                    self._tree(m.group(1))
                elif m := re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/[^/]+)?", path):
                    self._model(m.group(1), "blobs" in query)
                elif m := re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path):
                    self._resolve(m.group(1), m.group(2), m.group(3), head)
                elif m := re.fullmatch(r"/cdn/([^/]+/[^/]+)/(.+)", path):
                    self._bytes(m.group(1), m.group(2), head)
                else:
                    self._error(404, "EntryNotFound", f"no route for {path}")
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client went away (a pause, a range read)

        # -- API --------------------------------------------------------------------
        def _search(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
            text = (query.get("search") or [""])[0].lower()
            tags = query.get("filter") or []
            found = [
                r
                for r in hub.repos.values()
                if text in r.repo_id.lower() and all(t in _tags(r) for t in tags)
            ]
            found.sort(key=lambda r: -r.downloads)
            limit = int((query.get("limit") or ["1000"])[0])
            return [
                {
                    "_id": r.commit[:24],
                    "id": r.repo_id,
                    "downloads": r.downloads,
                    "likes": r.likes,
                    "lastModified": r.last_modified,
                    "gated": "manual" if r.gated else False,
                    "private": r.private,
                }
                for r in found[:limit]
            ]

        def _repo(self, repo_id: str) -> FakeRepo | None:
            repo = hub.repos.get(repo_id)
            if repo is None or (repo.private and not self._authorized()):
                self._error(401, "RepoNotFound", f"Repository Not Found for url: {self.path}.")
                return None
            return repo

        def _model(self, repo_id: str, blobs: bool) -> None:
            repo = self._repo(repo_id)
            if repo is None:
                return
            siblings: list[dict[str, Any]] = [{"rfilename": n} for n in repo.extra_files]
            for name, f in repo.files.items():
                entry: dict[str, Any] = {"rfilename": name}
                if blobs:
                    entry |= {
                        "size": f.size,
                        "blobId": hashlib.sha1(f.sha256.encode()).hexdigest(),
                        "lfs": {"sha256": f.sha256, "size": f.size, "pointerSize": 135},
                    }
                siblings.append(entry)
            self._json(
                {
                    "_id": repo.commit[:24],
                    "id": repo.repo_id,
                    "modelId": repo.repo_id,
                    "sha": repo.commit,
                    "lastModified": repo.last_modified,
                    "private": repo.private,
                    "gated": "manual" if repo.gated else False,
                    "disabled": False,
                    "downloads": repo.downloads,
                    "likes": repo.likes,
                    "library_name": "gguf",
                    "tags": _tags(repo),
                    "siblings": siblings,
                }
            )

        def _tree(self, repo_id: str) -> None:
            repo = self._repo(repo_id)
            if repo is None:
                return
            self._json(
                [
                    {
                        "type": "file",
                        "oid": hashlib.sha1(f.sha256.encode()).hexdigest(),
                        "size": f.size,
                        "path": name,
                        "lfs": {"oid": f.sha256, "size": f.size, "pointerSize": 135},
                    }
                    for name, f in repo.files.items()
                ]
            )

        def _resolve(self, repo_id: str, revision: str, name: str, head: bool) -> None:
            repo = self._repo(repo_id)
            if repo is None:
                return
            f = repo.files.get(name)
            if f is None or revision not in ("main", repo.commit):
                self._error(404, "EntryNotFound", f"{name} not found at {revision}")
                return
            if repo.gated and not self._authorized():
                self._error(
                    401,
                    "GatedRepo",
                    f"Access to model {repo_id} is restricted. You must have access to it "
                    "and be authenticated to access it. Please log in.",
                )
                return
            self.send_response(302)
            self.send_header("Location", f"/cdn/{repo_id}/{quote(name)}")
            self.send_header("X-Repo-Commit", repo.commit)
            self.send_header("X-Linked-Size", str(f.size))
            self.send_header("X-Linked-Etag", f'"{f.sha256}"')
            self.send_header("ETag", f'W/"{hashlib.sha1(f.sha256.encode()).hexdigest()}"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        # -- bytes ------------------------------------------------------------------
        def _bytes(self, repo_id: str, name: str, head: bool) -> None:
            repo = hub.repos.get(repo_id)
            f = repo.files.get(name) if repo else None
            if f is None:
                self._error(404, "EntryNotFound", f"{name} not found")
                return
            size = f.truncate_to if f.truncate_to is not None else f.size
            start, end = 0, size - 1
            status = 200
            rng = self.headers.get("Range", "")
            if m := re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip()):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                status = 206
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            self.send_response(status)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", f'"{f.sha256}"')
            self.send_header("Content-Type", "binary/octet-stream")
            self.send_header("Content-Length", str(end - start + 1))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            if not head:
                self._send_file(f, start, end + 1)

        def _send_file(self, f: FakeFile, start: int, stop: int) -> None:
            limit = stop
            drop = False
            if f.drop_after is not None and f.drops > 0:
                f.drops -= 1
                limit, drop = min(stop, start + f.drop_after), True
            flip = f.size // 2 if f.corrupt else -1
            pos = start
            with f.source.open("rb") as src:
                src.seek(start)
                while pos < limit:
                    chunk = bytearray(src.read(min(256 << 10, limit - pos)))
                    if not chunk:
                        break
                    if pos <= flip < pos + len(chunk):
                        chunk[flip - pos] ^= 0xFF
                    self.wfile.write(chunk)
                    pos += len(chunk)
                    hub.bytes_sent += len(chunk)
                    if f.throttle_bps:
                        time.sleep(len(chunk) / f.throttle_bps)
            if drop:
                self.wfile.flush()
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

        # -- helpers ----------------------------------------------------------------
        def _authorized(self) -> bool:
            return hub.token is not None and self.headers.get("Authorization") == (
                f"Bearer {hub.token}"
            )

        def _json(self, data: Any) -> None:
            body = json.dumps(data).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status: int, code: str, message: str) -> None:
            body = json.dumps({"error": message}).encode()
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

    return Handler


def _tags(repo: FakeRepo) -> list[str]:
    return ["gguf"] if any(n.endswith(".gguf") for n in repo.files) else []


def iso_days_ago(days: float) -> str:
    t = datetime.now(timezone.utc).timestamp() - days * 86400
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
