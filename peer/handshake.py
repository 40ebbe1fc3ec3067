"""The handshake state machines, one per role: messages in, messages and events out. No I/O.

    J -> H  Hello(version, purpose, rules id, nonce_j, name)
    H -> J  Challenge(nonce_h, key required?, host proof)     or Refuse(reason)
    J -> H  Auth(joiner proof)                                 or Goodbye(auth_failed)
    H -> J  Ping x N, J -> H Pong x N   (the host measures the RTT for `--delay auto`)
    H -> J  Welcome(seed, delay, slot, rules, rtt, name, match id, held) or Refuse(reason)

Which message is legal in which state is written down once, in `HOST_TRANSITIONS` and
`JOINER_TRANSITIONS`: a message whose (state, type) is not a row is a `RemoteProtocolError`. When a
handshake is done it yields `Established`, and `peer.protocol.Connection` hands the stream over to the
playing connection (`peer.playing`), as wsproto hands its handshake over to a connection.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from lockstep.engine import MAX_DELAY_FRAMES, auto_delay
from lockstep.rollback import rollback_auto_delay
from lockstep.rules import SIM_VERSION, Rules, RulesError, rules_id, split_rules_id
from peer import auth
from peer.errors import LocalProtocolError, RemoteProtocolError
from peer.messages import (
    HANDSHAKE_REASONS,
    MATCH_ID_SIZE,
    MAX_ECHO_FRAMES,
    PROTOCOL_VERSION,
    Auth,
    Challenge,
    Goodbye,
    Hello,
    Message,
    Netcode,
    Ping,
    Pong,
    Purpose,
    Refuse,
    Welcome,
    name_as_sent,
    printable,
)

_U32 = 0xFFFFFFFF
# A joiner may leave its handshake with one of these; a finished or desynced match it never had.
_HANDSHAKE_GOODBYES = frozenset((*HANDSHAKE_REASONS, "quit", "peer_timeout"))


@dataclass(frozen=True)
class HostConfig:
    rules: Rules
    seed: int
    delay_frames: int | None = None  # None: pick from the measured RTT
    key: bytes | None = None
    name: str = "host"
    joiner_slot: int = 1
    rtt_probes: int = 3
    # What this host serves; a hello asking for anything else is refused `unsupported`.
    purposes: frozenset[Purpose] = field(default_factory=lambda: frozenset({Purpose.PLAY}))
    netcode: Netcode = Netcode.LOCKSTEP
    # The match whose seat a RESUME may take back, as it stands when asked (None: no such match).
    seat: Callable[[], Seat | None] | None = None
    # Set while a match is on: a new player is refused `session_full` with these words.
    seat_taken: str | None = None
    # Set while no spectator can be taken: a new one is refused `spectators_full` with these words.
    spectators_full: str | None = None


@dataclass(frozen=True)
class JoinerConfig:
    key: bytes | None = None
    name: str = "joiner"
    purpose: Purpose = Purpose.PLAY
    seat: Seat | None = None  # RESUME: the match we take our seat back in


@dataclass(frozen=True)
class Established:
    """The handshake succeeded: both sides now play this match."""

    rules: Rules
    seed: int
    delay_frames: int
    local_slot: int
    local_name: str
    remote_name: str
    rtt_ms: int
    match_id: bytes = bytes(MATCH_ID_SIZE)
    purpose: Purpose = Purpose.PLAY
    # The first frame of the peer's input stream (earlier inputs are neutral or already held).
    remote_inputs_from: int = 0
    netcode: Netcode = Netcode.LOCKSTEP
    secret: bytes = b""  # the per-match secret a seat is taken back with
    resend_from: int = 0  # the first frame of our own input stream the peer lacks
    # A resume: our own inputs the peer sent back, from frame `own_from` on (a byte a frame).
    own_from: int = 0
    echo: bytes = b""

    @property
    def names(self) -> tuple[str, str]:
        """(left, right) player names."""
        return self.in_slot_order(self.local_name, self.remote_name)

    @property
    def side(self) -> str:
        return "left" if self.local_slot == 0 else "right"

    def in_slot_order(self, local: str, remote: str) -> tuple[str, str]:
        """Any (ours, theirs) pair as (left, right)."""
        return (local, remote) if self.local_slot == 0 else (remote, local)


@dataclass(frozen=True)
class Seat:
    """A match under way, as one side holds it: what a resume of it must match; `held`, the first
    frame of the peer's input stream this side lacks; `own_from`, the first frame of its own stream
    it lacks (a process that crashed lost what it sent after its replay's last chunk; a live one
    lacks nothing: its next input's frame); `peer_inputs(f)`, the peer's inputs it holds from frame
    `f` to `held`, a byte a frame, to send back to a peer that lost them (None: no longer kept)."""

    established: Established
    held: int
    own_from: int = 0
    peer_inputs: Callable[[int], bytes | None] = field(default=lambda frame: b"")

    def resumed(self, remote_name: str, resend_from: int, echo: bytes, own_from: int) -> Established:
        """The match as it goes on over the new connection: the peer's stream continues at `held`,
        ours at `resend_from`, and `echo` holds our inputs from `own_from` that the peer sent back."""
        return replace(
            self.established,
            remote_name=remote_name,
            purpose=Purpose.RESUME,
            remote_inputs_from=self.held,
            resend_from=resend_from,
            own_from=own_from,
            echo=echo,
        )


@dataclass(frozen=True)
class Ended:
    """The connection is over. `by_remote`: the peer ended it (refusal or goodbye)."""

    reason: str
    detail: str
    by_remote: bool
    frame: int | None = None  # the peer's last frame and chain, when its goodbye carried them
    chain: bytes | None = None


def match_id(host_nonce: bytes, joiner_nonce: bytes) -> bytes:
    """Both sides derive the match's name from the two fresh nonces: no extra field to trust."""
    return hashlib.sha256(b"lockstep-pong match" + host_nonce + joiner_nonce).digest()[:MATCH_ID_SIZE]


class HostState(enum.Enum):
    AWAIT_HELLO = "awaiting a hello"
    AWAIT_AUTH = "awaiting the joiner's proof"
    PROBING = "measuring the round trip"
    DONE = "done"


class JoinerState(enum.Enum):
    AWAIT_CHALLENGE = "awaiting a challenge"
    AWAIT_WELCOME = "awaiting the welcome"
    DONE = "done"


class _Handshake:
    """What both roles share: the outbox, the events and the end."""

    def __init__(self, nonce: bytes, now_ms: int, send: Callable[[Message], None]) -> None:
        self.nonce = nonce
        self.now_ms = now_ms
        self.started_ms = now_ms
        self._send = send
        self.established: Established | None = None
        self.ended: Ended | None = None
        self.remote_name = ""
        self.rtt_ms: int | None = None

    def end(self, ended: Ended) -> None:
        if self.ended is None:
            self.ended = ended

    def _on_goodbye(self, message: Message) -> None:
        """Either side may leave a handshake (a quit, a timeout, a failed check), never with the end
        of a match it never had."""
        assert isinstance(message, Goodbye)
        if message.reason not in _HANDSHAKE_GOODBYES:
            raise RemoteProtocolError(f"a goodbye with reason {message.reason!r} before the match began")
        self.on_farewell(message)

    def on_farewell(self, message: Message) -> None:
        assert isinstance(message, (Refuse, Goodbye))
        frame = message.frame if isinstance(message, Goodbye) else None
        chain = message.chain if isinstance(message, Goodbye) else None
        self.end(Ended(message.reason, printable(message.detail), True, frame, chain))


class HostHandshake(_Handshake):
    def __init__(
        self, config: HostConfig, nonce: bytes, now_ms: int, send: Callable[[Message], None]
    ) -> None:
        super().__init__(nonce, now_ms, send)
        self.config = config
        self.state = HostState.AWAIT_HELLO
        self.purpose = Purpose.PLAY
        self._peer_nonce = b""
        self._challenge_sent_ms = 0
        self._rtt_samples: list[int] = []
        self._resend_from = 0
        self._own_from = 0  # RESUME: the first frame of our own stream we lack (said in the challenge)
        self._peer_own_from = 0  # ... and of the joiner's own stream it lacks (said in its hello)

    def handle(self, message: Message) -> None:
        handler = HOST_TRANSITIONS.get((self.state, type(message)))
        if handler is None:
            raise _unexpected(message, self.state is HostState.AWAIT_HELLO, "a hello", self.state.value)
        handler(self, message)

    def timed_out(self, detail: str) -> None:
        self.refuse("handshake_timeout", detail)

    def refuse(self, reason: str, detail: str) -> None:
        self._send(Refuse(reason, detail))
        self.end(Ended(reason, detail, by_remote=False))

    def _on_hello(self, message: Message) -> None:
        assert isinstance(message, Hello)
        if message.protocol_version != PROTOCOL_VERSION:
            self.refuse(
                "version_mismatch",
                f"protocol versions differ: host {PROTOCOL_VERSION}, joiner {message.protocol_version}",
            )
            return
        try:
            joiner_sim, _ = split_rules_id(message.rules_id)
        except RulesError as exc:
            raise RemoteProtocolError(f"hello carries a bad rules id: {exc}") from None
        if joiner_sim != SIM_VERSION:
            self.refuse(
                "rules_mismatch", f"simulation versions differ: host {SIM_VERSION}, joiner {joiner_sim}"
            )
            return
        if message.purpose is not Purpose.RESUME and (message.match_id or message.held or message.own_from):
            raise RemoteProtocolError("a hello to play or watch names a match or held inputs")
        if message.purpose is Purpose.RESUME and len(message.match_id) != MATCH_ID_SIZE:
            raise RemoteProtocolError("a hello to take a seat back names no match")
        if message.purpose not in self.config.purposes:
            wants = {Purpose.WATCH: "spectators", Purpose.RESUME: "players taking a seat back"}
            self.refuse("unsupported", f"this host does not take {wants.get(message.purpose, 'that')}")
            return
        self.purpose = message.purpose
        if message.purpose is Purpose.PLAY and self.config.seat_taken is not None:
            self.refuse("session_full", self.config.seat_taken)
            return
        if message.purpose is Purpose.WATCH and self.config.spectators_full is not None:
            self.refuse("spectators_full", self.config.spectators_full)
            return
        if message.purpose is Purpose.RESUME:
            seat = self.config.seat() if self.config.seat is not None else None
            if seat is None or message.match_id != seat.established.match_id:
                self.refuse("auth_failed", "no match here has that seat open")
                return
            self._resend_from = message.held
            self._peer_own_from = message.own_from
            self._own_from = seat.own_from
        self._peer_nonce = message.nonce
        self.remote_name = printable(message.name)
        key = self.config.key
        proof = auth.host_proof(key, message.nonce, self.nonce) if key else b""
        self._send(Challenge(self.nonce, key is not None, proof, self._own_from))
        self._challenge_sent_ms = self.now_ms
        self.state = HostState.AWAIT_AUTH

    def _on_auth(self, message: Message) -> None:
        assert isinstance(message, Auth)
        key = self.config.key
        if key is not None:
            expected = auth.joiner_proof(key, self._peer_nonce, self.nonce)
            if not auth.proofs_match(expected, message.proof):
                self.refuse("auth_failed", "the joiner does not know the host's key")
                return
        elif message.proof:
            raise RemoteProtocolError("the joiner sent a key proof the host did not ask for")
        if self.purpose is Purpose.RESUME:
            self._resume(message.seat_proof, message.echo)
            return
        if message.seat_proof or message.echo:
            raise RemoteProtocolError("a new player or spectator sent a seat proof")
        if self.purpose is Purpose.WATCH:
            self._admit_spectator()
            return
        self._rtt_samples.append(max(0, self.now_ms - self._challenge_sent_ms))
        self.state = HostState.PROBING
        self._continue_probing()

    def _on_pong(self, message: Message) -> None:
        assert isinstance(message, Pong)
        rtt = (self.now_ms - message.token) & _U32
        if rtt > 60_000:
            return  # a token we never sent, or absurdly old: no information
        self._rtt_samples.append(rtt)
        self._continue_probing()

    def _resume(self, proof: bytes, echo: bytes) -> None:
        """The seat's owner is back: no probing (the round trip is known), the match as it stands,
        and each side's own inputs that the other holds and it lost in a crash, sent back."""
        seat = self.config.seat() if self.config.seat is not None else None
        if seat is None:
            self.refuse("auth_failed", "the match whose seat was asked for is over")
            return
        est = seat.established
        if not auth.proofs_match(auth.seat_proof(est.secret, self._peer_nonce, self.nonce), proof):
            self.refuse("auth_failed", "the joiner does not hold this match's secret")
            return
        if len(echo) != max(0, self._resend_from - self._own_from):
            raise RemoteProtocolError(
                f"the joiner sent back {len(echo)} of our inputs; we lack frames {self._own_from} "
                f"to {self._resend_from}"
            )
        theirs = b""
        if self._peer_own_from < seat.held:
            found = seat.peer_inputs(self._peer_own_from)
            if found is None or len(found) > MAX_ECHO_FRAMES:
                self.refuse("auth_failed", f"the joiner's inputs from frame {self._peer_own_from} are gone")
                return
            theirs = found
        self._send(
            Welcome(
                est.seed,
                est.delay_frames,
                1 - est.local_slot,
                rules_id(est.rules),
                est.rtt_ms,
                est.local_name,
                est.match_id,
                seat.held,
                est.netcode,
                theirs,
            )
        )
        self.state = HostState.DONE
        self.rtt_ms = est.rtt_ms
        self.established = seat.resumed(self.remote_name, self._resend_from, echo, self._own_from)

    def _admit_spectator(self) -> None:
        """A spectator proved the key: no round trip to measure, no seat. The stream goes to
        peer.watching, whose first word is the match (or pings until there is one)."""
        config = self.config
        self.state = HostState.DONE
        self.established = Established(
            config.rules,
            config.seed,
            0,
            0,
            name_as_sent(config.name),
            self.remote_name,
            0,
            purpose=Purpose.WATCH,
        )

    def _continue_probing(self) -> None:
        config = self.config
        if len(self._rtt_samples) < max(1, config.rtt_probes):
            self._send(Ping(self.now_ms & _U32))
            return
        rtt = max(self._rtt_samples)  # the slow end of the spread: jitter must not stall us
        self.rtt_ms = rtt
        # Rollback predicts the round trip away: its automatic delay stays small.
        pick = rollback_auto_delay if config.netcode is Netcode.ROLLBACK else auto_delay
        delay = pick(rtt) if config.delay_frames is None else config.delay_frames
        if not 0 <= delay <= MAX_DELAY_FRAMES:
            raise LocalProtocolError(f"input delay must be 0..{MAX_DELAY_FRAMES}")
        name = match_id(self.nonce, self._peer_nonce)
        self._send(
            Welcome(
                config.seed,
                delay,
                config.joiner_slot,
                rules_id(config.rules),
                rtt,
                config.name,
                name,
                delay,
                config.netcode,
            )
        )
        self.state = HostState.DONE
        self.established = Established(
            config.rules,
            config.seed,
            delay,
            1 - config.joiner_slot,
            name_as_sent(config.name),
            self.remote_name,
            rtt,
            name,
            Purpose.PLAY,
            delay,
            config.netcode,
            auth.seat_secret(config.key, self.nonce, self._peer_nonce),
            delay,
        )


class JoinerHandshake(_Handshake):
    def __init__(
        self, config: JoinerConfig, nonce: bytes, now_ms: int, send: Callable[[Message], None]
    ) -> None:
        super().__init__(nonce, now_ms, send)
        self.config = config
        self.state = JoinerState.AWAIT_CHALLENGE
        self._peer_nonce = b""
        seat = config.seat
        if (config.purpose is Purpose.RESUME) != (seat is not None):
            raise LocalProtocolError("taking a seat back needs the seat, and only that does")
        match, held, own = (seat.established.match_id, seat.held, seat.own_from) if seat else (b"", 0, 0)
        send(Hello(PROTOCOL_VERSION, rules_id(Rules()), nonce, config.name, config.purpose, match, held, own))

    def handle(self, message: Message) -> None:
        handler = JOINER_TRANSITIONS.get((self.state, type(message)))
        if handler is None:
            first = self.state is JoinerState.AWAIT_CHALLENGE
            raise _unexpected(message, first, "a challenge or refusal", self.state.value)
        handler(self, message)

    def timed_out(self, detail: str) -> None:
        self.leave("handshake_timeout", detail)

    def leave(self, reason: str, detail: str) -> None:
        self._send(Goodbye(reason, 0, bytes(8), detail))
        self.end(Ended(reason, detail, by_remote=False))

    def _on_refuse(self, message: Message) -> None:
        assert isinstance(message, Refuse)
        if message.reason not in HANDSHAKE_REASONS:
            raise RemoteProtocolError(f"a refusal cannot give the reason {message.reason!r}")
        self.on_farewell(message)

    def _on_challenge(self, message: Message) -> None:
        assert isinstance(message, Challenge)
        self._peer_nonce = message.nonce
        key = self.config.key
        if message.key_required and key is None:
            self.leave("auth_failed", "the host requires a key (use --key)")
            return
        if not message.key_required and key is not None:
            self.leave("auth_failed", "the host does not use a key, but we were given one")
            return
        proof = b""
        if key is not None:
            expected = auth.host_proof(key, self.nonce, message.nonce)
            if not auth.proofs_match(expected, message.proof):
                self.leave("auth_failed", "the host does not know our key")
                return
            proof = auth.joiner_proof(key, self.nonce, message.nonce)
        seat = self.config.seat
        seat_proof = echo = b""
        if seat is not None:
            seat_proof = auth.seat_proof(seat.established.secret, self.nonce, message.nonce)
            if message.own_from < seat.held:  # the host lost its last inputs: we hold them
                found = seat.peer_inputs(message.own_from)
                if found is None or len(found) > MAX_ECHO_FRAMES:
                    self.leave("auth_failed", f"the host's inputs from frame {message.own_from} are gone")
                    return
                echo = found
        self._send(Auth(proof, seat_proof, echo))
        self.state = JoinerState.AWAIT_WELCOME

    def _on_ping(self, message: Message) -> None:
        assert isinstance(message, Ping)
        self._send(Pong(message.token))  # the host's RTT probes, a handful

    def _on_welcome(self, message: Message) -> None:
        assert isinstance(message, Welcome)
        try:
            host_sim, encoded_rules = split_rules_id(message.rules_id)
        except RulesError as exc:
            raise RemoteProtocolError(f"welcome carries a bad rules id: {exc}") from None
        if host_sim != SIM_VERSION:
            self.leave("rules_mismatch", f"simulation versions differ: host {host_sim}, joiner {SIM_VERSION}")
            return
        try:
            rules = Rules.decode(encoded_rules)
        except RulesError as exc:
            self.leave("rules_mismatch", f"the host's rules are not valid here: {exc}")
            return
        if message.delay_frames > MAX_DELAY_FRAMES:
            raise RemoteProtocolError(f"input delay {message.delay_frames} exceeds {MAX_DELAY_FRAMES}")
        if message.joiner_slot not in (0, 1):
            raise RemoteProtocolError(f"welcome assigns an invalid slot {message.joiner_slot}")
        self.remote_name = printable(message.name)
        self.rtt_ms = message.rtt_ms
        seat = self.config.seat
        if seat is not None:
            self._resumed(message, rules, seat)
            return
        expected_id = match_id(self._peer_nonce, self.nonce)
        if message.match_id != expected_id or message.held != message.delay_frames:
            raise RemoteProtocolError("welcome names another match, or inputs a new match cannot hold")
        self.state = JoinerState.DONE
        self.established = Established(
            rules,
            message.seed,
            message.delay_frames,
            message.joiner_slot,
            name_as_sent(self.config.name),
            self.remote_name,
            message.rtt_ms,
            expected_id,
            Purpose.PLAY,
            message.delay_frames,
            message.netcode,
            auth.seat_secret(self.config.key, self._peer_nonce, self.nonce),
            message.delay_frames,
        )

    def _resumed(self, message: Welcome, rules: Rules, seat: Seat) -> None:
        est = seat.established
        same = (message.match_id, message.seed, message.delay_frames, message.joiner_slot, rules) == (
            est.match_id,
            est.seed,
            est.delay_frames,
            est.local_slot,
            est.rules,
        )
        if not same or message.netcode != est.netcode:
            raise RemoteProtocolError("welcome names another match than the one we take our seat back in")
        if len(message.echo) != max(0, message.held - seat.own_from):
            raise RemoteProtocolError(
                f"the host sent back {len(message.echo)} of our inputs; we lack frames {seat.own_from} "
                f"to {message.held}"
            )
        self.state = JoinerState.DONE
        self.established = seat.resumed(self.remote_name, message.held, message.echo, seat.own_from)


def _unexpected(message: Message, first: bool, expected: str, state: str) -> RemoteProtocolError:
    name = type(message).__name__.lower()
    if first:
        return RemoteProtocolError(f"not a Lockstep Pong peer (first message was not {expected} but {name})")
    return RemoteProtocolError(f"unexpected {name} message while {state}")


_HostHandler = Callable[[HostHandshake, Message], None]
_JoinerHandler = Callable[[JoinerHandshake, Message], None]

# The legal (state, message) pairs of each handshake; everything else is the peer's protocol error.
HOST_TRANSITIONS: dict[tuple[HostState, type], _HostHandler] = {
    (HostState.AWAIT_HELLO, Hello): HostHandshake._on_hello,
    (HostState.AWAIT_AUTH, Auth): HostHandshake._on_auth,
    (HostState.AWAIT_AUTH, Goodbye): HostHandshake._on_goodbye,
    (HostState.PROBING, Pong): HostHandshake._on_pong,
    (HostState.PROBING, Goodbye): HostHandshake._on_goodbye,
}
JOINER_TRANSITIONS: dict[tuple[JoinerState, type], _JoinerHandler] = {
    (JoinerState.AWAIT_CHALLENGE, Challenge): JoinerHandshake._on_challenge,
    (JoinerState.AWAIT_CHALLENGE, Refuse): JoinerHandshake._on_refuse,
    (JoinerState.AWAIT_CHALLENGE, Goodbye): JoinerHandshake._on_goodbye,
    (JoinerState.AWAIT_WELCOME, Ping): JoinerHandshake._on_ping,
    (JoinerState.AWAIT_WELCOME, Welcome): JoinerHandshake._on_welcome,
    (JoinerState.AWAIT_WELCOME, Refuse): JoinerHandshake._on_refuse,
    (JoinerState.AWAIT_WELCOME, Goodbye): JoinerHandshake._on_goodbye,
}
