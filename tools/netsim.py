"""`pong netsim`: a TCP proxy that turns loopback into a bad network (the kernel here has no netem).

For every client it accepts, the proxy connects to the target and forwards both directions, each
direction on its own:

* delay: every chunk read is held `delay_ms` ± `jitter_ms` (uniform, never below 0) before it is
  released, and a chunk is never released before an earlier one, so the byte order is kept;
* split (`--split`): each chunk read is cut into random pieces of 1..32 bytes, each with its own
  delay, each written with its own send (TCP_NODELAY), so the receiver sees arbitrary boundaries;
* rate (`--rate B`): a token bucket releases at most B bytes per second per direction (bursts of at
  most 1/20 s worth), after the delay;
* cuts (`--cut-at-ms T,...`): T ms after the proxy starts, every connection it carries is cut with
  a reset on both sides and whatever it held is lost, as when a link breaks; new connections are
  carried as before.

When one side closes, what the proxy still holds for the other side is delivered, then that side is
closed too (half-close is not forwarded). When the target refuses, the client's connection is closed
and the proxy keeps running. Single-threaded: one `Poller` from `peer.transport`.

In-process use (tests, `pong bench`)::

    with NetSim("127.0.0.1", target_port, Impairment(delay_ms=50, jitter_ms=10)) as sim:
        ...  # connect to ("127.0.0.1", sim.port); the proxy runs in a background thread

or `sim.start_in_thread()` ... `sim.stop()`, or drive it yourself with `sim.step(timeout_ms)` /
`sim.run_for(seconds)`.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType

from peer.transport import Listener, Poller, Stream, TransportError, format_endpoint, resolve, start_connect
from tools import args as types
from tools import exitcodes
from tools.exitcodes import CommandError
from tools.output import say

SPLIT_MAX_BYTES = 32
BACKLOG_LIMIT_BYTES = 1 << 20  # per direction; beyond it the proxy stops reading from the sender
CONNECT_TIMEOUT_MS = 5000
THREAD_POLL_MS = 50  # how soon a background proxy notices stop()


@dataclass(frozen=True)
class Impairment:
    """What the proxy does to each direction. Validated; `rate_bytes_per_s=None` means unlimited."""

    delay_ms: int = 0
    jitter_ms: int = 0
    split: bool = False
    rate_bytes_per_s: int | None = None
    seed: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.delay_ms <= 600_000:
            raise ValueError(f"delay must be between 0 and 600000 ms, not {self.delay_ms}")
        if not 0 <= self.jitter_ms <= 600_000:
            raise ValueError(f"jitter must be between 0 and 600000 ms, not {self.jitter_ms}")
        if self.rate_bytes_per_s is not None and self.rate_bytes_per_s < 1:
            raise ValueError(f"rate must be at least 1 byte per second, not {self.rate_bytes_per_s}")

    def describe(self) -> str:
        parts = []
        if self.delay_ms or self.jitter_ms:
            parts.append(f"delay {self.delay_ms} ms ± {self.jitter_ms} ms")
        if self.split:
            parts.append(f"split into pieces of 1..{SPLIT_MAX_BYTES} bytes")
        if self.rate_bytes_per_s is not None:
            parts.append(f"rate {self.rate_bytes_per_s} B/s per direction")
        return ", ".join(parts) if parts else "no impairment"


class _Pipe:
    """One direction of one connection: what was read from `src`, waiting to be written to `dst`."""

    def __init__(self, src: Stream, dst: Stream, impairment: Impairment, rng: random.Random, now: float):
        self.src = src
        self.dst = dst
        self._imp = impairment
        self._rng = rng
        self._queue: deque[tuple[float, bytes]] = deque()  # (release time, bytes), release times ascending
        self._last_release = 0.0
        self.queued_bytes = 0
        self.forwarded_bytes = 0
        self.writes = 0
        rate = impairment.rate_bytes_per_s
        self._grain = max(1, rate // 100) if rate else 0  # release at least ~10 ms worth at a time
        self._cap = max(self._grain, rate // 20) if rate else 0
        self._allowance = 0.0
        self._refilled_at = now

    def push(self, data: bytes, now: float) -> None:
        imp, rng = self._imp, self._rng
        pieces = [data]
        if imp.split:
            pieces, offset = [], 0
            while offset < len(data):
                size = rng.randint(1, SPLIT_MAX_BYTES)
                pieces.append(data[offset : offset + size])
                offset += size
        for piece in pieces:
            delay_ms = imp.delay_ms + (rng.uniform(-imp.jitter_ms, imp.jitter_ms) if imp.jitter_ms else 0)
            release = max(now + max(0.0, delay_ms) / 1000, self._last_release)
            self._last_release = release
            self._queue.append((release, piece))
            self.queued_bytes += len(piece)

    def _refill(self, now: float) -> None:
        rate = self._imp.rate_bytes_per_s
        if rate:
            self._allowance = min(self._cap, self._allowance + (now - self._refilled_at) * rate)
            self._refilled_at = now

    def next_due(self, now: float) -> float | None:
        """When this pipe next has something to release (None: nothing, or waiting on the socket)."""
        if not self._queue or self.dst.closed or self.dst.connecting:
            return None
        due = self._queue[0][0]
        rate = self._imp.rate_bytes_per_s
        if rate:
            self._refill(now)
            need = min(len(self._queue[0][1]), self._grain)
            if self._allowance < need:
                due = max(due, now + (need - self._allowance) / rate)
        return due

    def release(self, now: float) -> None:
        if self.dst.closed:
            self._queue.clear()
            self.queued_bytes = 0
            return
        if self.dst.connecting:
            return
        rate = self._imp.rate_bytes_per_s
        self._refill(now)
        while self._queue and self._queue[0][0] <= now:
            due, piece = self._queue[0]
            size = len(piece)
            if rate:
                size = min(size, int(self._allowance))
                if size < min(len(piece), self._grain):
                    break
                self._allowance -= size
            if size < len(piece):
                self._queue[0] = (due, piece[size:])
                piece = piece[:size]
            else:
                self._queue.popleft()
            self.dst.send(piece)
            self.queued_bytes -= size
            self.forwarded_bytes += size
            self.writes += 1
            if self._imp.split:
                self.dst.flush()  # one send per piece
        self.dst.flush()

    @property
    def drained(self) -> bool:
        return not self._queue and self.dst.pending_bytes == 0


class _Link:
    """One proxied connection: the accepted client, the stream to the target, and the two pipes."""

    def __init__(self, number: int, client: Stream, target: Stream, imp: Impairment, now: float):
        self.number = number
        self.client = client
        self.target = target
        self.up = _Pipe(client, target, imp, random.Random(f"{imp.seed}:{number}:up"), now)
        self.down = _Pipe(target, client, imp, random.Random(f"{imp.seed}:{number}:down"), now)

    @property
    def done(self) -> bool:
        return self.client.closed and self.target.closed

    def next_due(self, now: float) -> float | None:
        dues = [d for d in (self.up.next_due(now), self.down.next_due(now)) if d is not None]
        return min(dues) if dues else None

    def service(self, now: float, log: Callable[[str], None]) -> None:
        for pipe in (self.up, self.down):
            if not pipe.src.closed:
                data = pipe.src.pump(0)
                if data:
                    pipe.push(data, now)
        if self.target.closed and not self.target.established:
            if not self.client.closed:
                log(f"connection {self.number}: {self.target.close_reason}; closed the client connection")
                self.client.close(linger_ms=0)
            return
        for pipe in (self.up, self.down):
            pipe.release(now)
            if pipe.src.closed and not pipe.dst.closed and pipe.drained:
                pipe.dst.close(linger_ms=0)
            if not pipe.src.closed:
                pipe.src.reading = pipe.queued_bytes + pipe.dst.pending_bytes < BACKLOG_LIMIT_BYTES


class NetSim:
    """The proxy. Listens on `bind_host:listen_port` (0 = any free port; the actual one is `.port`)."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        impairment: Impairment | None = None,
        *,
        listen_port: int = 0,
        bind_host: str = "127.0.0.1",
        log: Callable[[str], None] | None = None,
        cut_at_ms: Sequence[int] = (),
    ) -> None:
        """Raises `TransportError` (target unresolvable, port in use) or `ValueError` (a loop to itself)."""
        self.impairment = impairment or Impairment()
        self.target = (target_host, target_port)
        target_addresses = set(resolve(target_host, target_port))
        self._listener = Listener(bind_host, listen_port)
        self.port = self._listener.port
        self.bind_host = bind_host
        if target_port == self.port and target_addresses & set(resolve(bind_host, self.port)):
            self._listener.close()
            raise ValueError(f"netsim would forward to itself on port {self.port}")
        self._log = log or (lambda line: None)
        self._poller = Poller([self._listener])
        self._links: list[_Link] = []
        self.connections_total = 0
        self.bytes_up = 0  # client -> target, forwarded, over finished connections
        self.bytes_down = 0
        self.writes = 0
        self._started = time.monotonic()
        self._cuts = deque(sorted(cut_at_ms))
        self.cuts_done = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_error: BaseException | None = None
        self.closed = False

    def __enter__(self) -> NetSim:
        return self.start_in_thread()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def active_connections(self) -> int:
        return len(self._links)

    def step(self, timeout_ms: int) -> None:
        """One turn of the loop: wait at most `timeout_ms` (less when a release is due), then forward."""
        now = time.monotonic()
        for link in self._links:
            due = link.next_due(now)
            if due is not None:
                timeout_ms = min(timeout_ms, max(0, int((due - now) * 1000 + 0.999)))
        if self._cuts:
            due = self._started + self._cuts[0] / 1000
            timeout_ms = min(timeout_ms, max(0, int((due - now) * 1000 + 0.999)))
        ready = self._poller.wait(timeout_ms)
        now = time.monotonic()
        while self._cuts and now >= self._started + self._cuts[0] / 1000:
            self._cuts.popleft()
            self._cut_all()
        if self._listener in ready:
            self._accept(now)
        for link in self._links:
            link.service(now, self._log)
        for link in [link for link in self._links if link.done]:
            self._finish(link)

    def run_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not self._stopping.is_set():
            self.step(max(1, int(left * 1000)))

    def run_forever(self, poll_ms: int = 1000) -> None:
        """Forward until `stop()` (from another thread) or an exception (e.g. KeyboardInterrupt)."""
        while not self._stopping.is_set():
            self.step(poll_ms)

    def start_in_thread(self) -> NetSim:
        """Run the proxy in a daemon thread until `stop()`; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._thread_main, name=f"netsim:{self.port}", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the loop (the background thread too), close every connection and the listener.

        Re-raises an exception that ended the background thread, so tests never miss one.
        """
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise RuntimeError("the netsim thread did not stop")
            self._thread = None
        self.close()
        if self._thread_error is not None:
            error, self._thread_error = self._thread_error, None
            raise error

    def close(self) -> None:
        if self.closed:
            return
        for link in list(self._links):
            link.client.close(linger_ms=0)
            link.target.close(linger_ms=0)
            self._finish(link)
        self._listener.close()
        self._poller.close()
        self.closed = True

    def _thread_main(self) -> None:
        try:
            self.run_forever(THREAD_POLL_MS)
        except BaseException as exc:  # handed to stop()
            self._thread_error = exc
        finally:
            self.close()

    def _accept(self, now: float) -> None:
        while (client := self._listener.accept()) is not None:
            self.connections_total += 1
            number = self.connections_total
            try:
                target = start_connect(*self.target, timeout_ms=CONNECT_TIMEOUT_MS)
            except TransportError as exc:
                self._log(f"connection {number}: {exc}; closed the client connection")
                client.close(linger_ms=0)
                continue
            self._log(f"connection {number} from {client.peer}")
            self._links.append(_Link(number, client, target, self.impairment, now))
            self._poller.add(client)
            self._poller.add(target)

    def _cut_all(self) -> None:
        self.cuts_done += 1
        for link in list(self._links):
            link.client.abort()
            link.target.abort()
            self._log(f"connection {link.number} cut (cut {self.cuts_done})")
            self._finish(link)

    def _finish(self, link: _Link) -> None:
        self._links.remove(link)
        self.bytes_up += link.up.forwarded_bytes
        self.bytes_down += link.down.forwarded_bytes
        self.writes += link.up.writes + link.down.writes
        if link.target.established:
            self._log(
                f"connection {link.number} closed "
                f"({link.up.forwarded_bytes} bytes up, {link.down.forwarded_bytes} bytes down)"
            )


