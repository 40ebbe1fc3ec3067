"""Run a real match between two `pong` processes (host and joiner) on loopback; used by
`pong selfplay` and `pong bench`.

The host is started on a free port (`--port 0`), its first stdout line says where it listens, and
the joiner is pointed there (or at a proxy in front of it, such as netsim).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from types import FrameType
from typing import IO, Any

from tools import exitcodes, stopping
from tools.exitcodes import CommandError

START_TIMEOUT_S = 15
# After one peer has ended, how long the other may take: more than the 5 s silence timeout and
# the 2 s wait for the peer's final goodbye together.
GRACE_S = 15
POLL_S = 0.1
STOP_GRACE_S = 3
WAITING_PREFIX = "waiting for a player on "
# "... on 127.0.0.1:7777", "... on [::1]:7777", or for a wildcard bind "... on port 7777: ..."
# (peer/addresses.py: waiting_line).
_WAITING_PORT = re.compile(re.escape(WAITING_PREFIX) + r"(?:port (\d+)|\S*:(\d+))")


def listening_port(line: str) -> int | None:
    """The port a host's "waiting for a player" line names, or None for any other line."""
    match = _WAITING_PORT.match(line)
    return int(match.group(1) or match.group(2)) if match else None


@dataclass
class PeerRun:
    code: int
    result: dict[str, Any] | None  # the JSON of the last stdout line
    stderr: str
    lines: list[str] = field(default_factory=list)


@dataclass
class MatchRun:
    host: PeerRun
    joiner: PeerRun
    seconds: float


class _Child:
    """A `pong` process whose stdout and stderr are read as they come (by two threads), so a chatty
    child (a host logging every refused connection of a port scan) never blocks on a full pipe."""

    def __init__(self, command: list[str]) -> None:
        env = dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy")
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="backslashreplace",  # a stray byte must not stop a reader (and block the child)
            env=env,
        )
        self.lines: list[str] = []
        self.errors: list[str] = []
        self.line_queue: queue.Queue[str | None] = queue.Queue()  # stdout, while someone waits on it
        self.announcing = True
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.lines, True), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self.errors, False), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, pipe: IO[str] | None, sink: list[str], announce: bool) -> None:
        assert pipe is not None
        with contextlib.suppress(OSError):  # the pipe broke under us: nothing more to read
            for line in pipe:
                sink.append(line.rstrip("\n"))
                if announce and self.announcing:
                    self.line_queue.put(sink[-1])
        if announce:
            self.line_queue.put(None)

    def poll(self) -> int | None:
        return self.process.poll()

    def finish(self, deadline: float | None, stop: _StopRequest) -> PeerRun:
        if deadline is not None:
            deadline = max(deadline, time.monotonic() + 1.0)
        note = ""
        while self.poll() is None:
            stop.check()
            if deadline is not None and time.monotonic() >= deadline:
                self.process.kill()
                note = "killed: the match did not end in time. "
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=POLL_S)
        self._reap()
        result = None
        if self.lines and self.lines[-1].startswith("{"):
            with contextlib.suppress(ValueError):
                result = json.loads(self.lines[-1])
        stderr = note + "\n".join(self.errors)
        return PeerRun(self.process.returncode, result, stderr.strip(), list(self.lines))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self._reap()

    def _reap(self) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):  # never an untimed wait: see _StopRequest
            self.process.wait(timeout=STOP_GRACE_S)
        for reader in self._readers:
            reader.join(timeout=5)


class _StopRequest:
    """Ctrl-C, SIGTERM or SIGHUP while a match runs only set a flag, checked at safe points: a
    KeyboardInterrupt raised inside `Popen.wait` can leave its lock taken, and the clean-up's own
    wait would then block forever."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt


def _stop_all(children: list[_Child]) -> None:
    """SIGTERM for each still running (the player quits: goodbye `quit`, replay finished; unlike
    SIGINT, no background shell has set it to be ignored), then SIGKILL for any that has not ended
    within STOP_GRACE_S."""
    running = [child for child in children if child.poll() is None]
    for child in running:
        child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for child in running:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
    for child in children:
        child.stop()


def _spawn(argv: list[str]) -> _Child:
    return _Child([sys.executable, "-m", "tools", *argv])


def _wait_for_port(host: _Child, stop: _StopRequest) -> int:
    """Read the host's stdout until it says where it listens (its first line)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while (left := deadline - time.monotonic()) > 0:
        stop.check()
        try:
            line = host.line_queue.get(timeout=min(left, POLL_S))
        except queue.Empty:
            continue
        if line is None:  # the host ended before listening
            break
        if (port := listening_port(line)) is not None:
            host.announcing = False
            return port
    host.stop()
    raise CommandError(
        f"the host did not start: {' '.join(host.errors).strip() or 'no output'}", exitcodes.NETWORK
    )


def _wait_for_either(a: _Child, b: _Child, deadline: float | None, stop: _StopRequest) -> None:
    while a.poll() is None and b.poll() is None:
        stop.check()
        if deadline is not None and time.monotonic() >= deadline:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            a.process.wait(timeout=POLL_S)


@contextlib.contextmanager
def _direct(port: int) -> Iterator[int]:
    yield port


def run_match(
    host_args: list[str],
    join_args: list[str],
    *,
    via: Callable[[int], AbstractContextManager[int]] = _direct,
    timeout_s: float | None = 600,
    grace_s: float = GRACE_S,
) -> MatchRun:
    """`pong host --port 0 HOST_ARGS` and `pong join 127.0.0.1:PORT JOIN_ARGS` to the end.

    `via(host_port)` may put something between them: it yields the port the joiner should use.
    """
    started = time.monotonic()
    host: _Child | None = None
    joiner: _Child | None = None
    stop = _StopRequest()
    previous = stopping.install(stop)
    try:
        host = _spawn(["host", "--port", "0", *host_args])
        port = _wait_for_port(host, stop)
        with via(port) as join_port:
            joiner = _spawn(["join", f"127.0.0.1:{join_port}", *join_args])
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            _wait_for_either(host, joiner, deadline, stop)
            # One side has ended; the other ends by itself within its timeouts, or never (a host
            # whose joiner died before the handshake waits forever): it gets a grace period.
            grace = time.monotonic() + grace_s
            host_run = host.finish(grace if host.poll() is None else deadline, stop)
            joiner_run = joiner.finish(grace if joiner.poll() is None else deadline, stop)
    finally:
        # On any way out (an error, Ctrl-C or SIGTERM while waiting), neither process outlives
        # the match, and each gets the chance to finish its replay.
        _stop_all([child for child in (host, joiner) if child is not None])
        stopping.restore(previous)
    return MatchRun(host_run, joiner_run, time.monotonic() - started)
