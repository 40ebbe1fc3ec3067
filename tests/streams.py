"""Helpers for tests of real loopback sockets (the transport and netsim)."""

from __future__ import annotations

import time

from peer.transport import Listener, Stream

WAIT_S = 15.0  # generous bound for anything that should take milliseconds


def pump_until_closed(stream: Stream) -> bytes:
    """Everything the stream delivers until its end is noticed (fails after WAIT_S)."""
    data = bytearray()
    deadline = time.monotonic() + WAIT_S
    while not stream.closed:
        assert time.monotonic() < deadline, "the end of the connection was never noticed"
        data += stream.pump(100)
    return bytes(data)


def free_port() -> int:
    probe = Listener("127.0.0.1", 0)
    port = probe.port
    probe.close()
    return port