# -- the command ----------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        type=types.port,
        required=True,
        metavar="PORT",
        help="port to listen on, on 127.0.0.1 (0 = any free port; the first line says which)",
    )
    parser.add_argument(
        "--to",
        type=types.host_port,
        required=True,
        metavar="HOST:PORT",
        help="where to forward each connection",
    )
    parser.add_argument(
        "--delay-ms", type=types.milliseconds, default=0, metavar="D", help="one-way delay per direction"
    )
    parser.add_argument(
        "--jitter-ms", type=types.milliseconds, default=0, metavar="J", help="each delay varies by ±J ms"
    )
    parser.add_argument(
        "--split",
        action="store_true",
        help=f"cut the stream into random pieces of 1..{SPLIT_MAX_BYTES} bytes",
    )
    parser.add_argument(
        "--rate", type=types.rate, default=None, metavar="BYTES_PER_S", help="throttle each direction"
    )
    parser.add_argument(
        "--seed", type=types.seed, default=1, help="seed of the jitter and split draws (default 1)"
    )
    parser.add_argument(
        "--cut-at-ms",
        type=cut_times,
        default=(),
        metavar="T[,T...]",
        help="cut every connection (with a reset, losing what is in flight) T ms after start",
    )


def cut_times(text: str) -> tuple[int, ...]:
    """`--cut-at-ms`: milliseconds after start, comma-separated."""
    parts = [part.strip() for part in text.split(",")]
    if not parts or any(not part for part in parts):
        raise argparse.ArgumentTypeError(f"expected times in ms like 1000,2500, not {text!r}")
    return tuple(types.milliseconds(part) for part in parts)


def run(args: argparse.Namespace) -> int:
    host, port = args.to
    impairment = Impairment(args.delay_ms, args.jitter_ms, args.split, args.rate, args.seed)
    try:
        sim = NetSim(
            host, port, impairment, listen_port=args.listen, log=_log_to_stderr, cut_at_ms=args.cut_at_ms
        )
    except TransportError as exc:
        raise CommandError(str(exc), exitcodes.NETWORK) from None
    except ValueError as exc:
        raise CommandError(str(exc), exitcodes.USAGE) from None
    say(
        f"netsim listening on {format_endpoint(sim.bind_host, sim.port)}, forwarding to "
        f"{format_endpoint(host, port)} "
        f"with {impairment.describe()} (seed {impairment.seed})"
    )
    try:
        sim.run_forever()
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM/SIGHUP through tools.cli: a normal way to stop
        pass
    finally:
        sim.close()
    say(
        f"netsim stopped: {sim.connections_total} connection{'' if sim.connections_total == 1 else 's'}, "
        f"{sim.bytes_up} bytes up, {sim.bytes_down} bytes down"
    )
    return exitcodes.OK


def _log_to_stderr(line: str) -> None:
    say(f"netsim: {line}", sys.stderr)
