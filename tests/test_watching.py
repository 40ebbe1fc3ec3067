"""Spectators in memory: the host's and the spectator's machines joined by a byte pipe, with a
simulated clock. Catch-up in pieces, every checkpoint met, the end compared, and whatever a bad
spectator does ends that spectator's connection only."""

from __future__ import annotations

import pytest

from lockstep.game import Game
from lockstep.rules import Rules, rules_id
from lockstep.script import random_inputs
from peer.handshake import Ended, HostConfig, JoinerConfig
from peer.messages import (
    MAX_CHAT_BYTES,
    MAX_PAYLOAD,
    Chat,
    Frames,
    Input,
    MatchInfo,
    Netcode,
    Ping,
    Pong,
    Purpose,
    encode,
)
from peer.protocol import Connection, Established, Role
from peer.watching import (
    BACKLOG_MS,
    RECEIVE_BURST,
    STALL_MS,
    TURN_BYTES,
    WINDOW_FRAMES,
    ChatFrom,
    ChatIn,
    FramesIn,
    HostWatch,
    MatchBegins,
    MatchLog,
    SpectatorConnection,
    SpectatorState,
    WatchState,
)

RULES = Rules()
HOST_NONCE, SPECTATOR_NONCE = b"h" * 16, b"s" * 16
NOW = 10_000
TURN_MS = 5
SEED = 7


def admitted(key: bytes | None = None, spectators_full: str | None = None, watch: bool = True):
    """Run a WATCH handshake through the host's `Connection` (as the waiting room does); returns
    the host's HostWatch (None when refused) and the spectator's connection."""
    purposes = frozenset({Purpose.PLAY, Purpose.WATCH} if watch else {Purpose.PLAY})
    config = HostConfig(RULES, SEED, 2, key=key, purposes=purposes, spectators_full=spectators_full)
    host = Connection(Role.HOST, NOW, HOST_NONCE, host=config)
    spectator = SpectatorConnection(JoinerConfig(key=key, name="Sam"), SPECTATOR_NONCE, NOW, 5000, 5000)
    for _ in range(3):
        host.receive_data(spectator.data_to_send(), NOW)
        while (event := host.next_event()) is not None:
            if isinstance(event, Established):
                assert event.purpose is Purpose.WATCH and event.remote_name == "Sam"
                return HostWatch(event.remote_name, NOW, 5000, host.take_rest()), spectator
        spectator.receive_data(host.data_to_send(), NOW)
    return None, spectator


def match_log(frames: int) -> MatchLog:
    info = MatchInfo(SEED, 2, rules_id(RULES), ("Hana", "Jo"), Netcode.LOCKSTEP, 0)
    log = MatchLog(info)
    game = Game(RULES, SEED)
    for frame_input in random_inputs(3, frames):
        log.add(frame_input, game.advance(frame_input))
    return log


class Follower:
    """What `pong watch` does with the events: re-simulate and meet every checkpoint."""

    def __init__(self, spectator: SpectatorConnection) -> None:
        self.spectator = spectator
        self.game: Game | None = None
        self.checkpoints = 0
        self.chat: list[tuple[str, str]] = []
        self.ended: Ended | None = None

    def drain(self) -> None:
        while (event := self.spectator.next_event()) is not None:
            if isinstance(event, MatchBegins):
                self.game = Game(RULES, event.info.seed)
                self.joined_at = event.info.joined_at
            elif isinstance(event, FramesIn):
                assert self.game is not None
                assert self.game.run(event.frames.inputs) == event.frames.chain
                self.checkpoints += 1
            elif isinstance(event, ChatIn):
                self.chat.append((event.name, event.text))
            else:
                assert isinstance(event, Ended)
                self.ended = event


class Pipe:
    """Turns of the host's loop with a simulated clock; counts the bytes of each turn."""

    def __init__(self, watch: HostWatch, spectator: SpectatorConnection) -> None:
        self.watch, self.spectator = watch, spectator
        self.follower = Follower(spectator)
        self.now = NOW
        self.turn_bytes: list[int] = []
        self.reading = True

    def turn(self) -> None:
        self.now += TURN_MS
        self.watch.service(self.now)
        out = self.watch.data_to_send()
        self.turn_bytes.append(len(out))
        if self.reading:
            if out:  # (no bytes at all would mean the host closed the connection)
                self.spectator.receive_data(out, self.now)
            self.spectator.tick(self.now)
            self.watch.receive_data(self.spectator.data_to_send(), self.now)
            self.follower.drain()


