"""Checking a remote machine before llama.cpp touches it: TCP connect and the RPC hello,
from Python.

ggml's RPC client aborts the whole process (GGML_ABORT) when a connect, the handshake or a
send fails, so nothing may reach it that was not checked here first. The messages follow
ggml-rpc.cpp (protocol 7.0, llama-cpp-python 0.3.36):
  request:  | cmd (1 byte) | size (uint64) | data |
  response: | size (uint64) | data |
HELLO (14) must come first; then DEVICE_COUNT (15), GET_DEVICE_MEMORY (11) and
GET_ALIGNMENT (1) per device. The server serves one client at a time: while another client
(a loaded model) holds it, the connect succeeds but the hello is not answered.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass
from typing import NamedTuple

RPC_PROTO = (7, 0, 0)  # the version this build's RPC client speaks (ggml-rpc.h)
CONN_CAPS_SIZE = 24
CMD_GET_ALIGNMENT = 1
CMD_GET_DEVICE_MEMORY = 11
CMD_HELLO = 14
CMD_DEVICE_COUNT = 15
DEFAULT_PORT = 50052  # llama.cpp's rpc-server default
LOCAL_HOST = "127.0.0.1"  # where a server binds unless the user picks a network address
# ggml-cpu's buffers are aligned to 32 bytes (TENSOR_ALIGNMENT); GPU backends use more
# (CUDA 128). The protocol does not name the remote backend, so this is how it is told.
CPU_ALIGNMENT = 32


class RpcError(Exception):
    """A remote machine that cannot be used; the message names it and says why."""


class RpcSilent(RpcError):
    """The machine did not answer in time (busy with another client, frozen, or a stalled
    network): nothing refused or closed the connection."""

    def __init__(self, endpoint: str, message: str) -> None:
        super().__init__(message)
        self.endpoint = endpoint


@dataclass(frozen=True)
class RemoteDevice:
    endpoint: str
    index: int  # the device's number on that server
    memory_free: int
    memory_total: int
    alignment: int

    @property
    def is_cpu(self) -> bool:
        return self.alignment <= CPU_ALIGNMENT

    @property
    def kind(self) -> str:
        return "CPU" if self.is_cpu else "GPU"

    @property
    def label(self) -> str:
        return f"{self.endpoint} #{self.index} ({self.kind})"


@dataclass(frozen=True)
class RemoteMachine:
    endpoint: str
    version: tuple[int, int, int]
    rtt_ms: float  # the fastest of a few small round trips
    devices: tuple[RemoteDevice, ...]

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))


class Endpoint(NamedTuple):
    """A remote machine's address; written as llama-server's --rpc takes it (host:port)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_endpoint(text: str) -> Endpoint:
    """'host:port' (as llama-server's --rpc takes it) -> Endpoint. Raises RpcError."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RpcError(
            f"{text.strip() or '(empty)'}: give a machine as host:port, e.g. "
            f"192.168.1.20:{DEFAULT_PORT}"
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return Endpoint(host, int(port))


def parse_endpoints(text: str) -> tuple[Endpoint, ...]:
    """'a:1,b:2' -> the endpoints, in order, without repeats. Raises RpcError."""
    out: list[Endpoint] = []
    for part in text.split(","):
        if part.strip() and (endpoint := parse_endpoint(part)) not in out:
            out.append(endpoint)
    return tuple(out)


class _Conn:
    def __init__(self, address: Endpoint, timeout: float) -> None:
        self.endpoint = endpoint = str(address)
        try:
            self.sock = socket.create_connection(address, timeout=timeout)
        except TimeoutError:
            message = f"{endpoint} does not answer (no connection in {timeout:g} s)"
            raise RpcSilent(endpoint, message) from None
        except ConnectionRefusedError:
            raise RpcError(
                f"{endpoint} refused the connection: no RPC server is listening on that port"
            ) from None
        except OSError as e:
            raise RpcError(f"{endpoint} is unreachable: {e.strerror or e}") from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def call(self, cmd: int, payload: bytes, answer_size: int) -> bytes:
        self.sock.sendall(struct.pack("<BQ", cmd, len(payload)) + payload)
        (size,) = struct.unpack("<Q", self._recv(8))
        if size != answer_size:
            raise RpcError(
                f"{self.endpoint} answered in another format: not a llama.cpp RPC server "
                f"of protocol {RPC_PROTO[0]}.x"
            )
        return self._recv(size)

    def _recv(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise RpcError(
                    f"{self.endpoint} closed the connection: it may run another RPC version "
                    f"(this app speaks {'.'.join(map(str, RPC_PROTO))}) or not be an RPC server"
                )
            data += chunk
        return data

    def close(self) -> None:
        self.sock.close()


def probe(address: str | Endpoint, timeout: float = 3.0) -> RemoteMachine:
    """Connect, say hello, and read each device's memory. Raises RpcError saying what
    happened: unreachable, refused, busy with another client, another version."""
    if not isinstance(address, Endpoint):
        address = parse_endpoint(address)
    endpoint = str(address)
    conn = _Conn(address, timeout)
    try:
        t0 = time.perf_counter()
        try:
            hello = conn.call(CMD_HELLO, bytes(CONN_CAPS_SIZE), 4 + CONN_CAPS_SIZE)
        except TimeoutError:
            raise RpcSilent(
                endpoint,
                f"{endpoint} accepted the connection but did not answer the RPC hello: it is "
                "busy serving another client (an RPC server serves one at a time), or it is "
                "not an RPC server",
            ) from None
        rtt = time.perf_counter() - t0
        version = (hello[0], hello[1], hello[2])
        if version[0] != RPC_PROTO[0] or version[1] > RPC_PROTO[1]:
            raise RpcError(
                f"{endpoint} runs RPC protocol {'.'.join(map(str, version))}; this app speaks "
                f"{'.'.join(map(str, RPC_PROTO))}: run the server of the same llama.cpp "
                "version (kobold-gui --rpc-server on that machine)"
            )
        for _ in range(3):  # the round trip: the fastest of a few tiny requests
            t0 = time.perf_counter()
            (count,) = struct.unpack("<I", conn.call(CMD_DEVICE_COUNT, b"", 4))
            rtt = min(rtt, time.perf_counter() - t0)
        devices = []
        for index in range(count):
            free, total = struct.unpack(
                "<QQ", conn.call(CMD_GET_DEVICE_MEMORY, struct.pack("<I", index), 16)
            )
            (align,) = struct.unpack(
                "<Q", conn.call(CMD_GET_ALIGNMENT, struct.pack("<I", index), 8)
            )
            devices.append(RemoteDevice(endpoint, index, free, total, align))
    except TimeoutError:
        raise RpcSilent(endpoint, f"{endpoint} stopped answering during the check") from None
    except OSError as e:
        raise RpcError(f"{endpoint}: the connection failed during the check ({e})") from None
    finally:
        conn.close()
    if not devices:
        raise RpcError(f"{endpoint} offers no device")
    return RemoteMachine(endpoint, version, rtt * 1000, tuple(devices))


def probe_all(endpoints: tuple[str | Endpoint, ...], timeout: float = 3.0) -> list[RemoteMachine]:
    """Every machine, in order; the first that cannot be used raises RpcError."""
    return [probe(e, timeout) for e in endpoints]
