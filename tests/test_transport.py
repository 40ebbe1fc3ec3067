"""peer.transport over real loopback sockets on ephemeral ports. Every wait is bounded."""

from __future__ import annotations

import os
import socket
import struct
import sys
import time

import pytest

from peer.transport import Listener, Poller, Stream, TransportError, connect, resolve, start_connect
from tests.streams import free_port, pump_until_closed

WAIT_S = 10.0  # generous bound for anything that should take milliseconds


def accept_one(listener: Listener) -> Stream:
    poller = Poller([listener])
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if poller.wait(100):
            stream = listener.accept()
            if stream is not None:
                poller.close()
                return stream
    raise AssertionError("no connection arrived")


@pytest.fixture
def listener():
    server = Listener("127.0.0.1", 0)
    yield server
    server.close()


@pytest.fixture
def pair(listener):
    client = connect("127.0.0.1", listener.port, 2000)
    server = accept_one(listener)
    yield client, server
    client.close(linger_ms=0)
    server.close(linger_ms=0)


def exchange(sender: Stream, receiver: Stream, size: int) -> bytes:
    """Pump both ends (one selector) until `receiver` has `size` bytes; return them."""
    poller = Poller([sender, receiver])
    received = bytearray()
    deadline = time.monotonic() + WAIT_S
    while len(received) < size:
        assert time.monotonic() < deadline, f"only {len(received)} of {size} bytes arrived"
        for stream in poller.wait(100):
            data = stream.pump(0)
            if stream is receiver:
                received += data
        sender.flush()
    poller.close()
    return bytes(received)


def test_round_trip_both_directions(pair):
    client, server = pair
    client.send(b"ping")
    assert exchange(client, server, 4) == b"ping"
    server.send(b"pong!")
    assert exchange(server, client, 5) == b"pong!"
    assert not client.closed and not server.closed


def test_large_payload_arrives_whole_and_in_order_in_pieces(pair):
    client, server = pair
    payload = os.urandom(3 << 20)
    for start in range(0, len(payload), 100_000):
        client.send(payload[start : start + 100_000])
    assert client.pending_bytes > 0  # send only queues
    assert exchange(client, server, len(payload)) == payload


def test_counters_count_tcp_payload(pair):
    client, server = pair
    client.send(b"x" * 1000)
    exchange(client, server, 1000)
    server.send(b"y" * 10)
    exchange(server, client, 10)
    assert (client.bytes_sent, client.bytes_received) == (1000, 10)
    assert (server.bytes_sent, server.bytes_received) == (10, 1000)
    assert client.pending_bytes == server.pending_bytes == 0


def test_pump_returns_nothing_when_nothing_arrives_and_honours_the_timeout(pair):
    client, _ = pair
    assert client.pump(0) == b""
    start = time.monotonic()
    assert client.pump(30) == b""
    assert time.monotonic() - start >= 0.025  # it did wait (lower bound only)


def test_eof_sets_closed_after_the_last_bytes_are_returned(pair):
    client, server = pair
    client.send(b"goodbye")
    client.close()  # flushes the queued bytes first
    assert client.closed and client.close_reason == "closed locally"
    assert pump_until_closed(server) == b"goodbye"
    assert server.close_reason == "the peer closed the connection"
    # After the end: nothing happens, nothing raises.
    server.send(b"into the void")
    assert server.pump(10) == b""
    server.flush()
    server.close()


def test_a_reset_connection_is_reported_as_closed_not_raised(listener):
    raw = socket.create_connection(("127.0.0.1", listener.port), timeout=WAIT_S)
    server = accept_one(listener)
    raw.sendall(b"last words")
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()  # SO_LINGER 0: an RST instead of a FIN
    data = pump_until_closed(server)
    assert data in (b"", b"last words")  # the kernel may drop unread data on a reset
    assert server.close_reason in ("connection reset by peer", "the peer closed the connection")


def test_writing_to_a_vanished_peer_ends_the_stream(pair):
    client, server = pair
    server.close()
    deadline = time.monotonic() + WAIT_S
    while not client.closed:
        assert time.monotonic() < deadline
        client.send(b"z" * 65536)
        client.pump(20)
    assert client.close_reason in ("the peer closed the connection", "connection reset by peer")


def test_graceful_close_flushes_queued_bytes(pair):
    client, server = pair
    payload = os.urandom(100_000)
    client.send(payload)
    client.close(linger_ms=2000)
    assert pump_until_closed(server) == payload


def test_poller_waits_on_a_listener_and_streams_at_once(listener):
    """The host's loop: keep a game stream going while accepting (and refusing) newcomers."""
    game_client = connect("127.0.0.1", listener.port, 2000)
    game_server = accept_one(listener)
    poller = Poller([listener, game_server])
    intruder = connect("127.0.0.1", listener.port, 2000)
    game_client.send(b"input")
    received, refused = b"", 0
    deadline = time.monotonic() + WAIT_S
    while received != b"input" or refused == 0:
        assert time.monotonic() < deadline
        game_client.flush()
        for item in poller.wait(100):
            if item is listener:
                while (extra := listener.accept()) is not None:
                    extra.send(b"session_full")
                    extra.close()
                    refused += 1
            else:
                assert item is game_server
                received += game_server.pump(0)
    assert pump_until_closed(intruder) == b"session_full"
    assert not game_server.closed
    # A stream that closes leaves the poller on its own.
    game_client.close()
    pump_until_closed(game_server)
    assert len(poller) == 1 and poller.wait(0) == []
    poller.close()


