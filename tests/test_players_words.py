"""What a player reads when `pong host` or `pong join` cannot start: what went wrong, what to do,
one line with the prefix every command's errors share. Loopback only."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from peer.protocol import Role
from peer.session import SessionOptions, SessionResult
from tests.conftest import ROOT
from tools.play import players_words, summary


def not_started(result: str, detail: str, problem: str | None = None, received: int = 0) -> SessionResult:
    return SessionResult(result, detail, False, problem=problem, bytes_received=received)


JOIN = SessionOptions(Role.JOINER, host="127.0.0.1", port=7777, key=b"sesame")
HOST = SessionOptions(Role.HOST, host="127.0.0.1", port=7777)


@pytest.mark.parametrize(
    "options, result, words",
    [
        (
            JOIN,
            not_started("auth_failed", "the host does not know our key"),
            "wrong key: the host uses a different --key / PONG_KEY",
        ),
        (
            JOIN,
            not_started("auth_failed", "the joiner does not know the host's key"),
            "wrong key: the host uses a different --key / PONG_KEY",
        ),
        (
            SessionOptions(Role.JOINER, host="127.0.0.1", port=7777),
            not_started("auth_failed", "the host requires a key (use --key)"),
            "the host uses a key: give the same one with --key or PONG_KEY",
        ),
        (
            JOIN,
            not_started("auth_failed", "the host does not use a key, but we were given one"),
            "the host uses no key: leave out --key and PONG_KEY",
        ),
        (
            JOIN,
            not_started(
                "protocol_error",
                "not a Lockstep Pong peer (first message was not a challenge or refusal but input)",
            ),
            "that is not a pong host: something else answers at 127.0.0.1:7777",
        ),
        (
            JOIN,
            not_started("peer_timeout", "nobody is listening on 127.0.0.1:7777", "network"),
            "nobody is listening on 127.0.0.1:7777: check that `pong host` runs there, "
            "and the address and port",
        ),
        (
            HOST,
            not_started("quit", "port 7777 is already in use on 127.0.0.1", "network"),
            "port 7777 is already in use on 127.0.0.1 (another pong host?): use --port 0 to let the system "
            "pick a free port",
        ),
    ],
)
def test_a_match_that_never_started_says_what_to_do(options, result, words):
    result.detail = players_words(result, options)
    assert result.detail == words
    assert summary(result) == f"pong: error: {words}"  # no "quit:" or "auth_failed:" in front


def test_a_player_who_stops_waiting_reads_no_error():
    result = not_started("quit", "stopped hosting before anyone joined")
    assert players_words(result, HOST) == "stopped hosting before anyone joined"
    assert summary(result) == "stopped hosting before anyone joined"


def test_the_details_of_a_played_match_are_left_alone():
    result = SessionResult("quit", "the other player quit", True, input_delay=2, frames=300)
    assert players_words(result, JOIN) == "the other player quit"


@pytest.fixture
def something_else() -> Iterator[int]:
    """A loopback service that is not pong: it greets every connection in its own protocol."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
                conn.settimeout(5)
                while conn.recv(4096):
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    server.close()


def test_joining_something_else_says_it_is_not_a_pong_host(something_else, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools",
            "join",
            f"127.0.0.1:{something_else}",
            "--headless",
            "--bot",
            "tracker",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [
        f"pong: error: that is not a pong host: something else answers at 127.0.0.1:{something_else}"
    ]
