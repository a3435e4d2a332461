"""Raw HTTP/2 (h2c, prior knowledge) for what no gRPC client sends: headers of any name and value,
gRPC message frames of any shape, and frames that are not HTTP/2 at all.

`request` speaks HTTP/2 properly (the h2 package, with its checks of outgoing headers off) and
reads the reply as a gRPC client would: its grpc-status, else its HTTP status, else the stream's
reset or the connection's end. `send_bytes` writes bytes on a fresh connection and reports how
the server took them: it closed the connection, sent GOAWAY, or was still waiting when we gave
up. Every exchange is bounded in time and in what it reads.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: What one exchange may read before it stops reading.
MAX_READ_BYTES = 1024 * 1024
Header = tuple[bytes, bytes]


@dataclass(frozen=True)
class End:
    """How an exchange ended: `outcome` is a gRPC status name, "HTTP <n>", "RST_STREAM <code>",
    "GOAWAY <code>", "closed", or "no answer" (nothing within the time given)."""

    outcome: str
    seconds: float
    grpc_message: str = ""


def frame(kind: int, flags: int, stream: int, payload: bytes, length: int | None = None) -> bytes:
    """One HTTP/2 frame, its length field `length` (default: the payload's, which it may belie)."""
    size = len(payload) if length is None else length
    return (
        struct.pack(">I", size)[1:] + bytes([kind, flags]) + struct.pack(">I", stream & 0xFFFFFFFF) + payload
    )


def grpc_message(body: bytes, compressed: bool = False, length: int | None = None) -> bytes:
    """The gRPC length-prefixed message (its length field `length`, default the body's)."""
    return bytes([1 if compressed else 0]) + struct.pack(">I", len(body) if length is None else length) + body


def request(address: str, headers: Sequence[Header], data: bytes, timeout: float) -> End:
    """One stream: `headers` (exactly these, in this order), `data` as DATA, END_STREAM."""
    began = time.monotonic()
    connection = h2.connection.H2Connection(
        h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
            validate_inbound_headers=False,
        )
    )
    try:
        with _connect(address, timeout) as sock:
            connection.initiate_connection()
            connection.update_settings({h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 1 << 20})
            stream = connection.get_next_available_stream_id()
            connection.send_headers(stream, list(headers), end_stream=not data)
            if data:
                _send_data(connection, sock, stream, data)
            sock.sendall(connection.data_to_send())
            return _read_reply(connection, sock, stream, began, timeout)
    except (h2.exceptions.ProtocolError, h2.exceptions.FlowControlError) as error:
        return End(f"h2 refused to send it: {type(error).__name__}", time.monotonic() - began)
    except OSError as error:
        return End(_socket_end(error), time.monotonic() - began)


def send_bytes(address: str, data: bytes, timeout: float) -> End:
    """`data` on a fresh connection, as it is; then how the server took it."""
    began = time.monotonic()
    try:
        with _connect(address, timeout) as sock:
            sock.sendall(data)
            frames = FrameReader()
            while frames.received < MAX_READ_BYTES:
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    return End("no answer", time.monotonic() - began)
                if not chunk:
                    return End("closed", time.monotonic() - began)
                goaway = frames.goaway(chunk)
                if goaway is not None:
                    return End(f"GOAWAY {goaway}", time.monotonic() - began)
            return End("answered at length", time.monotonic() - began)
    except OSError as error:
        return End(_socket_end(error), time.monotonic() - began)


class FrameReader:
    """The server's frames, as they arrive in pieces: is one of them a GOAWAY?"""

    def __init__(self) -> None:
        self.buffer = b""
        self.received = 0

    def goaway(self, chunk: bytes) -> int | None:
        """The error code of the first GOAWAY among the frames completed by `chunk`."""
        self.received += len(chunk)
        self.buffer += chunk
        while len(self.buffer) >= 9:
            length = int.from_bytes(self.buffer[:3], "big")
            if len(self.buffer) < 9 + length:
                return None
            kind, payload = self.buffer[3], self.buffer[9 : 9 + length]
            self.buffer = self.buffer[9 + length :]
            if kind == 0x7 and len(payload) >= 8:
                return int.from_bytes(payload[4:8], "big")
        return None


def _connect(address: str, timeout: float) -> socket.socket:
    host, _, port = address.rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def _send_data(connection: h2.connection.H2Connection, sock: socket.socket, stream: int, data: bytes) -> None:
    """All of `data`, as flow control and frame size allow (waiting for WINDOW_UPDATEs)."""
    sent = 0
    while sent < len(data):
        window = min(connection.local_flow_control_window(stream), connection.max_outbound_frame_size)
        if window <= 0:
            sock.sendall(connection.data_to_send())
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("closed while we sent the request")
            connection.receive_data(chunk)
            continue
        piece = data[sent : sent + window]
        sent += len(piece)
        connection.send_data(stream, piece, end_stream=sent == len(data))


def _read_reply(
    connection: h2.connection.H2Connection, sock: socket.socket, stream: int, began: float, timeout: float
) -> End:
    status = ""
    grpc_status = ""
    message = ""
    received = 0
    while received < MAX_READ_BYTES:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return End("no answer", time.monotonic() - began)
        if not chunk:
            return End(_named(grpc_status, status) or "closed", time.monotonic() - began, message)
        received += len(chunk)
        try:
            events = connection.receive_data(chunk)
        except h2.exceptions.ProtocolError as error:
            return End(f"unreadable reply: {type(error).__name__}", time.monotonic() - began)
        for event in events:
            if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                fields = {bytes(k).lower(): bytes(v) for k, v in event.headers}
                status = fields.get(b":status", status.encode()).decode(errors="replace")
                if b"grpc-status" in fields:
                    grpc_status = fields[b"grpc-status"].decode(errors="replace")
                    message = fields.get(b"grpc-message", b"").decode(errors="replace")[:200]
            elif isinstance(event, h2.events.DataReceived):
                connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamReset) and event.stream_id == stream:
                return End(
                    _named(grpc_status, "") or f"RST_STREAM {event.error_code}", time.monotonic() - began
                )
            elif isinstance(event, h2.events.ConnectionTerminated):
                return End(
                    _named(grpc_status, "") or f"GOAWAY {event.error_code}", time.monotonic() - began, message
                )
            if isinstance(event, h2.events.StreamEnded) and event.stream_id == stream:
                return End(
                    _named(grpc_status, status) or "ended without a status", time.monotonic() - began, message
                )
        sock.sendall(connection.data_to_send())
    return End("answered at length", time.monotonic() - began)


#: gRPC status names by number.
GRPC_CODES = {code.value[0]: code.name for code in grpc.StatusCode}


def _named(grpc_status: str, http_status: str) -> str:
    if grpc_status:
        return (
            GRPC_CODES[int(grpc_status)]
            if grpc_status.isdigit() and int(grpc_status) < 17
            else f"grpc-status {grpc_status}"
        )
    return f"HTTP {http_status}" if http_status else ""


def _socket_end(error: OSError) -> str:
    if isinstance(error, TimeoutError):
        return "no answer"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ConnectionResetError | BrokenPipeError):
        return "closed"
    return f"socket error: {type(error).__name__}"
