"""tools.netsim between two real endpoints on loopback. Timing is checked only as lower bounds."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time

import pytest

from peer.transport import Listener, Poller, Stream, connect
from tests.conftest import ROOT
from tests.streams import free_port, pump_until_closed
from tools.cli import main
from tools.netsim import SPLIT_MAX_BYTES, Impairment, NetSim

WAIT_S = 15.0


def accept_one(listener: Listener) -> Stream:
    poller = Poller([listener])
    deadline = time.monotonic() + WAIT_S
    try:
        while time.monotonic() < deadline:
            if poller.wait(100) and (stream := listener.accept()) is not None:
                return stream
    finally:
        poller.close()
    raise AssertionError("no connection arrived")


def transfer(sender: Stream, receiver: Stream, payload: bytes) -> tuple[bytes, float]:
    """Send `payload` and pump both ends until it all arrived; return it and the seconds it took."""
    start = time.monotonic()
    sender.send(payload)
    received = bytearray()
    poller = Poller([sender, receiver])
    deadline = start + WAIT_S
    try:
        while len(received) < len(payload):
            assert time.monotonic() < deadline, f"{len(received)} of {len(payload)} bytes arrived"
            assert not receiver.closed, receiver.close_reason
            for stream in poller.wait(100):
                data = stream.pump(0)
                if stream is receiver:
                    received += data
    finally:
        poller.close()
    return bytes(received), time.monotonic() - start


@pytest.fixture
def target():
    listener = Listener("127.0.0.1", 0)
    yield listener
    listener.close()


def proxied_pair(sim: NetSim, target: Listener) -> tuple[Stream, Stream]:
    """A client connected through the proxy, and the target's end of that connection."""
    client = connect("127.0.0.1", sim.port, 2000)
    return client, accept_one(target)


def test_bytes_pass_unchanged_and_in_order_both_ways_with_delay_jitter_and_split(target):
    impairment = Impairment(delay_ms=5, jitter_ms=5, split=True, seed=3)
    with NetSim("127.0.0.1", target.port, impairment) as sim:
        client, server = proxied_pair(sim, target)
        up, down = os.urandom(60_000), os.urandom(40_000)
        assert transfer(client, server, up)[0] == up
        assert transfer(server, client, down)[0] == down
        # Interleaved small messages, the game's pattern.
        for i in range(20):
            message = f"frame {i};".encode()
            assert transfer(client, server, message)[0] == message
            assert transfer(server, client, message[::-1])[0] == message[::-1]
        client.close()
        assert pump_until_closed(server) == b""
    # Every piece went out with its own write: at least one per SPLIT_MAX_BYTES bytes.
    assert sim.bytes_up == len(up) + sum(len(f"frame {i};") for i in range(20))
    assert sim.writes >= (sim.bytes_up + sim.bytes_down) // SPLIT_MAX_BYTES


def test_without_impairment_it_is_a_plain_proxy(target):
    with NetSim("127.0.0.1", target.port) as sim:
        client, server = proxied_pair(sim, target)
        payload = os.urandom(2 << 20)
        assert transfer(client, server, payload)[0] == payload
        assert transfer(server, client, b"ok")[0] == b"ok"
        client.close()
        server.close()


def test_each_direction_is_delayed_at_least_the_configured_delay(target):
    with NetSim("127.0.0.1", target.port, Impairment(delay_ms=80)) as sim:
        client, server = proxied_pair(sim, target)
        for _ in range(3):
            _, up_s = transfer(client, server, b"ping")
            _, down_s = transfer(server, client, b"pong")
            assert up_s >= 0.080 and down_s >= 0.080


def test_jitter_never_goes_below_delay_minus_jitter_and_keeps_order(target):
    with NetSim("127.0.0.1", target.port, Impairment(delay_ms=60, jitter_ms=30, seed=9)) as sim:
        client, server = proxied_pair(sim, target)
        for i in range(5):
            message = bytes([i]) * 10
            received, seconds = transfer(client, server, message)
            assert received == message
            assert seconds >= 0.030


def test_throttling_takes_at_least_bytes_over_rate(target):
    rate, size = 100_000, 60_000
    with NetSim("127.0.0.1", target.port, Impairment(rate_bytes_per_s=rate)) as sim:
        client, server = proxied_pair(sim, target)
        payload = os.urandom(size)
        received, seconds = transfer(client, server, payload)
        assert received == payload
        burst = rate / 20  # the token bucket may start full
        assert seconds >= (size - burst) / rate * 0.95


def test_eof_is_forwarded_after_the_delayed_bytes(target):
    with NetSim("127.0.0.1", target.port, Impairment(delay_ms=30, split=True)) as sim:
        client, server = proxied_pair(sim, target)
        client.send(b"goodbye quit")
        client.close()
        assert pump_until_closed(server) == b"goodbye quit"
        # And from the other side.
        client, server = proxied_pair(sim, target)
        server.send(b"session_full")
        server.close()
        assert pump_until_closed(client) == b"session_full"


def test_a_refusing_target_closes_that_client_and_the_proxy_keeps_running():
    lines: list[str] = []
    port = free_port()
    with NetSim("127.0.0.1", port, log=lines.append) as sim:
        for _ in range(2):
            client = connect("127.0.0.1", sim.port, 2000)
            assert pump_until_closed(client) == b""
    assert sim.connections_total == 2
    refusals = [line for line in lines if f"nobody is listening on 127.0.0.1:{port}" in line]
    assert len(refusals) == 2