def test_a_spectator_who_comes_mid_match_catches_up_in_pieces_meets_every_checkpoint_and_the_end():
    watch, spectator = admitted()
    assert watch is not None and spectator.state is SpectatorState.ADMITTING
    log = match_log(20_000)
    watch.start(log)
    pipe = Pipe(watch, spectator)
    while spectator.next_frame < log.frames:
        pipe.turn()
        assert len(pipe.turn_bytes) < 1000, "the catch-up never ends"
    # In pieces: many turns, none above the turn's budget (one batch may finish it) and a ping.
    assert len(pipe.turn_bytes) >= log.frames // (TURN_BYTES + MAX_PAYLOAD)
    assert max(pipe.turn_bytes) <= TURN_BYTES + 2 * MAX_PAYLOAD
    assert pipe.follower.joined_at == 20_000 and watch.live
    # Live frames follow as they come.
    game = Game(RULES, SEED)
    game.run(log.inputs)
    for frame_input in random_inputs(4, 300):
        log.add(frame_input, game.advance(frame_input))
        pipe.turn()
        pipe.turn()
    assert spectator.next_frame == log.frames
    watch.finish("finished", log.frames, game.chain, "match over")
    spectator.receive_data(watch.data_to_send(), pipe.now)
    pipe.follower.drain()
    follower = pipe.follower
    assert follower.game is not None and follower.game.chain == game.chain
    assert follower.checkpoints >= 20_300 // 1012
    ended = follower.ended
    assert ended is not None and ended.reason == "finished" and ended.by_remote
    assert (ended.frame, ended.chain) == (log.frames, game.chain)


