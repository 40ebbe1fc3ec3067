"""Argument types shared by the commands: each rejects bad values with a one-line argparse error.

Whole numbers are decimal (leading zeros allowed: `--port 08080`) or carry a 0x, 0o or 0b prefix
(`--seed 0xC0FFEE`). Addresses are `HOST:PORT`, `[IPv6]:PORT`, or a bare IPv6 address; where a
port may be left out, it is pong's default port.
"""

from __future__ import annotations

import argparse
import ipaddress
import re

DEFAULT_PORT = 7777  # where `pong host` listens and `pong join HOST` connects unless told otherwise
SYNCTEST_MAX_FRAMES = 10_000_000  # synctest holds every frame's input in memory (and takes a while)


def whole_number(text: str, what: str) -> int:
    """`text` as an int: decimal, or with a 0x/0o/0b prefix; anything else is an argparse error."""
    text = text.strip()
    for base in (10, 0):
        try:
            return int(text, base)
        except ValueError:
            pass
    raise argparse.ArgumentTypeError(f"{what} must be a whole number, not {text!r}")


def int_in(text: str, low: int, high: int, what: str) -> int:
    value = whole_number(text, what)
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{what} must be between {low} and {high}, not {value}")
    return value


def seed(text: str) -> int:
    return int_in(text, 0, (1 << 64) - 1, "seed")


def frames(text: str) -> int:
    return int_in(text, 1, 1 << 40, "frames")


def synctest_frames(text: str) -> int:
    return int_in(text, 1, SYNCTEST_MAX_FRAMES, "frames")


def positive(text: str) -> int:
    return int_in(text, 1, 1 << 31, "value")


def points(text: str) -> int:
    return int_in(text, 1, 999, "points")


def milliseconds(text: str) -> int:
    return int_in(text, 0, 600_000, "milliseconds")


def rate(text: str) -> int:
    return int_in(text, 1, 1 << 40, "rate")


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seconds must be a number, not {text!r}") from None
    if not 0 < value <= 7 * 24 * 3600:
        raise argparse.ArgumentTypeError(f"seconds must be positive and at most a week, not {text}")
    return value


def port(text: str) -> int:
    """A port to listen on: 0..65535, where 0 picks a free one."""
    return int_in(text, 0, 65535, "port")


def _split_address(text: str) -> tuple[str, str | None]:
    """(host, port text or None): HOST:PORT, [IPv6]:PORT, [IPv6], a bare IPv6 address, or HOST."""
    if text.startswith("["):
        end = text.find("]")
        rest = text[end + 1 :] if end > 0 else None
        if rest is None or (rest and not rest.startswith(":")):
            raise argparse.ArgumentTypeError(f"expected [IPv6]:PORT, not {text!r}")
        return text[1:end], rest[1:] if rest else None
    if text.count(":") > 1:  # a bare IPv6 address (its last group is no port), or a typo
        address, _, scope = text.partition("%")
        try:
            if ":" in scope:  # fe80::1%eth0:7777 wants brackets: [fe80::1%eth0]:7777
                raise ValueError(scope)
            ipaddress.IPv6Address(address)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected HOST:PORT (with [...] around an IPv6 host), not {text!r}"
            ) from None
        return text, None
    host, sep, port_text = text.partition(":")
    return host, port_text if sep else None


LOCAL_HOST = "127.0.0.1"  # `pong join :7777` joins this machine
# What the system's resolver reads as an IPv4 address though it is no dotted quad: "7777" is
# 0.0.30.97, "127.1" is 127.0.0.1, "0x7f000001" too. Nobody means those; refused before any dial.
_LOOSE_IPV4 = re.compile(r"(0[xX][0-9a-fA-F]*|[0-9]+)(\.(0[xX][0-9a-fA-F]*|[0-9]*))*")


def _check_host(host: str, text: str) -> None:
    if not _LOOSE_IPV4.fullmatch(host):
        return
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        if host.isdigit() and 0 < int(host) <= 65535 and host == text.strip():
            raise argparse.ArgumentTypeError(
                f"{host} is a port, not an address: use {LOCAL_HOST}:{int(host)} for this machine "
                f"(or HOST:{int(host)} for another)"
            ) from None
        raise argparse.ArgumentTypeError(
            f"{host!r} is not an address: write an IPv4 address in full (like 192.168.1.20) or a name"
        ) from None


def _address(text: str, default_port: int | None, empty_host: str | None = None) -> tuple[str, int]:
    host, port_text = _split_address(text.strip())
    if not host and port_text and empty_host is not None:
        host = empty_host
    if not host:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, not {text!r}")
    _check_host(host, text)
    if port_text is None:
        if default_port is None:
            raise argparse.ArgumentTypeError(
                f"must be HOST:PORT (with [...] around an IPv6 host), not {text!r}"
            )
        return host, default_port
    value = int_in(port_text, 0, 65535, "port")
    if value == 0:
        raise argparse.ArgumentTypeError("cannot connect to port 0")
    return host, value


def address(text: str) -> tuple[str, int]:
    """Where to join: HOST:PORT, [IPv6]:PORT, :PORT (this machine), or a host alone (port 7777).
    Port 0 is refused, and so is a bare number (a port, not an address)."""
    return _address(text, DEFAULT_PORT, empty_host=LOCAL_HOST)


def host_port(text: str) -> tuple[str, int]:
    """Where to connect, port required: HOST:PORT or [IPv6]:PORT. Port 0 is refused."""
    return _address(text, None)
