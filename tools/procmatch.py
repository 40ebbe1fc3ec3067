"""Run a real match between two `pong` processes (host and joiner) on loopback; used by
`pong selfplay` and `pong bench`.

The host is started on a free port (`--port 0`), its first stdout line says where it listens, and
the joiner is pointed there (or at a proxy in front of it, such as netsim).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from tools import exitcodes
from tools.exitcodes import CommandError

START_TIMEOUT_S = 15
# After one peer has ended, how long the other may take: more than the 5 s silence timeout and
# the 2 s wait for the peer's final goodbye together.
GRACE_S = 15
POLL_S = 0.1
WAITING_PREFIX = "waiting for a player on "


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


def _spawn(argv: list[str]) -> subprocess.Popen[str]:
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy")
    return subprocess.Popen(
        [sys.executable, "-m", "tools", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_for_port(host: subprocess.Popen[str], lines: list[str]) -> int:
    """Read the host's stdout until it says where it listens (its first line)."""
    assert host.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(host.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if not selector.select(max(0.0, deadline - time.monotonic())):
                break
            line = host.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if line.startswith(WAITING_PREFIX):
                return int(line.rsplit(":", 1)[1])
    finally:
        selector.close()
    host.kill()
    _, err = host.communicate()
    raise CommandError(f"the host did not start: {err.strip() or 'no output'}", exitcodes.NETWORK)


def _finish(process: subprocess.Popen[str], lines: list[str], deadline: float | None) -> PeerRun:
    timeout = None if deadline is None else max(1.0, deadline - time.monotonic())
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        err = f"killed: the match did not end in time. {err}"
    lines += out.splitlines()
    result = None
    if lines and lines[-1].startswith("{"):
        with contextlib.suppress(ValueError):
            result = json.loads(lines[-1])
    return PeerRun(process.returncode, result, err.strip(), lines)


def _wait_for_either(a: subprocess.Popen[str], b: subprocess.Popen[str], deadline: float | None) -> None:
    while a.poll() is None and b.poll() is None:
        if deadline is not None and time.monotonic() >= deadline:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            a.wait(timeout=POLL_S)


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
    host_lines: list[str] = []
    host = _spawn(["host", "--port", "0", *host_args])
    joiner: subprocess.Popen[str] | None = None
    try:
        port = _wait_for_port(host, host_lines)
        with via(port) as join_port:
            joiner = _spawn(["join", f"127.0.0.1:{join_port}", *join_args])
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            _wait_for_either(host, joiner, deadline)
            # One side has ended; the other ends by itself within its timeouts, or never (a host
            # whose joiner died before the handshake waits forever): it gets a grace period.
            grace = time.monotonic() + grace_s
            host_run = _finish(host, host_lines, grace if host.poll() is None else deadline)
            joiner_run = _finish(joiner, [], grace if joiner.poll() is None else deadline)
    finally:
        # On any way out (an error, Ctrl-C while waiting), neither process outlives the match.
        for process in (host, joiner):
            if process is not None and process.poll() is None:
                process.kill()
                process.communicate()
    return MatchRun(host_run, joiner_run, time.monotonic() - started)
