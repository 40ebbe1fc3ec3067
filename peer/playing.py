"""The playing connection: what flows once the handshake is done. Messages in, events out; no I/O.

Both sides send an Input every frame, a ChainCheck every `chain_every` frames, a Ping about once a
second, and finally a Goodbye. The legal (state, message) pairs are `PLAY_TRANSITIONS`; anything
else is a `RemoteProtocolError`.

The peer's inputs are numbered: the first is for the frame the handshake named
(`Established.remote_inputs_from`), each next one for the next frame. `inputs_held` is therefore
exactly the first frame of the peer's stream we do not hold, which is what a resume states.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from peer.errors import RemoteProtocolError
from peer.handshake import Ended, Established
from peer.messages import (
    MATCH_REASONS,
    ChainCheck,
    Chat,
    Goodbye,
    Input,
    Message,
    Ping,
    Pong,
    Watchers,
    chat_text,
    printable,
)

PING_REPLY_MIN_MS = 100
# Chat lines kept at most this often, after a burst of so many: a joiner speaks for itself, one line
# at a time; the host relays for everyone, who may all speak at once.
CHAT_FROM_JOINER_MS, CHAT_FROM_JOINER_BURST = 500, 1
CHAT_FROM_HOST_MS, CHAT_FROM_HOST_BURST = 50, 16
_U32 = 0xFFFFFFFF


@dataclass(frozen=True)
class RemoteInput:
    frame: int  # the frame this input is for
    player_input: int
    chain_bits: int
    check_lag: int


@dataclass(frozen=True)
class RemoteChain:
    frame: int
    chain: bytes


@dataclass(frozen=True)
class RemoteChat:
    """A line of chat: the joiner's own (the host names it), or one the host sends or relays."""

    name: str
    text: str


class PlayState(enum.Enum):
    PLAYING = "playing"
    CLOSING = "closing"  # we said goodbye and still listen for the peer's
    ENDED = "ended"


