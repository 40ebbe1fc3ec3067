"""Non-blocking TCP, pumped by the caller: the only module of the project that imports `socket`.

No threads and no callbacks. The caller owns the loop and decides how long to wait:

* `Listener(bind_host, port)` listens; `.accept()` returns a connected `Stream` or None at once.
* `connect(host, port, timeout_ms)` returns a connected `Stream` or raises `TransportError`;
  `start_connect(host, port, timeout_ms)` returns at once with a `Stream` whose connection completes
  while it is pumped (so a single-threaded proxy never blocks on a slow target).
* `Stream.send(data)` only queues bytes (it never blocks and never fails); `Stream.pump(timeout_ms)`
  waits at most `timeout_ms` for the socket, writes what the kernel accepts and returns what it read
  (b"" when nothing arrived); `Stream.flush()` writes without reading or waiting.
* `Poller` waits on a `Listener` and any number of `Stream`s at once: `.wait(timeout_ms)` returns the
  ready ones, and the caller then calls `.accept()` / `.pump(0)` on them.
* `format_endpoint(host, port)` writes an address the way every message of the project shows it.

A stream holds no descriptor but its socket's (no selector of its own): a host running out of file
descriptors must fail only at `accept`, where it is reported and survivable.

How the end of a connection surfaces (one scheme everywhere): **never as an exception after the
connection exists**. When the peer closes (EOF), resets, or a write fails, the stream sets `.closed`
and `.close_reason` (one line for a person, e.g. "the peer closed the connection"). Bytes that
arrived before the end are still returned by that last `pump`, so a caller handles the data first and
then looks at `.closed`. After the end, `send` discards, `pump` returns b"" and `close()` does
nothing. Half-close is not modelled: the peer's EOF ends the stream.

`TransportError` (one clear line, meant to be shown as is) is raised only where a connection cannot
be made: listening (port in use, bad address), resolving a name, connecting (refused, unreachable,
timed out).
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import select
import selectors
import socket
import struct
import time
from collections.abc import Iterable
from typing import Any

__all__ = [
    "Listener",
    "Poller",
    "Stream",
    "TransportError",
    "connect",
    "format_endpoint",
    "resolve",
    "start_connect",
]

_READ_CHUNK = 65536
_MAX_READ_PER_PUMP = 1 << 20  # bounded work (and memory) per pump; the rest comes with the next one
_WRITE_CHUNK = 1 << 18
_RESET_ERRNOS = (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED, errno.ETIMEDOUT)

_Address = tuple[socket.AddressFamily, socket.SocketKind, int, str, Any]


class TransportError(Exception):
    """A connection could not be made or a port not be listened on. `str()` is one line for a person."""


def _ms_left(deadline: float) -> int:
    return max(0, int((deadline - time.monotonic()) * 1000 + 0.999))


def format_endpoint(host: str, port: int) -> str:
    """host:port, with an IPv6 address in brackets ([::1]:7777) so the port cannot be misread."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _wait_socket(sock: socket.socket, events: int, timeout_ms: float) -> bool:
    """Wait at most `timeout_ms` for `sock` to be ready for `events` (selectors.EVENT_*); True if it is.

    poll(2) where there is one (it needs no descriptor of its own and takes any descriptor number),
    select(2) elsewhere (Windows).
    """
    timeout_ms = max(0.0, timeout_ms)
    if hasattr(select, "poll"):
        poller = select.poll()
        mask = (select.POLLIN if events & selectors.EVENT_READ else 0) | (
            select.POLLOUT if events & selectors.EVENT_WRITE else 0
        )
        poller.register(sock, mask)
        # poll rounds its timeout down to whole milliseconds; round up so a wait is never cut short.
        return bool(poller.poll(math.ceil(timeout_ms)))
    reading = [sock] if events & selectors.EVENT_READ else []
    writing = [sock] if events & selectors.EVENT_WRITE else []
    ready = select.select(reading, writing, [sock], timeout_ms / 1000)
    return any(ready)


def _check_port(port: int, lowest: int) -> None:
    if not lowest <= port <= 65535:
        raise TransportError(f"port must be between {lowest} and 65535, not {port}")


