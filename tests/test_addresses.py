"""What a host bound to every interface tells the other player: this machine's addresses, found
without network traffic, in a line tools/procmatch.py can still read the port from."""

from __future__ import annotations

import pytest

from peer import addresses
from peer.addresses import join_hint, reachable_addresses, waiting_line
from tools.procmatch import listening_port


@pytest.fixture
def machine(monkeypatch):
    found = ["127.0.1.1", "203.0.113.7", "127.0.0.1", "192.168.1.20", "::1", "fe80::1", "2001:db8::5"]
    monkeypatch.setattr(addresses, "machine_addresses", lambda: found)


def test_a_wildcard_bind_names_this_machines_addresses_private_ipv4_first(machine):
    assert reachable_addresses("0.0.0.0") == ["192.168.1.20", "203.0.113.7"]
    assert reachable_addresses("::") == ["192.168.1.20", "203.0.113.7", "2001:db8::5"]
    line = waiting_line("0.0.0.0", 7788)
    assert "0.0.0.0" not in line
    assert line == (
        "waiting for a player on port 7788: the other player runs pong join "
        "192.168.1.20:7788 or 203.0.113.7:7788"
    )
    assert join_hint("::", 7788) == "the other player runs: pong join 192.168.1.20:7788"


def test_a_specific_bind_is_the_address_to_give(machine):
    assert reachable_addresses("10.1.2.3") == ["10.1.2.3"]
    assert waiting_line("::1", 7000) == "waiting for a player on [::1]:7000"


def test_a_machine_with_only_loopback_says_so(monkeypatch):
    monkeypatch.setattr(addresses, "machine_addresses", lambda: ["127.0.1.1", "127.0.0.1", "::1"])
    assert reachable_addresses("0.0.0.0") == ["127.0.0.1"]


def test_the_real_machines_addresses_are_addresses():
    for address in reachable_addresses("0.0.0.0"):
        assert address != "0.0.0.0" and ":" not in address


@pytest.mark.parametrize(
    "line, port",
    [
        ("waiting for a player on 127.0.0.1:7777", 7777),
        ("waiting for a player on [::1]:41000", 41000),
        ("waiting for a player on port 7788: the other player runs pong join 192.168.1.20:7788", 7788),
        ("refused: 127.0.0.1:5000: session_full", None),
    ],
)
def test_selfplay_reads_the_port_from_every_form_of_the_line(line, port):
    assert listening_port(line) == port
