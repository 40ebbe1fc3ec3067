"""Two peers in one process over an in-memory link: the test bed of the protocol and the engine.

Bytes move only when the caller says so, with a simulated clock, so tests and benches can split,
merge and delay them at will, reproducibly. The TCP session runs the very same `MatchPeer`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from lockstep.rollback import DEFAULT_MAX_ROLLBACK
from lockstep.rules import Rules
from peer.match import InputSource, MatchPeer
from peer.messages import Netcode, Purpose
from peer.perturb import GameFactory, pong_game
from peer.protocol import Connection, HostConfig, JoinerConfig, Role, Timeouts


@dataclass
class Link:
    """One direction of a connection: chunks in flight, each with the time it arrives."""

    latency_ms: int = 0
    in_flight: deque[tuple[int, bytes]] = field(default_factory=deque)
    bytes_carried: int = 0

    def send(self, data: bytes, now_ms: int) -> None:
        if data:
            self.in_flight.append((now_ms + self.latency_ms, data))
            self.bytes_carried += len(data)

    def deliver(self, now_ms: int) -> bytes:
        out = bytearray()
        while self.in_flight and self.in_flight[0][0] <= now_ms:
            out += self.in_flight.popleft()[1]
        return bytes(out)


def make_pair(
    rules: Rules,
    seed: int,
    *,
    delay_frames: int | None = None,
    host_key: bytes | None = None,
    joiner_key: bytes | None = None,
    host_desync_at: int | None = None,
    joiner_desync_at: int | None = None,
    host_game: GameFactory | None = None,
    joiner_game: GameFactory | None = None,
    chain_every: int = 60,
    timeouts: Timeouts | None = None,
    now_ms: int = 0,
    reconnect_ms: int = 0,
    netcode: Netcode = Netcode.LOCKSTEP,
    max_rollback: int = DEFAULT_MAX_ROLLBACK,
) -> tuple[MatchPeer, MatchPeer]:
    """A host and a joiner whose connections are ready to exchange bytes (nonces fixed).

    Each side plays the game its factory makes from the handshake (Pong when None), whose `rules`
    and `seed` are these either way. The host picks the `netcode`; `max_rollback` is both sides'."""
    timeouts = timeouts or Timeouts()
    host = MatchPeer(
        Connection(
            Role.HOST,
            now_ms,
            b"H" * 16,
            host=HostConfig(rules, seed, delay_frames, host_key, "host", netcode=netcode),
            timeouts=timeouts,
        ),
        game_factory=host_game or pong_game(host_desync_at),
        chain_every=chain_every,
        reconnect_ms=reconnect_ms,
        max_rollback=max_rollback,
    )
    joiner = MatchPeer(
        Connection(
            Role.JOINER, now_ms, b"J" * 16, joiner=JoinerConfig(joiner_key, "joiner"), timeouts=timeouts
        ),
        game_factory=joiner_game or pong_game(joiner_desync_at),
        chain_every=chain_every,
        reconnect_ms=reconnect_ms,
        max_rollback=max_rollback,
    )
    return host, joiner


@dataclass
class PairRun:
    host: MatchPeer
    joiner: MatchPeer
    to_host: Link
    to_joiner: Link
    ticks: int
    host_stalls: int
    joiner_stalls: int


def run_pair(
    host: MatchPeer,
    joiner: MatchPeer,
    host_input: InputSource,
    joiner_input: InputSource,
    *,
    one_way_ms: int = 0,
    tick_ms: int = 16,
    max_ticks: int = 1_000_000,
    drops: Mapping[int, int] | None = None,
    key: bytes | None = None,
    start_ms: int = 0,
) -> PairRun:
    """Play both peers at a fixed tick over links with the given one-way latency, until both end.

    `drops` maps a tick to how many ticks the link then stays down: at that tick whatever is in flight
    is lost and both sides see the connection end without a goodbye; when it comes back the joiner
    takes its seat back over a new connection (with `key`, the match's key), as after a real drop.
    """
    to_host, to_joiner = Link(one_way_ms), Link(one_way_ms)
    host_stalls = joiner_stalls = 0
    now = start_ms
    ticks = 0
    back_at: int | None = None
    while ticks < max_ticks:
        ticks += 1
        now += tick_ms
        if drops and ticks in drops:
            to_host.in_flight.clear()
            to_joiner.in_flight.clear()
            host.receive_data(b"", now)
            joiner.receive_data(b"", now)
            back_at = ticks + drops[ticks]
        if back_at is not None and ticks >= back_at:
            back_at = None
            take_seat_back(host, joiner, now, key, ticks)
        for peer, link in ((host, to_host), (joiner, to_joiner)):
            data = link.deliver(now)
            if data:
                peer.receive_data(data, now)
        # A stall: a tick on which the game could not move for want of the peer's input.
        host_stalls += not host.update(now, host_input) and host.waiting_for_peer
        joiner_stalls += not joiner.update(now, joiner_input) and joiner.waiting_for_peer
        to_joiner.send(host.data_to_send(), now)
        to_host.send(joiner.data_to_send(), now)
        if host.finished and joiner.finished:
            break
    # Deliver what is still in flight (the last goodbyes) so both sides see the whole story.
    now += max(one_way_ms, 1)
    for peer, link in ((host, to_host), (joiner, to_joiner)):
        data = link.deliver(now)
        if data:
            peer.receive_data(data, now)
    return PairRun(host, joiner, to_host, to_joiner, ticks, host_stalls, joiner_stalls)


def take_seat_back(host: MatchPeer, joiner: MatchPeer, now: int, key: bytes | None, tick: int) -> None:
    """New connections for both sides after a drop, as the joiner's redial and the host's listener
    make them (`tick` makes their nonces fresh)."""
    joiner_seat, host_seat = joiner.seat(), host.seat()
    if joiner_seat is None or host_seat is None:
        return  # a side whose match is over has nothing to resume
    nonce = tick.to_bytes(16, "little")
    host.reconnect(
        Connection(
            Role.HOST,
            now,
            b"h" + nonce[:15],
            host=HostConfig(
                host_seat.established.rules,
                host_seat.established.seed,
                key=key,
                purposes=frozenset({Purpose.RESUME}),
                seat=host.seat,
            ),
            timeouts=host.connection.timeouts,
        ),
        now,
    )
    joiner.reconnect(
        Connection(
            Role.JOINER,
            now,
            b"j" + nonce[:15],
            joiner=JoinerConfig(key, joiner_seat.established.local_name, Purpose.RESUME, joiner_seat),
            timeouts=joiner.connection.timeouts,
        ),
        now,
    )