def _resolve(host: str, port: int, passive: bool = False) -> list[_Address]:
    try:
        return list(
            socket.getaddrinfo(
                host or None,
                port,
                socket.AF_UNSPEC,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                socket.AI_PASSIVE if passive else 0,
            )
        )
    except (socket.gaierror, UnicodeError):
        raise TransportError(f"cannot resolve host {host!r}") from None


def resolve(host: str, port: int) -> list[str]:
    """The numeric addresses of `host` (e.g. ["127.0.0.1"]); `TransportError` when it has none."""
    _check_port(port, 0)
    return list(dict.fromkeys(str(info[4][0]) for info in _resolve(host, port)))


def _connect_error(host: str, port: int, code: int) -> str:
    where = format_endpoint(host, port)
    if code == errno.ECONNREFUSED:
        return f"nobody is listening on {where}"
    if code in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return f"cannot reach {where}: {errno.errorcode.get(code, code)} (no route to it)"
    if code == errno.ETIMEDOUT:
        return f"connecting to {where} timed out"
    return f"cannot connect to {where}: {os.strerror(code)}"


class Stream:
    """One TCP connection, non-blocking, with an outgoing buffer. Made by `Listener.accept` or `connect`.

    Attributes (read-only for the caller unless stated):
      closed          True once the connection is over (peer EOF, reset, failed connect, or `close()`).
      close_reason    None while open; then one line: "the peer closed the connection",
                      "connection reset by peer", "nobody is listening on 127.0.0.1:7777",
                      "closed locally", ...
      connecting      True while a `start_connect` connection is not yet established.
      established     True once the TCP connection was made (at once for accepted and `connect`ed
                      streams), and it stays True after the end: `closed and not established` means
                      the connection attempt failed (refused, timed out), not that the peer left.
      bytes_sent      TCP payload bytes handed to the kernel so far.
      bytes_received  TCP payload bytes read so far.
      reading         Set it to False to stop reading (back-pressure): `pump` then only writes and a
                      `Poller` ignores readability (so EOF is noticed only after reading resumes).
      peer            "host:port" of the other end, for messages.
    """

    def __init__(self, sock: socket.socket, peer: str, *, connecting: bool = False) -> None:
        sock.setblocking(False)
        _no_delay(sock)
        self._sock = sock
        self._out = bytearray()
        self._pollers: list[Poller] = []
        # Only for connections made by start_connect: what to try next and until when.
        self._target: tuple[str, int] | None = None
        self._next_addresses: list[_Address] = []
        self._connect_deadline = 0.0
        self._first_connect_error = 0
        self.peer = peer
        self.connecting = connecting
        self.established = not connecting
        self.closed = False
        self.close_reason: str | None = None
        self.bytes_sent = 0
        self.bytes_received = 0
        self.reading = True

    def __repr__(self) -> str:
        state = "closed" if self.closed else "connecting" if self.connecting else "open"
        return f"<Stream {self.peer} {state} sent={self.bytes_sent} received={self.bytes_received}>"

    def fileno(self) -> int:
        """The socket's descriptor (-1 once closed); lets a Stream sit in any selector."""
        return -1 if self.closed else self._sock.fileno()

    @property
    def pending_bytes(self) -> int:
        """Bytes queued by `send` and not yet handed to the kernel."""
        return len(self._out)

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """Queue `data`; the next `pump`/`flush` writes it. Never blocks; discarded once closed."""
        if not self.closed:
            self._out += data

    def flush(self) -> None:
        """Write as much of the queued output as the kernel accepts now. Never blocks, never reads."""
        if not self.closed and not self._poll_connect():
            self._write()

    def pump(self, timeout_ms: int = 0) -> bytes:
        """Wait at most `timeout_ms` for the socket, write what it accepts, and return what was read.

        Returns b"" when nothing arrived. Returns as soon as there was something to do (data read,
        output written, the connection ended), so callers loop. Check `.closed` after handling the
        returned bytes: the bytes that preceded an EOF or a reset are returned first.
        """
        if self.closed:
            return b""
        data = self._step()
        if data or self.closed or timeout_ms <= 0:
            return data
        events = self._wanted_events()
        if not events:
            return b""  # not reading and nothing to write: nothing could wake us
        if self.connecting:
            timeout_ms = min(timeout_ms, max(1, _ms_left(self._connect_deadline)))
        if _wait_socket(self._sock, events, timeout_ms) or self.connecting:
            return self._step()
        return b""

    def close(self, linger_ms: int = 500) -> None:
        """Close gracefully: try for at most `linger_ms` to write what is still queued, then close.

        It sends a FIN after the queued bytes and never waits for the peer otherwise. Use
        `linger_ms=0` inside a loop that must not block (queued bytes the kernel does not take at once
        are then dropped). Idempotent.
        """
        if self.closed:
            return
        if not self.connecting:
            deadline = time.monotonic() + linger_ms / 1000
            self._write()
            while self._out and not self.closed:
                left = _ms_left(deadline)
                if left <= 0:
                    break
                if _wait_socket(self._sock, selectors.EVENT_WRITE, left):
                    self._write()
        if not self.closed:
            try:
                self._sock.shutdown(socket.SHUT_WR)
                # Read what already arrived so the close is a FIN, not a reset that might destroy
                # the last bytes we sent before the peer read them (bounded: the peer may flood).
                for _ in range(_MAX_READ_PER_PUMP // _READ_CHUNK):
                    if not self._sock.recv(_READ_CHUNK):
                        break
            except OSError:
                pass
            self._end("closed locally")

    def abort(self) -> None:
        """Close with a reset (RST), dropping whatever is queued: how a broken link looks to the
        other end (`pong netsim --cut-at-ms`). Idempotent."""
        if self.closed:
            return
        with contextlib.suppress(OSError):  # closing is all that is left to do, reset or not
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._end("cut")

    # -- internals ---------------------------------------------------------------------------------

    def _wanted_events(self) -> int:
        if self.connecting:
            return selectors.EVENT_WRITE
        events = selectors.EVENT_READ if self.reading else 0
        if self._out:
            events |= selectors.EVENT_WRITE
        return events

    def _step(self) -> bytes:
        if self._poll_connect():
            return b""
        self._write()
        if self.closed or not self.reading:
            return b""
        return self._read()

    def _write(self) -> None:
        while self._out and not self.closed:
            try:
                sent = self._sock.send(
                    self._out[:_WRITE_CHUNK] if len(self._out) > _WRITE_CHUNK else self._out
                )
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._end_with_error(exc)
                return
            del self._out[:sent]
            self.bytes_sent += sent

    def _read(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while total < _MAX_READ_PER_PUMP:
            try:
                chunk = self._sock.recv(_READ_CHUNK)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._end_with_error(exc)
                break
            if not chunk:
                self._end("the peer closed the connection")
                break
            chunks.append(chunk)
            total += len(chunk)
        self.bytes_received += total
        return b"".join(chunks)

    def _end_with_error(self, exc: OSError) -> None:
        if exc.errno in _RESET_ERRNOS:
            self._end(
                "connection reset by peer" if exc.errno != errno.ETIMEDOUT else "the connection timed out"
            )
        else:
            self._end(f"connection failed: {exc.strerror or exc}")

    def _end(self, reason: str) -> None:
        if self.closed:
            return
        for poller in list(self._pollers):
            poller.remove(self)
        self._sock.close()
        self._out.clear()
        self.connecting = False
        self.closed = True
        self.close_reason = reason

    def _poll_connect(self) -> bool:
        """While connecting: advance the connection; True while it is still not established."""
        if not self.connecting:
            return False
        if _wait_socket(self._sock, selectors.EVENT_WRITE, 0):
            code = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code == 0:
                self.connecting = False
                self.established = True
                self._connect_deadline = 0.0
                return False
            self._first_connect_error = self._first_connect_error or code
            self._try_next_address()
        elif time.monotonic() >= self._connect_deadline:
            self._first_connect_error = self._first_connect_error or errno.ETIMEDOUT
            self._next_addresses.clear()
            self._try_next_address()
        return self.connecting or self.closed

    def _try_next_address(self) -> None:
        """Start connecting to the next resolved address; end the stream when none is left."""
        assert self._target is not None
        host, port = self._target
        while self._next_addresses:
            family, kind, proto, _, sockaddr = self._next_addresses.pop(0)
            try:
                sock = socket.socket(family, kind, proto)
            except OSError as exc:
                self._first_connect_error = self._first_connect_error or (exc.errno or errno.EINVAL)
                continue
            sock.setblocking(False)
            code = sock.connect_ex(sockaddr)
            if code in (0, errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK):
                self._swap_socket(sock)
                return
            sock.close()
            self._first_connect_error = self._first_connect_error or code
        self._end(_connect_error(host, port, self._first_connect_error or errno.ECONNREFUSED))

    def _swap_socket(self, sock: socket.socket) -> None:
        for poller in self._pollers:
            poller._forget_fd(self)
        self._sock.close()
        _no_delay(sock)
        self._sock = sock


def _no_delay(sock: socket.socket) -> None:
    """Inputs are a few bytes each and must leave at once: no Nagle."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        # A connection the peer already reset may refuse options; its first read will say so.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def start_connect(host: str, port: int, timeout_ms: int = 5000) -> Stream:
    """Begin connecting to host:port and return at once; the connection completes as it is pumped.

    The stream is `.connecting` until established; bytes sent meanwhile are queued. When every address
    of `host` refuses (or `timeout_ms` passes) the stream ends with `.closed` and a `.close_reason`
    such as "nobody is listening on 127.0.0.1:7777". Raises `TransportError` only when `host` cannot
    be resolved ("cannot resolve host 'foo'") or the port is out of range. Name resolution blocks.
    """
    _check_port(port, 1)
    addresses = _resolve(host, port)
    try:
        placeholder = socket.socket(addresses[0][0], socket.SOCK_STREAM)
    except OSError as exc:  # out of descriptors, say
        raise TransportError(_connect_error(host, port, exc.errno or errno.EINVAL)) from None
    stream = Stream(placeholder, format_endpoint(host, port), connecting=True)
    stream._target = (host, port)
    stream._next_addresses = list(addresses)
    stream._connect_deadline = time.monotonic() + max(1, timeout_ms) / 1000
    stream._try_next_address()
    return stream


def connect(host: str, port: int, timeout_ms: int = 5000) -> Stream:
    """Connect to host:port, waiting at most `timeout_ms`, and return the connected `Stream`.

    Raises `TransportError` with one line: "cannot resolve host 'foo'", "nobody is listening on
    127.0.0.1:7777", "connecting to 10.0.0.9:7777 timed out", ...
    """
    stream = start_connect(host, port, timeout_ms)
    while stream.connecting:
        _wait_socket(stream._sock, selectors.EVENT_WRITE, max(1, _ms_left(stream._connect_deadline)))
        stream._poll_connect()
    if stream.closed:
        raise TransportError(stream.close_reason or f"cannot connect to {format_endpoint(host, port)}")
    return stream


class Listener:
    """A listening TCP socket (SO_REUSEADDR). `port` is the actual port, so port 0 picks a free one."""

    def __init__(self, bind_host: str = "127.0.0.1", port: int = 0, backlog: int = 16) -> None:
        _check_port(port, 0)
        family, kind, proto, _, sockaddr = _resolve(bind_host, port, passive=True)[0]
        try:
            sock = socket.socket(family, kind, proto)
        except OSError as exc:  # out of descriptors, or no IPv6 here
            raise TransportError(_listen_error(bind_host, port, exc)) from None
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sockaddr)
            sock.listen(backlog)
        except OSError as exc:
            sock.close()
            raise TransportError(_listen_error(bind_host, port, exc)) from None
        sock.setblocking(False)
        self._sock = sock
        self._pollers: list[Poller] = []
        self.bind_host = bind_host
        self.port: int = sock.getsockname()[1]
        self.closed = False

    def __repr__(self) -> str:
        return f"<Listener {format_endpoint(self.bind_host, self.port)}{' closed' if self.closed else ''}>"

    def fileno(self) -> int:
        return -1 if self.closed else self._sock.fileno()

    def accept(self) -> Stream | None:
        """A newly connected `Stream` (TCP_NODELAY, non-blocking), or None when none is waiting."""
        if self.closed:
            return None
        try:
            sock, address = self._sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return None
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                # The connection stays queued in the kernel: the caller may retry once it has
                # freed descriptors (or memory), and should not spin on it meanwhile.
                raise TransportError(f"cannot accept a connection: {exc.strerror or exc}") from None
            return None
        return Stream(sock, format_endpoint(str(address[0]), int(address[1])))

    def close(self) -> None:
        if self.closed:
            return
        for poller in list(self._pollers):
            poller.remove(self)
        self._sock.close()
        self.closed = True


def _listen_error(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} is already in use on {host}"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {host}: it is not an address of this machine"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"not allowed to listen on {format_endpoint(host, port)} (ports below 1024 need privileges)"
    return f"cannot listen on {format_endpoint(host, port)}: {exc.strerror or exc}"


Pollable = Listener | Stream


class Poller:
    """Waits on a `Listener` and any number of `Stream`s at once, with one selector.

    Typical host loop::

        poller = Poller([listener, game_stream])
        for item in poller.wait(timeout_ms):
            if item is listener:
                while (extra := listener.accept()) is not None:
                    ...  # refuse it, or poller.add(extra)
            else:
                data = item.pump(0)  # writes queued output, returns what arrived
                ...  # then look at item.closed

    A stream is reported ready when it is readable (and `.reading`), when it is writable while it has
    queued output, and when its connection attempt finished. A stream or listener that closes (for any
    reason) leaves every poller on its own; `wait` never reports closed items.
    """

    def __init__(self, items: Iterable[Pollable] = ()) -> None:
        self._selector = selectors.DefaultSelector()
        self._items: dict[Pollable, int] = {}  # item -> events currently registered (0 = none)
        for item in items:
            self.add(item)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: Pollable) -> None:
        """Watch `item` (a no-op when it is already watched or closed)."""
        if item.closed or item in self._items:
            return
        self._items[item] = 0
        item._pollers.append(self)

    def remove(self, item: Pollable) -> None:
        """Stop watching `item` (a no-op when it is not watched)."""
        if item not in self._items:
            return
        self._forget_fd(item)
        del self._items[item]
        item._pollers.remove(self)

    def _forget_fd(self, item: Pollable) -> None:
        if self._items.get(item):
            self._selector.unregister(item._sock)
            self._items[item] = 0

    def wait(self, timeout_ms: float) -> list[Pollable]:
        """Wait at most `timeout_ms` (0 = just look) and return the ready items, in no particular order."""
        for item in list(self._items):
            wanted = selectors.EVENT_READ if isinstance(item, Listener) else item._wanted_events()
            current = self._items[item]
            if wanted == current:
                continue
            if not current:
                self._selector.register(item._sock, wanted, item)
            elif not wanted:
                self._selector.unregister(item._sock)
            else:
                self._selector.modify(item._sock, wanted, item)
            self._items[item] = wanted
        if not any(self._items.values()):
            # Nothing to watch; still honour the timeout so callers' loops keep their pace.
            if timeout_ms > 0:
                time.sleep(timeout_ms / 1000)
            return []
        ready = self._selector.select(max(0, timeout_ms) / 1000)
        return [key.data for key, _ in ready if not key.data.closed]

    def close(self) -> None:
        for item in list(self._items):
            self.remove(item)
        self._selector.close()


def machine_addresses() -> list[str]:
    """This machine's IP addresses, found without network traffic: its own name as the resolver
    knows it (normally /etc/hosts) and its interfaces' addresses (Linux: an ioctl per interface,
    /proc/net/if_inet6). What a host bound to a wildcard tells the other player (peer/addresses.py)."""
    found: list[str] = []
    with contextlib.suppress(OSError, UnicodeError):
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_UNSPEC, socket.SOCK_STREAM)
        found += [str(info[4][0]) for info in infos]
    with contextlib.suppress(OSError, AttributeError, ImportError):
        import fcntl  # not on Windows, where only the machine's name is asked

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # sends nothing
            for _, name in socket.if_nameindex():
                request = struct.pack("256s", name.encode()[:15])
                with contextlib.suppress(OSError):
                    reply = fcntl.ioctl(probe.fileno(), 0x8915, request)  # SIOCGIFADDR
                    found.append(socket.inet_ntoa(reply[20:24]))
    with contextlib.suppress(OSError, ValueError), open("/proc/net/if_inet6") as table:
        for row in table:
            found.append(socket.inet_ntop(socket.AF_INET6, bytes.fromhex(row.split()[0])))
    return list(dict.fromkeys(found))