def test_a_spectator_before_the_match_waits_on_pings_then_follows_from_frame_0():
    watch, spectator = admitted()
    assert watch is not None
    pipe = Pipe(watch, spectator)
    for _ in range(3 * 5000 // TURN_MS):  # three silence timeouts of waiting
        pipe.turn()
    assert watch.state is WatchState.WAITING and spectator.state is SpectatorState.ADMITTING
    full = match_log(100)
    log = MatchLog(full.info)
    watch.start(log)
    for frame in range(100):
        log.add(full.inputs[frame], bytes(full.chains[8 * frame : 8 * frame + 8]))
        pipe.turn()
    assert pipe.follower.joined_at == 0 and spectator.next_frame == 100
    assert pipe.follower.checkpoints >= 50  # live: a batch for (about) every frame


def test_a_spectator_that_stops_reading_is_dropped_too_slow_with_a_bounded_queue():
    watch, spectator = admitted()
    assert watch is not None
    watch.start(match_log(50_000))
    pipe = Pipe(watch, spectator)
    pipe.reading = False
    while watch.open:
        pipe.turn()
        assert pipe.now - NOW <= STALL_MS + 1000
    assert watch.ended is not None and watch.ended.reason == "too_slow"
    # Never more than the window went its way (plus framing, pings and the goodbye).
    assert sum(pipe.turn_bytes) <= WINDOW_FRAMES + 200 * 16


def test_a_live_spectator_on_a_link_too_slow_for_the_match_is_dropped_too_slow():
    watch, spectator = admitted()
    assert watch is not None
    full = match_log(3000)
    log = MatchLog(full.info)
    watch.start(log)
    follower = Follower(spectator)
    now, in_flight = NOW, b""
    for frame in range(3000):  # 60 Hz, over a link that carries 4 bytes a frame (240 B/s)
        now += 16
        log.add(full.inputs[frame], bytes(full.chains[8 * frame : 8 * frame + 8]))
        watch.service(now)
        in_flight += watch.data_to_send()
        if in_flight:
            spectator.receive_data(in_flight[:4], now)
            in_flight = in_flight[4:]
        spectator.tick(now)
        watch.receive_data(spectator.data_to_send(), now)
        follower.drain()
        if not watch.open:
            break
    assert watch.ended is not None and watch.ended.reason == "too_slow", watch.ended
    assert spectator.next_frame < log.frames and now - NOW <= BACKLOG_MS + STALL_MS + 2000


def test_a_spectator_that_reads_all_it_is_sent_but_never_holds_the_whole_match_is_dropped():
    """A --fast match outruns what a spectator is sent a turn: it acknowledges everything, yet never
    holds every frame there was; after `BACKLOG_MS` it is too slow."""
    watch, spectator = admitted()
    assert watch is not None
    log = MatchLog(match_log(0).info)
    watch.start(log)
    now = NOW
    while watch.open:
        now += 50
        for _ in range(6000):  # more frames a turn than a turn's budget sends
            log.add(0, bytes(8))
        watch.service(now)
        spectator.receive_data(watch.data_to_send(), now)
        while spectator.next_event() is not None:
            pass
        spectator.tick(now)
        watch.receive_data(spectator.data_to_send(), now)
        assert now - NOW <= BACKLOG_MS + 1000
    assert watch.ended is not None and watch.ended.reason == "too_slow"
    assert "behind" in watch.ended.detail and now - NOW > BACKLOG_MS


def test_a_live_spectator_that_keeps_up_is_never_dropped():
    watch, spectator = admitted()
    assert watch is not None
    full = match_log(1200)
    log = MatchLog(full.info)
    watch.start(log)
    pipe = Pipe(watch, spectator)
    for frame in range(1200):  # 20 s at 60 Hz; a turn every 5 ms delivers everything
        log.add(full.inputs[frame], bytes(full.chains[8 * frame : 8 * frame + 8]))
        for _ in range(3):
            pipe.turn()
    assert watch.open and spectator.next_frame == 1200 and pipe.follower.checkpoints > 100


@pytest.mark.parametrize(
    "junk",
    [
        encode(Input(1, 0, 0)),
        encode(Frames(0, bytes(3), bytes(8))),
        encode(Chat("Mallory", "I name myself")),
        b"\xff\xff\xff",
        bytes(RECEIVE_BURST + 1),  # a flood, all at once
    ],
    ids=["input", "frames", "named-chat", "bad-tag", "flood"],
)
def test_junk_from_a_spectator_ends_its_own_connection_with_a_protocol_error(junk):
    watch, _ = admitted()
    assert watch is not None
    watch.start(match_log(100))
    watch.receive_data(junk, NOW + 1)
    assert not watch.open and watch.ended is not None and watch.ended.reason == "protocol_error"
    assert b"\x89" in watch.data_to_send()  # it is told (a goodbye) before its connection goes


def test_lies_in_a_spectators_pongs_acknowledge_nothing():
    watch, _ = admitted()
    assert watch is not None
    watch.start(match_log(3000))
    watch.service(NOW + 1)
    for token in (0, 12345, 0xFFFFFFFF):
        watch.receive_data(encode(Pong(token)), NOW + 2)
    assert watch.acked == 0 and watch.open


def test_a_spectators_pings_are_answered_at_most_every_100_ms():
    watch, _ = admitted()
    assert watch is not None
    watch.receive_data(b"".join(encode(Ping(i)) for i in range(50)), NOW)
    assert watch.data_to_send().count(b"\x88") == 1


def test_chat_from_a_spectator_is_one_short_printable_line_and_rate_limited():
    watch, spectator = admitted()
    assert watch is not None
    spectator.chat("hello\x1b[2J\nworld " + "é" * 200)
    watch.receive_data(spectator.data_to_send(), NOW)
    spectator.chat("too soon")
    watch.receive_data(spectator.data_to_send(), NOW + 100)
    assert len(watch.events) == 1
    (line,) = watch.events
    assert isinstance(line, ChatFrom)
    assert line.text.startswith("hello?[2J world é") and "\n" not in line.text
    assert len(line.text.encode()) <= MAX_CHAT_BYTES
    spectator.chat("later")
    watch.receive_data(spectator.data_to_send(), NOW + 600)
    assert [event.text for event in watch.events[1:]] == ["later"]  # type: ignore[union-attr]


def test_the_host_relays_chat_with_the_senders_name_and_the_spectator_shows_it_safely():
    watch, spectator = admitted()
    assert watch is not None
    follower = Follower(spectator)
    watch.relay("Hana\x07", "gg\x1b]0;pwned\x07")
    spectator.receive_data(watch.data_to_send(), NOW)
    follower.drain()
    assert follower.chat == [("Hana?", "gg?]0;pwned?")]


def test_spectators_beyond_the_limit_are_refused_spectators_full():
    watch, spectator = admitted(spectators_full="this host already has its 8 spectators")
    assert watch is None
    assert spectator.ended is not None and spectator.ended.reason == "spectators_full"
    assert spectator.next_event() == spectator.ended


def test_a_host_that_takes_no_spectators_refuses_them_unsupported():
    watch, spectator = admitted(watch=False)
    assert watch is None and spectator.ended is not None and spectator.ended.reason == "unsupported"


def test_a_spectator_needs_the_hosts_key():
    watch, spectator = admitted(key=b"secret")
    assert watch is not None
    watch, spectator = admitted(key=None)
    assert watch is not None
    config = HostConfig(RULES, SEED, 2, key=b"secret", purposes=frozenset({Purpose.WATCH}))
    host = Connection(Role.HOST, NOW, HOST_NONCE, host=config)
    spectator = SpectatorConnection(JoinerConfig(name="Sam"), SPECTATOR_NONCE, NOW, 5000, 5000)
    host.receive_data(spectator.data_to_send(), NOW)
    host.next_event()
    spectator.receive_data(host.data_to_send(), NOW)
    assert spectator.ended is not None and spectator.ended.reason == "auth_failed"


def test_a_host_that_sends_frames_out_of_order_is_the_spectators_protocol_error():
    watch, spectator = admitted()
    assert watch is not None
    watch.start(match_log(10))
    spectator.receive_data(watch.data_to_send(), NOW)
    spectator.receive_data(encode(Frames(5, bytes(3), bytes(8))), NOW)
    assert spectator.ended is not None and spectator.ended.reason == "protocol_error"


def test_the_joiner_learns_how_many_watch_and_a_host_hears_no_such_thing():
    from peer.errors import RemoteProtocolError
    from peer.messages import Watchers
    from peer.playing import PlayingConnection

    est = Established(RULES, SEED, 2, 1, "Jo", "Hana", 10, remote_inputs_from=2)
    joiner = PlayingConnection(est, False, NOW, 5000, 1000, [].append, [])
    joiner.handle(Watchers(3), NOW)
    assert joiner.watchers == 3
    host = PlayingConnection(est, True, NOW, 5000, 1000, [].append, [])
    with pytest.raises(RemoteProtocolError):
        host.handle(Watchers(3), NOW)