def test_poller_reports_writability_only_while_output_is_queued(pair):
    client, server = pair
    poller = Poller([client])
    assert poller.wait(0) == []  # idle: neither readable nor anything to write
    client.send(b"abc")
    assert poller.wait(1000) == [client]
    client.pump(0)
    assert poller.wait(0) == []
    assert exchange(client, server, 3) == b"abc"
    poller.close()


def test_reading_can_be_paused(pair):
    client, server = pair
    client.send(b"held back")
    client.flush()
    server.reading = False
    assert server.pump(50) == b""
    poller = Poller([server])
    assert poller.wait(50) == []
    poller.close()
    server.reading = True
    assert exchange(client, server, 9) == b"held back"


def test_start_connect_queues_bytes_until_connected(listener):
    client = start_connect("127.0.0.1", listener.port, 2000)
    client.send(b"early")
    server = accept_one(listener)
    assert exchange(client, server, 5) == b"early"
    assert not client.connecting and client.established and server.established
    server.close()
    pump_until_closed(client)
    assert client.established  # it stays: this connection was made, then ended


def test_refused_connection_is_one_clear_line():
    port = free_port()
    with pytest.raises(TransportError) as info:
        connect("127.0.0.1", port, 2000)
    assert str(info.value) == f"nobody is listening on 127.0.0.1:{port}"


def test_start_connect_reports_a_refusal_as_closed():
    port = free_port()
    stream = start_connect("127.0.0.1", port, 2000)
    pump_until_closed(stream)
    assert stream.close_reason == f"nobody is listening on 127.0.0.1:{port}"
    assert not stream.established  # a failed attempt, not a peer that left


def test_unresolvable_host_is_one_clear_line():
    with pytest.raises(TransportError) as info:
        connect("no-such-host.invalid", 7777, 2000)
    assert str(info.value) == "cannot resolve host 'no-such-host.invalid'"
    with pytest.raises(TransportError, match="cannot resolve host"):
        resolve("no-such-host.invalid", 7777)
    assert resolve("127.0.0.1", 7777) == ["127.0.0.1"]


def test_port_in_use_is_one_clear_line(listener):
    with pytest.raises(TransportError) as info:
        Listener("127.0.0.1", listener.port)
    assert str(info.value) == f"port {listener.port} is already in use on 127.0.0.1"


@pytest.mark.parametrize("port", [-1, 65536])
def test_out_of_range_ports_are_refused_clearly(port):
    with pytest.raises(TransportError, match="port must be between"):
        Listener("127.0.0.1", port)
    with pytest.raises(TransportError, match="port must be between"):
        connect("127.0.0.1", port)


class FakeClock:
    """The transport's `time`: it moves only when the transport waits (or sleeps)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_connect_gives_up_at_its_deadline_with_a_clear_line(monkeypatch):
    """A SYN nobody answers, simulated: waiting on the socket never reports it ready, and every
    wait only moves a fake clock. So the deadline logic is checked exactly, in no real time."""
    from peer import transport

    clock = FakeClock()

    def unanswered(sock, events, timeout_ms):
        clock.sleep(timeout_ms / 1000)
        return False

    monkeypatch.setattr(transport, "_wait_socket", unanswered)
    monkeypatch.setattr(transport, "time", clock)
    server = Listener("127.0.0.1", 0)  # a real listener: only the answer is held back
    try:
        start = clock.now
        with pytest.raises(TransportError) as info:
            connect("127.0.0.1", server.port, 250)
        assert str(info.value) == f"connecting to 127.0.0.1:{server.port} timed out"
        assert 0.250 <= clock.now - start <= 0.252  # at the deadline: not before, hardly after
    finally:
        server.close()


@pytest.mark.skipif(sys.platform != "linux", reason="dropping SYNs on a full accept queue is Linux behaviour")
def test_connect_to_a_listener_whose_accept_queue_is_full_times_out():
    """The real thing: Linux drops a SYN when the listener's accept queue is full (the client
    retries only after a second), so once the queue of a listener that never accepts is full,
    a 200 ms connection attempt must time out."""
    server = Listener("127.0.0.1", 0, backlog=1)
    held = []
    try:
        for _ in range(64):  # the queue holds backlog + 1 connections; a few more for stragglers
            try:
                held.append(connect("127.0.0.1", server.port, 200))
            except TransportError as exc:
                assert str(exc) == f"connecting to 127.0.0.1:{server.port} timed out"
                break
        else:
            raise AssertionError(f"{len(held)} connections to a listener with a full queue all succeeded")
    finally:
        for stream in held:
            stream.close(linger_ms=0)
        server.close()


def test_listener_and_stream_close_are_idempotent(pair, listener):
    client, _ = pair
    client.close()
    client.close()
    listener.close()
    listener.close()
    assert listener.accept() is None


def test_no_descriptor_left_for_a_socket_is_one_clear_line_not_a_traceback(monkeypatch):
    import errno
    import types

    from peer import transport

    def out_of_descriptors(*args, **kwargs):
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    fake_socket = types.SimpleNamespace(**{**vars(socket), "socket": out_of_descriptors})
    monkeypatch.setattr(transport, "socket", fake_socket)
    with pytest.raises(TransportError) as listening:
        Listener("127.0.0.1", 0)
    assert str(listening.value) == f"cannot listen on 127.0.0.1:0: {os.strerror(errno.EMFILE)}"
    with pytest.raises(TransportError) as connecting:
        start_connect("127.0.0.1", 7777)
    assert str(connecting.value) == f"cannot connect to 127.0.0.1:7777: {os.strerror(errno.EMFILE)}"