def test_several_clients_at_once(target):
    with NetSim("127.0.0.1", target.port, Impairment(delay_ms=10)) as sim:
        pairs = [proxied_pair(sim, target) for _ in range(3)]
        for index, (client, server) in enumerate(pairs):
            assert transfer(client, server, b"hello %d" % index)[0] == b"hello %d" % index
        assert sim.active_connections == 3
        for client, server in pairs:
            client.close()
            pump_until_closed(server)


def test_it_can_be_driven_step_by_step_without_a_thread(target):
    sim = NetSim("127.0.0.1", target.port, Impairment(delay_ms=20))
    try:
        client = connect("127.0.0.1", sim.port, 2000)  # the kernel completes it before any accept
        client.send(b"stepped")
        server, received = None, b""
        deadline = time.monotonic() + WAIT_S
        while received != b"stepped":
            assert time.monotonic() < deadline
            sim.step(10)
            client.pump(0)
            server = server or target.accept()
            if server is not None:
                received += server.pump(0)
        sim.run_for(0.01)
        assert sim.active_connections == 1
    finally:
        sim.close()
    assert sim.closed and pump_until_closed(client) == b""


def test_a_proxy_pointed_at_itself_is_refused():
    port = free_port()
    with pytest.raises(ValueError, match="forward to itself"):
        NetSim("127.0.0.1", port, listen_port=port)


def test_split_pieces_are_small_and_reproducible():
    from tools.netsim import _Pipe

    class Sink:
        closed = connecting = False
        pending_bytes = 0

        def __init__(self):
            self.sent: list[bytes] = []

        def send(self, data):
            self.sent.append(bytes(data))

        def flush(self):
            pass

    def pieces(seed):
        sink = Sink()
        pipe = _Pipe(sink, sink, Impairment(split=True, seed=seed), __import__("random").Random(seed), 0.0)
        pipe.push(bytes(range(256)) * 4, 0.0)
        pipe.release(1.0)
        return sink.sent

    first = pieces(1)
    assert b"".join(first) == bytes(range(256)) * 4
    assert all(1 <= len(p) <= SPLIT_MAX_BYTES for p in first) and len(first) > 1024 // SPLIT_MAX_BYTES
    assert pieces(1) == first != pieces(2)


# -- the command line ---------------------------------------------------------------------------


def read_line(process: subprocess.Popen, timeout_s: float = WAIT_S) -> str:
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        assert selector.select(timeout_s), "netsim printed nothing"
    return process.stdout.readline()


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_command_forwards_and_stops_cleanly_on_a_signal(target, stop_signal):
    process = subprocess.Popen(
        [sys.executable, "-m", "tools", "netsim", "--listen", "0", "--to", f"127.0.0.1:{target.port}",
         "--delay-ms", "20", "--jitter-ms", "5", "--split", "--seed", "4"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        first = read_line(process)
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", first)
        assert match, first
        client = connect("127.0.0.1", int(match.group(1)), 2000)
        server = accept_one(target)
        assert transfer(client, server, b"through the command")[0] == b"through the command"
        client.close()
        pump_until_closed(server)
        process.send_signal(stop_signal)
        out, err = process.communicate(timeout=WAIT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert out.strip().splitlines()[-1].startswith("netsim stopped: 1 connection, 19 bytes up")


@pytest.mark.parametrize(
    "args",
    [
        ["--listen", "0"],
        ["--to", "127.0.0.1:80"],
        ["--listen", "0", "--to", "nohostport"],
        ["--listen", "0", "--to", "127.0.0.1:65536"],
        ["--listen", "-1", "--to", "127.0.0.1:80"],
        ["--listen", "0", "--to", "127.0.0.1:80", "--delay-ms", "-5"],
        ["--listen", "0", "--to", "127.0.0.1:80", "--jitter-ms", "lots"],
        ["--listen", "0", "--to", "127.0.0.1:80", "--rate", "0"],
    ],
)
def test_bad_usage_exits_2_with_one_error_line(args, capsys):
    with pytest.raises(SystemExit) as info:
        main(["netsim", *args])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def test_bad_usage_in_a_real_process_has_no_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "tools", "netsim", "--listen", "0", "--to", "nowhere"],
        cwd=ROOT, capture_output=True, text=True, timeout=WAIT_S,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "must be HOST:PORT" in result.stderr


def test_port_in_use_and_unresolvable_target_are_one_line_and_exit_3(target, capsys):
    assert main(["netsim", "--listen", str(target.port), "--to", "127.0.0.1:80"]) == 3
    assert f"port {target.port} is already in use" in capsys.readouterr().err
    assert main(["netsim", "--listen", "0", "--to", "no-such-host.invalid:80"]) == 3
    assert "cannot resolve host 'no-such-host.invalid'" in capsys.readouterr().err


def test_forwarding_to_itself_is_bad_usage(capsys):
    port = free_port()
    assert main(["netsim", "--listen", str(port), "--to", f"127.0.0.1:{port}"]) == 2
    assert "forward to itself" in capsys.readouterr().err