class PlayingConnection:
    def __init__(
        self,
        established: Established,
        is_host: bool,
        now_ms: int,
        silence_ms: int,
        ping_interval_ms: int,
        send: Callable[[Message], None],
        events: list[object],
    ) -> None:
        self.established = established
        self.state = PlayState.PLAYING
        self.inputs_held = established.remote_inputs_from
        self.rtt_ms = established.rtt_ms
        self._srtt_x8 = 8 * established.rtt_ms
        self._send = send
        self._events = events
        self._silence_ms = silence_ms
        self._ping_interval_ms = ping_interval_ms
        self._now_ms = now_ms
        self._last_input_ms = now_ms
        self._last_ping_ms = now_ms
        self._last_pong_sent_ms = now_ms - PING_REPLY_MIN_MS
        self._is_host = is_host
        self.watchers = 0  # the joiner: how many spectators the host says watch
        self._chat_every_ms, burst = (
            (CHAT_FROM_JOINER_MS, CHAT_FROM_JOINER_BURST)
            if is_host
            else (CHAT_FROM_HOST_MS, CHAT_FROM_HOST_BURST)
        )
        self._chat_burst_ms = burst * self._chat_every_ms
        self._chat_allowance_ms = self._chat_burst_ms  # a bucket of time: each line takes its share
        self._last_chat_ms = now_ms
        self.goodbye_sent: str | None = None
        self.ended: Ended | None = None
        # A goodbye must fit the match: a joiner whose own handshake failed after our welcome may
        # still say why; a host never again speaks of handshakes.
        extra = ("protocol_error", "handshake_timeout", "rules_mismatch") if is_host else ("protocol_error",)
        self._goodbye_reasons = frozenset((*MATCH_REASONS, *extra))

    # -- the caller's side ----------------------------------------------------------------------
    def handle(self, message: Message, now_ms: int) -> None:
        self._now_ms = now_ms
        handler = PLAY_TRANSITIONS.get((self.state, type(message)))
        if handler is None:
            name = type(message).__name__.lower()
            raise RemoteProtocolError(f"unexpected {name} message while {self.state.value}")
        handler(self, message)

    def tick(self, now_ms: int) -> None:
        """Silence timeout and heartbeats. Silence is no progress: pings alone do not keep a match
        alive, since a peer that sends nothing but pings is not playing."""
        self._now_ms = now_ms
        if self.state is not PlayState.PLAYING:
            return  # after our goodbye the caller decides how long to wait for the peer's
        if now_ms - self._last_input_ms > self._silence_ms:
            silence = self._silence_ms
            # Worded for the peer, which shows it as the reason (its own timeout may differ).
            heard = f"the other player received no input from you for {silence} ms"
            self._send(Goodbye("peer_timeout", 0, bytes(8), heard))
            self.end(Ended("peer_timeout", f"no input from the peer for {silence} ms", by_remote=False))
            return
        if now_ms - self._last_ping_ms >= self._ping_interval_ms:
            self._last_ping_ms = now_ms
            self._send(Ping(now_ms & _U32))

    def say_goodbye(self, reason: str, frame: int, chain: bytes, detail: str) -> None:
        """Also allowed after the peer's goodbye: it may be waiting for ours to compare final chains."""
        if self.goodbye_sent is not None:
            return
        self._send(Goodbye(reason, frame, chain, detail))
        self.goodbye_sent = reason
        if self.state is PlayState.PLAYING:
            self.state = PlayState.CLOSING

    def end(self, ended: Ended, report: bool = True) -> None:
        self.state = PlayState.ENDED
        if self.ended is None:
            self.ended = ended
            if report:
                self._events.append(ended)

    @property
    def sending(self) -> bool:
        """Game data goes out only while playing; after a goodbye it is quietly dropped."""
        return self.state is PlayState.PLAYING

    # -- transitions ----------------------------------------------------------------------------
    def _on_input(self, message: Message) -> None:
        assert isinstance(message, Input)
        self._last_input_ms = self._now_ms
        frame = self.inputs_held
        self.inputs_held += 1
        self._events.append(RemoteInput(frame, message.player_input, message.chain_bits, message.check_lag))

    def _on_chain(self, message: Message) -> None:
        assert isinstance(message, ChainCheck)
        self._events.append(RemoteChain(message.frame, message.chain))

    def _on_late_game_data(self, message: Message) -> None:
        # After our `finished` the peer's last inputs carry the chain bits of the frames just before
        # our end, and a divergence there must be named at its frame; after a quit or a desync
        # nothing in flight is of interest any more.
        if self.goodbye_sent == "finished":
            if isinstance(message, Input):
                self._on_input(message)
            else:
                self._on_chain(message)

    def _on_ping(self, message: Message) -> None:
        assert isinstance(message, Ping)
        # A peer pings about once a second: anything faster is answered at most every
        # PING_REPLY_MIN_MS, so a ping flood cannot make us queue replies it never reads.
        if self._now_ms - self._last_pong_sent_ms < PING_REPLY_MIN_MS:
            return
        self._last_pong_sent_ms = self._now_ms
        self._send(Pong(message.token))

    def _on_pong(self, message: Message) -> None:
        assert isinstance(message, Pong)
        rtt = (self._now_ms - message.token) & _U32
        if rtt > 60_000:
            return  # a token we never sent, or absurdly old: no information
        # Smoothed like TCP's SRTT (RFC 6298, gain 1/8), kept times 8 as Linux does so integer
        # rounding does not stop it short: one late pong must not make the overlay jump.
        self._srtt_x8 += rtt - self._srtt_x8 // 8
        self.rtt_ms = self._srtt_x8 // 8

    def _on_chat(self, message: Message) -> None:
        """Chat is no part of the game: a line too soon after the last is dropped, not an error."""
        assert isinstance(message, Chat)
        if self._is_host and message.name:
            raise RemoteProtocolError("the joiner's chat line names a sender")
        text = chat_text(message.text)
        elapsed = self._now_ms - self._last_chat_ms
        self._last_chat_ms = self._now_ms
        self._chat_allowance_ms = min(self._chat_burst_ms, self._chat_allowance_ms + elapsed)
        if not text or self._chat_allowance_ms < self._chat_every_ms:
            return
        self._chat_allowance_ms -= self._chat_every_ms
        name = self.established.remote_name if self._is_host else printable(message.name)
        self._events.append(RemoteChat(name, text))

    def _on_watchers(self, message: Message) -> None:
        assert isinstance(message, Watchers)
        if self._is_host:
            raise RemoteProtocolError("only the host says how many watch")
        self.watchers = message.count

    def _on_goodbye(self, message: Message) -> None:
        assert isinstance(message, Goodbye)
        if message.reason not in self._goodbye_reasons:
            raise RemoteProtocolError(f"a goodbye during the match cannot give the reason {message.reason!r}")
        detail = printable(message.detail)
        self.end(Ended(message.reason, detail, True, message.frame, message.chain))


_Handler = Callable[[PlayingConnection, Message], None]

# The legal (state, message) pairs once playing; everything else is the peer's protocol error.
PLAY_TRANSITIONS: dict[tuple[PlayState, type], _Handler] = {
    (PlayState.PLAYING, Input): PlayingConnection._on_input,
    (PlayState.PLAYING, ChainCheck): PlayingConnection._on_chain,
    (PlayState.PLAYING, Ping): PlayingConnection._on_ping,
    (PlayState.PLAYING, Pong): PlayingConnection._on_pong,
    (PlayState.PLAYING, Goodbye): PlayingConnection._on_goodbye,
    (PlayState.PLAYING, Chat): PlayingConnection._on_chat,
    (PlayState.CLOSING, Chat): PlayingConnection._on_chat,
    (PlayState.PLAYING, Watchers): PlayingConnection._on_watchers,
    # The host may still be a frame from its end when we finished, and a spectator leave then.
    (PlayState.CLOSING, Watchers): PlayingConnection._on_watchers,
    (PlayState.CLOSING, Input): PlayingConnection._on_late_game_data,
    (PlayState.CLOSING, ChainCheck): PlayingConnection._on_late_game_data,
    (PlayState.CLOSING, Ping): PlayingConnection._on_ping,
    (PlayState.CLOSING, Pong): PlayingConnection._on_pong,
    (PlayState.CLOSING, Goodbye): PlayingConnection._on_goodbye,
}
