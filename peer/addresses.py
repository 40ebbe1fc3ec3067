"""The addresses another player can join this machine at, for the host to print.

`--bind 0.0.0.0` listens on every interface, but "0.0.0.0:7788" is no address anyone can dial: a
host says which of this machine's addresses to give the other player instead (found without any
network traffic: peer.transport.machine_addresses).
"""

from __future__ import annotations

import ipaddress

from peer.transport import format_endpoint, machine_addresses

WILDCARDS = ("", "0.0.0.0", "::")
MAX_SHOWN = 3  # more than this is a wall of text nobody reads


def reachable_addresses(bind_host: str) -> list[str]:
    """Where a host bound to `bind_host` can be reached: `bind_host` itself unless it is a
    wildcard; else this machine's addresses, the likeliest to work first (private IPv4, other
    IPv4, global IPv6), loopback last (and only when there is nothing else: this machine only)."""
    if bind_host not in WILDCARDS:
        return [bind_host]
    ipv6 = bind_host != "0.0.0.0"  # "::" takes IPv4 too on a dual-stack system
    found = [a for a in machine_addresses() if _valid(a) and (ipv6 or ":" not in a)]
    usable = [a for a in found if not _ip(a).is_loopback and not _ip(a).is_link_local]
    if not usable:
        return ["::1" if bind_host == "::" else "127.0.0.1"]
    return sorted(usable, key=_rank)


def waiting_line(bind_host: str, port: int) -> str:
    """The host's first line: where it waits, as addresses the other player can give `pong join`.
    It starts "waiting for a player on " and names the port (tools/procmatch.py reads it)."""
    if bind_host not in WILDCARDS:
        return f"waiting for a player on {format_endpoint(bind_host, port)}"
    shown = [format_endpoint(a, port) for a in reachable_addresses(bind_host)[:MAX_SHOWN]]
    return f"waiting for a player on port {port}: the other player runs pong join {' or '.join(shown)}"


def join_hint(bind_host: str, port: int) -> str:
    """The same for the window's waiting screen: one short line."""
    first = reachable_addresses(bind_host)[0]
    return f"the other player runs: pong join {format_endpoint(first, port)}"


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text.split("%", 1)[0])


def _rank(address: str) -> tuple[int, str]:
    ip = _ip(address)
    if ip.version == 4:
        return (0 if ip.is_private else 1), address
    return (2 if ip.is_global else 3), address


def _valid(address: str) -> bool:
    try:
        return not _ip(address).is_unspecified
    except ValueError:
        return False
