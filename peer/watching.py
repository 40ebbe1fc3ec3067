"""Spectators: the host's side and the spectator's side of a watching connection. No I/O.

After a WATCH handshake (hello, challenge, auth: no round trip to measure, no seat) the stream
belongs to these two machines:

    H -> S  Ping ...                      while no match has started (keeps the line alive)
    H -> S  MatchInfo(seed, delay, rules, names, netcode, joined_at)
    H -> S  Frames(first, inputs, chain) ...   every confirmed frame from 0, then the live ones
    H -> S  Ping(token) ...  S -> H  Pong(token)   a pong acknowledges every frame sent before its ping
    S -> H  Ping (about once a second), Chat(text), Goodbye
    H -> S  Chat(name, text) ...          every line of the match, relayed
    H -> S  Goodbye(how the match ended, its last frame and chain)

The host sends frames only within a window of what the spectator acknowledged and at most
`TURN_BYTES` a turn, so a catch-up goes out in pieces between frames and a spectator that stops
reading costs a bounded queue; it is dropped `too_slow` when what it was sent goes unacknowledged
for `STALL_MS`, or when, once live, it has not held the whole match for `BACKLOG_MS`. Whatever a
spectator sends beyond chat, pings and its goodbye is its protocol error and ends its own
connection only; bytes beyond a budget (a flood) too. The legal (state, message) pairs of each
side are `HOST_WATCH_TRANSITIONS` and `SPECTATOR_TRANSITIONS`.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from lockstep.chain import CHAIN_SIZE
from peer.errors import RemoteProtocolError
from peer.handshake import Ended, JoinerConfig, JoinerHandshake, JoinerState
from peer.messages import (
    MAX_BATCH_FRAMES,
    Chat,
    Decoder,
    Frames,
    Goodbye,
    MatchInfo,
    Message,
    Ping,
    Pong,
    Purpose,
    Refuse,
    chat_text,
    encode,
    printable,
)

TURN_BYTES = 4096  # the most a host sends one spectator in one turn of its loop
WINDOW_FRAMES = 8 * MAX_BATCH_FRAMES  # frames sent and not acknowledged, at most
PING_EVERY_FRAMES = 2 * MAX_BATCH_FRAMES  # during a catch-up, a ping (an ack request) this often
PING_INTERVAL_MS = 1000
PING_REPLY_MIN_MS = 100  # a spectator's pings are answered at most this often
STALL_MS = 4000  # frames sent and no acknowledgement this long (pings go every second): not reading
BACKLOG_MS = 10_000  # once live, not holding every frame there was this long ago: too slow
MAX_OUTSTANDING_PINGS = 64
# What a spectator may send: a ping a second, a chat line now and then. A bucket of bytes refilled
# at RECEIVE_RATE a second, holding at most RECEIVE_BURST; running dry is a flood.
RECEIVE_RATE = 1024
RECEIVE_BURST = 8192
CHAT_EVERY_MS = 500  # the host relays at most one line this often from one sender; the rest are dropped
_U32 = 0xFFFFFFFF


class MatchLog:
    """Every confirmed frame of the host's match: input bytes and the chain after each frame."""

    def __init__(self, info: MatchInfo) -> None:
        self.info = info
        self.inputs = bytearray()
        self.chains = bytearray()

    @property
    def frames(self) -> int:
        return len(self.inputs)

    def add(self, frame_input: int, chain: bytes) -> None:
        self.inputs.append(frame_input)
        self.chains += chain

    def batch(self, first: int, end: int) -> Frames:
        return Frames(
            first,
            bytes(self.inputs[first:end]),
            bytes(self.chains[CHAIN_SIZE * (end - 1) : CHAIN_SIZE * end]),
        )


# -- the host's side ---------------------------------------------------------------------------------
class WatchState(enum.Enum):
    WAITING = "waiting for the match to start"
    FOLLOWING = "sending the match"
    ENDED = "ended"


@dataclass(frozen=True)
class ChatFrom:
    """A spectator said a line (already made printable and short)."""

    text: str


