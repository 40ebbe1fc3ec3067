"""One connection, h11-style: bytes and `now_ms` in, events and bytes out. No I/O.

A `Connection` decodes the stream and routes each message to the state machine in charge: first the
handshake of its role (`peer.handshake`), then, once that yields `Established`, the playing connection
(`peer.playing`), which takes over the rest of the same stream. Each machine keeps its legal
(state, message) pairs in one table.

Errors blame a side: `RemoteProtocolError` when the peer's bytes are bad (we then queue a refusal or
goodbye saying so), `LocalProtocolError` when the caller misuses this object. After an error, or once
the connection has ended, it stays that way: every later call raises or reports the same end.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from peer.errors import LocalProtocolError, RemoteProtocolError
from peer.handshake import (
    Ended,
    Established,
    HostConfig,
    HostHandshake,
    JoinerConfig,
    JoinerHandshake,
)
from peer.messages import (
    NONCE_SIZE,
    ChainCheck,
    Chat,
    Decoder,
    Goodbye,
    Message,
    Purpose,
    Refuse,
    Watchers,
    encode,
    encode_input,
)
from peer.playing import PlayingConnection, PlayState, RemoteChain, RemoteChat, RemoteInput

__all__ = [
    "Connection",
    "Ended",
    "Established",
    "HostConfig",
    "JoinerConfig",
    "Phase",
    "ProtocolEvent",
    "RemoteChain",
    "RemoteChat",
    "RemoteInput",
    "Role",
    "Timeouts",
    "refusal_bytes",
]

DEFAULT_HANDSHAKE_TIMEOUT_MS = 5000
DEFAULT_SILENCE_TIMEOUT_MS = 5000
DEFAULT_PING_INTERVAL_MS = 1000


class Role(enum.Enum):
    HOST = "host"
    JOINER = "joiner"


class Phase(enum.Enum):
    HANDSHAKE = "handshake"
    PLAYING = "playing"
    CLOSING = "closing"  # we said goodbye and still listen for the peer's
    ENDED = "ended"


@dataclass(frozen=True)
class Timeouts:
    handshake_ms: int = DEFAULT_HANDSHAKE_TIMEOUT_MS
    silence_ms: int = DEFAULT_SILENCE_TIMEOUT_MS
    ping_interval_ms: int = DEFAULT_PING_INTERVAL_MS


ProtocolEvent = Established | RemoteInput | RemoteChain | RemoteChat | Ended


def refusal_bytes(reason: str, detail: str) -> bytes:
    """What a host sends to turn a connection away before any handshake state exists for it."""
    return encode(Refuse(reason, detail))


class Connection:
    def __init__(
        self,
        role: Role,
        now_ms: int,
        nonce: bytes,
        host: HostConfig | None = None,
        joiner: JoinerConfig | None = None,
        timeouts: Timeouts = Timeouts(),
    ) -> None:
        if len(nonce) != NONCE_SIZE:
            raise LocalProtocolError(f"a nonce is {NONCE_SIZE} bytes")
        if (role is Role.HOST) != (host is not None) or (role is Role.JOINER) != (joiner is not None):
            raise LocalProtocolError("a host needs a HostConfig, a joiner a JoinerConfig")
        self.role = role
        self.timeouts = timeouts
        self._decoder = Decoder()
        self._outbox = bytearray()
        self._events: list[object] = []
        self._error: RemoteProtocolError | None = None
        self._ended: Ended | None = None
        self._started_ms = now_ms
        self._last_received_ms = now_ms
        self._last_progress_ms = now_ms
        self._now_ms = now_ms
        self.bytes_sent = 0
        self.bytes_received = 0
        self.handshake: HostHandshake | JoinerHandshake
        if host is not None:
            self.handshake = HostHandshake(host, nonce, now_ms, self._send)
        else:
            assert joiner is not None
            self.handshake = JoinerHandshake(joiner, nonce, now_ms, self._send)
        self.playing: PlayingConnection | None = None

    # -- state ------------------------------------------------------------------------------------
    @property
    def phase(self) -> Phase:
        if self._ended is not None or self._error is not None:
            return Phase.ENDED
        if self.playing is None:
            return Phase.HANDSHAKE
        return Phase.PLAYING if self.playing.sending else Phase.CLOSING

    @property
    def established(self) -> Established | None:
        return self.playing.established if self.playing is not None else None

    @property
    def rtt_ms(self) -> int | None:
        return self.playing.rtt_ms if self.playing is not None else self.handshake.rtt_ms

    @property
    def last_heard_ms(self) -> int:
        """When the peer last sent anything (when the connection began, if it never did)."""
        return self._last_received_ms

    @property
    def last_progress_ms(self) -> int:
        """When the peer's last complete message arrived (when the connection began, if none did):
        a trickle of bytes that never completes a message is no progress."""
        return self._last_progress_ms

    @property
    def ended(self) -> Ended | None:
        return self._ended

    # -- output -----------------------------------------------------------------------------------
    def data_to_send(self) -> bytes:
        """Bytes the caller must write to the peer, in order; call after every other call."""
        data = bytes(self._outbox)
        self._outbox.clear()
        self.bytes_sent += len(data)
        return data

    def _send(self, message: Message) -> None:
        self._outbox += encode(message)

    def send_input(self, player_input: int, chain_bits: int, check_lag: int = 0) -> None:
        if self._playing("send an input").sending:
            self._outbox += encode_input(player_input, chain_bits, check_lag)

    def send_chain(self, frame: int, chain: bytes) -> None:
        if self._playing("send a chain check").sending:
            self._send(ChainCheck(frame, chain))

    def send_chat(self, name: str, text: str) -> None:
        """A line of chat (a joiner's own: no name; the host's or one it relays: the sender's)."""
        if self.playing is not None and self.playing.sending:
            self._send(Chat(name, text))

    def send_watchers(self, count: int) -> None:
        """The host tells the joiner how many spectators watch (when it changes)."""
        if self.playing is not None and self.playing.sending:
            self._send(Watchers(count))

    @property
    def watchers(self) -> int:
        """How many spectators watch, as the host last said (the joiner's view)."""
        return self.playing.watchers if self.playing is not None else 0

    def send_goodbye(self, reason: str, frame: int, chain: bytes, detail: str = "") -> None:
        """Say goodbye (quit, finished, desync, ...) and keep listening for the peer's goodbye."""
        if self._error is not None:
            return
        if self.playing is not None:
            self.playing.say_goodbye(reason, frame, chain, detail)
        elif self._ended is None:  # leaving our own handshake
            self._send(Goodbye(reason, frame, chain, detail))
            self._end(Ended(reason, detail, by_remote=False), report=False)

    def refuse(self, reason: str, detail: str) -> None:
        """Refuse the peer during the handshake (e.g. a second player: session_full)."""
        if self.phase is not Phase.HANDSHAKE or not isinstance(self.handshake, HostHandshake):
            return
        self.handshake.refuse(reason, detail)
        self._end(Ended(reason, detail, by_remote=False), report=False)

    def _playing(self, what: str) -> PlayingConnection:
        if self.playing is None:
            raise LocalProtocolError(f"cannot {what} before the handshake is complete")
        return self.playing

    # -- input ------------------------------------------------------------------------------------
    def receive_data(self, data: bytes, now_ms: int) -> None:
        """Bytes from the peer; b"" means the peer closed its side."""
        self._now_ms = now_ms
        if self.phase is Phase.ENDED:
            return
        if not data:
            playing = self.playing
            if playing is not None and playing.goodbye_sent is not None:
                self._end(Ended(playing.goodbye_sent, "the peer closed the connection", by_remote=False))
            elif playing is None:
                # Gone before a word of farewell: the reason for a vanished peer, as during play.
                self._end(Ended("peer_timeout", "the peer closed the connection during the handshake", True))
            else:
                self._end(Ended("peer_timeout", "the peer closed the connection without a goodbye", True))
            return
        self.bytes_received += len(data)
        self._last_received_ms = now_ms
        self._decoder.feed(data)

    def next_event(self) -> ProtocolEvent | None:
        """The next event, or None when more data (or time) is needed."""
        if self._error is not None:
            raise self._error
        while not self._events and self.phase is not Phase.ENDED:
            try:
                message = self._decoder.next_message()
                if message is None:
                    break
                self._last_progress_ms = self._now_ms
                self._route(message)
            except RemoteProtocolError as exc:
                self._fail(exc)
                raise
        return self._events.pop(0) if self._events else None  # type: ignore[return-value]

    def tick(self, now_ms: int) -> None:
        """Let time pass: handshake deadline, silence timeout and heartbeats."""
        self._now_ms = now_ms
        if self.phase is Phase.ENDED:
            return
        if self.playing is not None:
            self.playing.tick(now_ms)
            self._collect_end(self.playing.ended)
        elif now_ms - self._started_ms > self.timeouts.handshake_ms:
            self.handshake.timed_out(f"no complete handshake within {self.timeouts.handshake_ms} ms")
            self._collect_end(self.handshake.ended)

    def take_rest(self) -> bytes:
        """The bytes received and not decoded yet (a spectator's, for peer.watching)."""
        return self._decoder.take_rest()

    def fail_remote(self, message: str) -> None:
        """The caller found the peer's data invalid (e.g. inputs too far ahead): fail as ours would."""
        self._fail(RemoteProtocolError(message))

    # -- internals --------------------------------------------------------------------------------
    def _route(self, message: Message) -> None:
        if self.playing is not None:
            self.playing.handle(message, self._now_ms)
            if self.playing.ended is not None:
                self._ended = self.playing.ended  # the playing connection reported it already
            return
        handshake = self.handshake
        handshake.now_ms = self._now_ms
        handshake.handle(message)
        if handshake.ended is not None:
            self._collect_end(handshake.ended)
        elif handshake.established is not None and handshake.established.purpose is Purpose.WATCH:
            # A spectator's stream is not a player's: the caller hands it to peer.watching
            # (`take_rest` gives the bytes already received), and this connection says no more.
            self._events.append(handshake.established)
            self._ended = Ended("finished", "handed over to a spectator's connection", by_remote=False)
        elif handshake.established is not None:
            # The hand-over: the rest of this stream (the peer's first inputs may already be in the
            # decoder) belongs to the playing connection.
            timeouts = self.timeouts
            self.playing = PlayingConnection(
                handshake.established,
                self.role is Role.HOST,
                self._now_ms,
                timeouts.silence_ms,
                timeouts.ping_interval_ms,
                self._send,
                self._events,
            )
            self._events.append(handshake.established)

    def _collect_end(self, ended: Ended | None) -> None:
        if ended is not None and self._ended is None:
            self._ended = ended
            if self.playing is None:
                self._events.append(ended)  # the playing connection reports its own

    def _fail(self, exc: RemoteProtocolError) -> None:
        if self._error is None and self._ended is None:
            playing = self.playing
            if playing is None and isinstance(self.handshake, HostHandshake):
                self._send(Refuse(exc.reason, str(exc)))
            elif playing is None or playing.goodbye_sent is None:
                self._send(Goodbye(exc.reason, 0, bytes(8), str(exc)))
        self._error = exc
        if self._ended is None:
            self._ended = Ended(exc.reason, str(exc), by_remote=False)
        if self.playing is not None:
            self.playing.state = PlayState.ENDED

    def _end(self, ended: Ended, report: bool = True) -> None:
        if self.playing is not None:
            self.playing.end(ended, report=False)
        if self._ended is None:
            self._ended = ended
            if report:
                self._events.append(ended)
