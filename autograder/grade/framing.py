"""How messages cross between the grader and a student process: framing only, no values.

    u32 header length | header (UTF-8 JSON) | u32 buffer count | (u64 length | bytes)*

What the header and buffers mean (tensors, handles) is :mod:`.wire`'s business.
This module needs no torch, so a process can start a sandboxed worker and send
it its first request before importing torch itself (see :mod:`.warm_boot`).
"""

from __future__ import annotations

import json
import socket
import struct
import time

MAX_HEADER_BYTES = 64 * 1024 * 1024
MAX_BUFFERS = 100_000
DEFAULT_MAX_MESSAGE_BYTES = 2 * 1024**3


class ProtocolError(RuntimeError):
    """The other side sent something that is not a valid message."""


class PeerGone(ConnectionError):
    """The other side closed the connection or died."""


class Timeout(TimeoutError):
    """No complete message arrived before the deadline."""


def send_message(sock: socket.socket, header: dict, buffers: list[bytes]) -> None:
    body = json.dumps(header, allow_nan=True, separators=(",", ":")).encode("utf-8")
    parts = [struct.pack("<I", len(body)), body, struct.pack("<I", len(buffers))]
    for buf in buffers:
        parts.append(struct.pack("<Q", len(buf)))
        parts.append(buf)
    sock.sendall(b"".join(parts))


def _recv_exact(sock: socket.socket, n: int, deadline: float | None) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Timeout("timed out waiting for the other side")
            sock.settimeout(remaining)
        else:
            sock.settimeout(None)
        try:
            chunk = sock.recv(min(n - len(chunks), 1 << 20))
        except socket.timeout as exc:
            raise Timeout("timed out waiting for the other side") from exc
        except OSError as exc:
            raise PeerGone(str(exc)) from exc
        if not chunk:
            raise PeerGone("connection closed")
        chunks += chunk
    return bytes(chunks)


def recv_message(
    sock: socket.socket,
    deadline: float | None = None,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> tuple[dict, list[bytes]]:
    (header_len,) = struct.unpack("<I", _recv_exact(sock, 4, deadline))
    if header_len > MAX_HEADER_BYTES:
        raise ProtocolError(f"message header of {header_len} bytes is too large")
    try:
        header = json.loads(_recv_exact(sock, header_len, deadline).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"malformed message header: {exc}") from exc
    if not isinstance(header, dict):
        raise ProtocolError("message header is not a JSON object")
    (count,) = struct.unpack("<I", _recv_exact(sock, 4, deadline))
    if count > MAX_BUFFERS:
        raise ProtocolError(f"{count} buffers in one message is too many")
    buffers, total = [], header_len
    for _ in range(count):
        (size,) = struct.unpack("<Q", _recv_exact(sock, 8, deadline))
        total += size
        if total > max_bytes:
            raise ProtocolError(
                f"message larger than the limit of {max_bytes} bytes; "
                "is a tensor far bigger than the exercise needs?"
            )
        buffers.append(_recv_exact(sock, size, deadline))
    return header, buffers