class HostWatch:
    """One spectator as the host serves it. Bytes and the time in, bytes and events out."""

    def __init__(self, name: str, now_ms: int, silence_ms: int, received: bytes = b"") -> None:
        self.name = name
        self.state = WatchState.WAITING
        self.ended: Ended | None = None
        self.events: list[ChatFrom] = []
        self.log: MatchLog | None = None
        self.joined_at = 0
        self.sent = 0  # the next frame to send
        self.acked = 0  # every frame before this one has reached the spectator
        self.live = False  # it has been sent everything there was when it was admitted, once
        self.bytes_received = 0
        self._silence_ms = silence_ms
        self._now_ms = now_ms
        self._last_heard_ms = now_ms
        self._last_ping_ms = now_ms
        self._last_pong_sent_ms = now_ms - PING_REPLY_MIN_MS
        self._last_chat_ms = now_ms - CHAT_EVERY_MS
        self._unacked_since: int | None = None  # since when something sent waits for its ack
        self._token = 0
        # (token, frames sent when pinged, when, whether those were all the match had then)
        self._pings: deque[tuple[int, int, int, bool]] = deque()
        self._current_at_ms: int | None = None  # when it last held every frame there was (acknowledged)
        self._pinged_at_frame = 0
        self._bucket = RECEIVE_BURST
        self._bucket_ms = now_ms
        self._decoder = Decoder()
        self._outbox = bytearray()
        self.receive_data(received, now_ms)

    # -- the caller's side ----------------------------------------------------------------------
    @property
    def open(self) -> bool:
        return self.state is not WatchState.ENDED

    def data_to_send(self) -> bytes:
        data = bytes(self._outbox)
        self._outbox.clear()
        return data

    def receive_data(self, data: bytes, now_ms: int) -> None:
        """The spectator's bytes (b"" is no news; a closed stream is `closed`)."""
        self._now_ms = now_ms
        if self.state is WatchState.ENDED or not data:
            return
        self.bytes_received += len(data)
        self._bucket = min(RECEIVE_BURST, self._bucket + (now_ms - self._bucket_ms) * RECEIVE_RATE // 1000)
        self._bucket_ms = now_ms
        self._bucket -= len(data)
        if self._bucket < 0:
            self._fail(RemoteProtocolError(f"a spectator sent more than {RECEIVE_RATE} bytes a second"))
            return
        self._last_heard_ms = now_ms
        self._decoder.feed(data)
        try:
            while self.open and (message := self._decoder.next_message()) is not None:
                self.handle(message)
        except RemoteProtocolError as exc:
            self._fail(exc)

    def handle(self, message: Message) -> None:
        """One message from the spectator; one it may not send raises `RemoteProtocolError`."""
        handler = HOST_WATCH_TRANSITIONS.get((self.state, type(message)))
        if handler is None:
            name = type(message).__name__.lower()
            raise RemoteProtocolError(f"a spectator may not send a {name} message while {self.state.value}")
        handler(self, message)

    def closed(self, detail: str) -> None:
        """The stream ended under us."""
        self._end(Ended("peer_timeout", detail, by_remote=True))

    def drop(self, reason: str, detail: str) -> None:
        """The host gives up on this spectator (e.g. `too_slow`): it is told why."""
        if self.open:
            self._say_goodbye(reason, detail=detail)
            self._end(Ended(reason, detail, by_remote=False))

    def start(self, log: MatchLog) -> None:
        """The match began (or was on when the spectator came): tell it what it watches."""
        if self.state is not WatchState.WAITING:
            return
        self.log = log
        self.joined_at = log.frames
        info = log.info
        self._send(
            MatchInfo(info.seed, info.delay_frames, info.rules_id, info.names, info.netcode, self.joined_at)
        )
        self.state = WatchState.FOLLOWING

    def relay(self, name: str, text: str) -> None:
        if self.state is not WatchState.ENDED:
            self._send(Chat(name, text))

    def service(self, now_ms: int) -> None:
        """One turn: the next piece of the match within the window and the turn's budget, pings,
        and the checks that drop a spectator (silent, not reading, too far behind)."""
        self._now_ms = now_ms
        if self.state is WatchState.ENDED:
            return
        log = self.log
        if log is not None:
            self._send_frames(log, now_ms)
            if self._ended_too_slow(log, now_ms):
                return
        if now_ms - self._last_heard_ms > self._silence_ms:
            self._say_goodbye(
                "peer_timeout", detail=f"the host heard nothing from you for {self._silence_ms} ms"
            )
            self._end(Ended("peer_timeout", f"no word from the spectator for {self._silence_ms} ms", False))
            return
        if now_ms - self._last_ping_ms >= PING_INTERVAL_MS or (
            self.sent - self._pinged_at_frame >= PING_EVERY_FRAMES
        ):
            self._ping(now_ms)

    def finish(self, reason: str, frame: int, chain: bytes, detail: str) -> None:
        """The match is over: the rest of it (however much: the kernel takes it, the connection
        closes after) and the host's goodbye."""
        if self.state is WatchState.ENDED:
            return
        log = self.log
        if log is not None:
            while self.sent < log.frames:
                end = min(log.frames, self.sent + MAX_BATCH_FRAMES)
                self._send(log.batch(self.sent, end))
                self.sent = end
        self._say_goodbye(reason, frame, chain, detail)  # the match's end as the host saw it
        self._end(Ended(reason, detail, by_remote=False))

    # -- internals ------------------------------------------------------------------------------
    def _send(self, message: Message) -> None:
        self._outbox += encode(message)

    def _say_goodbye(
        self, reason: str, frame: int = 0, chain: bytes = bytes(CHAIN_SIZE), detail: str = ""
    ) -> None:
        self._send(Goodbye(reason, frame, chain, detail))

    def _send_frames(self, log: MatchLog, now_ms: int) -> None:
        budget = TURN_BYTES
        while budget > 0 and self.sent < log.frames:
            room = self.acked + WINDOW_FRAMES - self.sent
            if room <= 0:
                break
            end = min(log.frames, self.sent + MAX_BATCH_FRAMES, self.sent + room)
            self._send(log.batch(self.sent, end))
            budget -= end - self.sent
            self.sent = end
        if not self.live and self.sent >= self.joined_at:
            self.live = True
            self._current_at_ms = now_ms  # from here it must keep up
        if self.sent <= self.acked:
            self._unacked_since = None
        elif self._unacked_since is None:
            self._unacked_since = now_ms

    def _ended_too_slow(self, log: MatchLog, now_ms: int) -> bool:
        behind = log.frames - self.acked
        if self._unacked_since is not None and now_ms - self._unacked_since > STALL_MS:
            why = f"you acknowledged nothing for {STALL_MS} ms with {behind} frames to go"
        elif self._current_at_ms is not None and now_ms - self._current_at_ms > BACKLOG_MS:
            why = f"you fell {behind} frames behind the match"
        else:
            return False
        self._say_goodbye("too_slow", detail=why)
        self._end(Ended("too_slow", why.replace("you", "the spectator", 1), by_remote=False))
        return True

    def _ping(self, now_ms: int) -> None:
        self._last_ping_ms = now_ms
        self._pinged_at_frame = self.sent
        self._token = (self._token + 1) & _U32
        complete = self.log is not None and self.sent >= self.log.frames
        self._pings.append((self._token, self.sent, now_ms, complete))
        while len(self._pings) > MAX_OUTSTANDING_PINGS:
            self._pings.popleft()
        self._send(Ping(self._token))

    def _on_ping(self, message: Message) -> None:
        assert isinstance(message, Ping)
        if self._now_ms - self._last_pong_sent_ms >= PING_REPLY_MIN_MS:
            self._last_pong_sent_ms = self._now_ms
            self._send(Pong(message.token))

    def _on_pong(self, message: Message) -> None:
        """An acknowledgement: the spectator read everything sent before that ping (TCP keeps
        order). A token we never sent, or one already acknowledged, tells nothing."""
        assert isinstance(message, Pong)
        tokens = [ping[0] for ping in self._pings]
        if message.token not in tokens:
            return
        for _ in range(tokens.index(message.token)):
            self._pings.popleft()  # older pings: their answers were lost or never came
        _, frames, sent_ms, complete = self._pings.popleft()
        if frames > self.acked:
            self.acked = frames
            self._unacked_since = self._now_ms if self.sent > frames else None
        if complete and self.live:
            self._current_at_ms = max(self._current_at_ms or 0, sent_ms)

    def _on_chat(self, message: Message) -> None:
        assert isinstance(message, Chat)
        if message.name:
            raise RemoteProtocolError("a spectator's chat line names a sender")
        text = chat_text(message.text)
        if text and self._now_ms - self._last_chat_ms >= CHAT_EVERY_MS:
            self._last_chat_ms = self._now_ms
            self.events.append(ChatFrom(text))

    def _on_goodbye(self, message: Message) -> None:
        assert isinstance(message, Goodbye)
        self._end(Ended(message.reason, printable(message.detail), by_remote=True))

    def _fail(self, exc: RemoteProtocolError) -> None:
        self._say_goodbye(exc.reason, detail=str(exc))
        self._end(Ended(exc.reason, str(exc), by_remote=False))

    def _end(self, ended: Ended) -> None:
        self.state = WatchState.ENDED
        if self.ended is None:
            self.ended = ended


_HostHandler = Callable[[HostWatch, Message], None]

# What a spectator may send, and when; everything else is its protocol error (its connection ends).
HOST_WATCH_TRANSITIONS: dict[tuple[WatchState, type], _HostHandler] = {
    (WatchState.WAITING, Ping): HostWatch._on_ping,
    (WatchState.WAITING, Pong): HostWatch._on_pong,
    (WatchState.WAITING, Chat): HostWatch._on_chat,
    (WatchState.WAITING, Goodbye): HostWatch._on_goodbye,
    (WatchState.FOLLOWING, Ping): HostWatch._on_ping,
    (WatchState.FOLLOWING, Pong): HostWatch._on_pong,
    (WatchState.FOLLOWING, Chat): HostWatch._on_chat,
    (WatchState.FOLLOWING, Goodbye): HostWatch._on_goodbye,
}


# -- the spectator's side ----------------------------------------------------------------------------
class SpectatorState(enum.Enum):
    HANDSHAKE = "in the handshake"
    ADMITTING = "awaiting the match"
    FOLLOWING = "following the match"
    ENDED = "ended"


@dataclass(frozen=True)
class MatchBegins:
    info: MatchInfo


@dataclass(frozen=True)
class FramesIn:
    frames: Frames


@dataclass(frozen=True)
class ChatIn:
    name: str
    text: str


SpectatorEvent = MatchBegins | FramesIn | ChatIn | Ended


class SpectatorConnection:
    """The spectator's connection: its handshake (a joiner's, purpose WATCH), then the match."""

    def __init__(
        self, config: JoinerConfig, nonce: bytes, now_ms: int, handshake_ms: int, silence_ms: int
    ) -> None:
        self.state = SpectatorState.HANDSHAKE
        self.ended: Ended | None = None
        self.info: MatchInfo | None = None
        self.next_frame = 0  # the first frame not received yet
        self.bytes_received = 0
        self._events: list[SpectatorEvent] = []
        self._decoder = Decoder()
        self._outbox = bytearray()
        self._handshake_ms = handshake_ms
        self._silence_ms = silence_ms
        self._started_ms = now_ms
        self._now_ms = now_ms
        self._last_heard_ms = now_ms
        self._last_ping_ms = now_ms
        self._handshake = JoinerHandshake(
            JoinerConfig(config.key, config.name, Purpose.WATCH), nonce, now_ms, self._send
        )

    @property
    def open(self) -> bool:
        return self.state is not SpectatorState.ENDED

    def data_to_send(self) -> bytes:
        data = bytes(self._outbox)
        self._outbox.clear()
        return data

    def next_event(self) -> SpectatorEvent | None:
        return self._events.pop(0) if self._events else None

    def receive_data(self, data: bytes, now_ms: int) -> None:
        """The host's bytes; b"" means it closed the connection."""
        self._now_ms = now_ms
        if self.state is SpectatorState.ENDED:
            return
        if not data:
            self._end(Ended("peer_timeout", "the host closed the connection without a goodbye", True))
            return
        self.bytes_received += len(data)
        self._decoder.feed(data)
        try:
            while self.open and (message := self._decoder.next_message()) is not None:
                self._last_heard_ms = now_ms
                self.handle(message)
        except RemoteProtocolError as exc:
            self._send(Goodbye(exc.reason, 0, bytes(CHAIN_SIZE), str(exc)))
            self._end(Ended(exc.reason, str(exc), by_remote=False))

    def tick(self, now_ms: int) -> None:
        """Deadlines and the heartbeat."""
        self._now_ms = now_ms
        if self.state is SpectatorState.ENDED:
            return
        if self.state is SpectatorState.HANDSHAKE and now_ms - self._started_ms > self._handshake_ms:
            self._handshake.timed_out(f"no complete handshake within {self._handshake_ms} ms")
            self._end(self._handshake.ended or Ended("handshake_timeout", "", False))
            return
        if now_ms - self._last_heard_ms > self._silence_ms:
            self._send(
                Goodbye("peer_timeout", 0, bytes(CHAIN_SIZE), f"heard nothing for {self._silence_ms} ms")
            )
            self._end(Ended("peer_timeout", f"no word from the host for {self._silence_ms} ms", False))
            return
        if self.state is not SpectatorState.HANDSHAKE and now_ms - self._last_ping_ms >= PING_INTERVAL_MS:
            self._last_ping_ms = now_ms
            self._send(Ping(now_ms & _U32))

    def chat(self, text: str) -> None:
        line = chat_text(text)
        if line and self.state in (SpectatorState.ADMITTING, SpectatorState.FOLLOWING):
            self._send(Chat("", line))

    def leave(self, reason: str, detail: str) -> None:
        """Go (quit, or a desync found here): the host drops this connection only."""
        if self.state is SpectatorState.ENDED:
            return
        self._send(Goodbye(reason, self.next_frame, bytes(CHAIN_SIZE), detail))
        self._end(Ended(reason, detail, by_remote=False), report=False)

    # -- internals ------------------------------------------------------------------------------
    def _send(self, message: Message) -> None:
        self._outbox += encode(message)

    def handle(self, message: Message) -> None:
        """One message from the host: the handshake's table first, then the spectator's; one the
        host may not send raises `RemoteProtocolError`."""
        if self.state is SpectatorState.HANDSHAKE:
            handshake = self._handshake
            handshake.handle(message)
            if handshake.ended is not None:
                self._end(handshake.ended)
            elif handshake.state is JoinerState.AWAIT_WELCOME:
                self.state = SpectatorState.ADMITTING  # our proof went out: the rest is the match
            return
        handler = SPECTATOR_TRANSITIONS.get((self.state, type(message)))
        if handler is None:
            raise RemoteProtocolError(
                f"unexpected {type(message).__name__.lower()} message while {self.state.value}"
            )
        handler(self, message)

    def _on_match_info(self, message: Message) -> None:
        assert isinstance(message, MatchInfo)
        self.info = message
        self.state = SpectatorState.FOLLOWING
        self._events.append(MatchBegins(message))

    def _on_frames(self, message: Message) -> None:
        assert isinstance(message, Frames)
        if message.first != self.next_frame:
            raise RemoteProtocolError(
                f"frames from {message.first} sent where frame {self.next_frame} was due"
            )
        self.next_frame += len(message.inputs)
        self._events.append(FramesIn(message))

    def _on_ping(self, message: Message) -> None:
        assert isinstance(message, Ping)
        self._send(Pong(message.token))  # the host's acknowledgement requests: every one is answered

    def _on_pong(self, message: Message) -> None:
        assert isinstance(message, Pong)

    def _on_chat(self, message: Message) -> None:
        assert isinstance(message, Chat)
        self._events.append(ChatIn(printable(message.name), chat_text(message.text)))

    def _on_goodbye(self, message: Message) -> None:
        assert isinstance(message, Goodbye)
        self._end(Ended(message.reason, printable(message.detail), True, message.frame, message.chain))

    def _on_refuse(self, message: Message) -> None:
        self._handshake.handle(message)  # a refusal as the handshake words it (spectators_full, ...)
        if self._handshake.ended is not None:
            self._end(self._handshake.ended)

    def _end(self, ended: Ended, report: bool = True) -> None:
        self.state = SpectatorState.ENDED
        if self.ended is None:
            self.ended = ended
            if report:
                self._events.append(ended)


_SpectatorHandler = Callable[[SpectatorConnection, Message], None]

# What the host may send a spectator once its proof went out; the handshake's own table comes first.
SPECTATOR_TRANSITIONS: dict[tuple[SpectatorState, type], _SpectatorHandler] = {
    (SpectatorState.ADMITTING, MatchInfo): SpectatorConnection._on_match_info,
    (SpectatorState.ADMITTING, Ping): SpectatorConnection._on_ping,
    (SpectatorState.ADMITTING, Pong): SpectatorConnection._on_pong,
    (SpectatorState.ADMITTING, Chat): SpectatorConnection._on_chat,
    (SpectatorState.ADMITTING, Refuse): SpectatorConnection._on_refuse,
    (SpectatorState.ADMITTING, Goodbye): SpectatorConnection._on_goodbye,
    (SpectatorState.FOLLOWING, Frames): SpectatorConnection._on_frames,
    (SpectatorState.FOLLOWING, Ping): SpectatorConnection._on_ping,
    (SpectatorState.FOLLOWING, Pong): SpectatorConnection._on_pong,
    (SpectatorState.FOLLOWING, Chat): SpectatorConnection._on_chat,
    (SpectatorState.FOLLOWING, Goodbye): SpectatorConnection._on_goodbye,
}
