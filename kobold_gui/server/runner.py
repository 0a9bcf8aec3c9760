"""Running the API: uvicorn on its own thread, beside Qt's event loop or the headless
command's wait. The socket is bound before the thread starts, so "port in use" is an error
the caller gets at once, with a message for the user."""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time

import uvicorn

from kobold_gui.core.engine.worker import EngineWorker
from kobold_gui.server.app import create_app
from kobold_gui.server.state import ServerSettings, ServerState

log = logging.getLogger(__name__)


class ServerStartError(Exception):
    """The server could not start (the message says why and what to do)."""


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (not listening yet); ServerStartError says why not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ServerStartError(f"{host!r} is not an address of this computer ({e})") from None
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise ServerStartError(
                f"port {port} is already in use on {host} (another server, or KoboldCPP?): "
                "choose another port"
            ) from None
        if e.errno == errno.EACCES:
            raise ServerStartError(
                f"port {port} needs administrator rights: choose a port above 1023"
            ) from None
        raise ServerStartError(f"could not listen on {host}:{port}: {e.strerror}") from None
    sock.set_inheritable(True)
    return sock


class ApiServer:
    def __init__(self, worker: EngineWorker, settings: ServerSettings) -> None:
        self.settings = settings
        self.state = ServerState(worker, settings)
        self.app = create_app(self.state)
        self.port = settings.port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def base_url(self) -> str:
        host = self.settings.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 15.0, sock: socket.socket | None = None) -> None:
        """Serve; `sock`: one bound early (bind()), so a port in use is said first."""
        sock = sock or bind(self.settings.host, self.settings.port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            loop="asyncio",
            http="h11",
            ws="none",
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=3,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="api-server", daemon=True
        )
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise ServerStartError("the server did not start (see the log for details)")
            time.sleep(0.01)
        log.info("API server listening on %s", self.base_url())

    def stop(self, timeout: float = 10.0) -> None:
        """End every API request (their clients get what was generated), then the server."""
        for gen in self.state.all_active():
            gen.cancel("aborted")
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout)
        self._server = self._thread = None
