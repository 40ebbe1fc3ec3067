"""The connection state machine, h11-style: bytes and `now_ms` in, events and bytes out. No I/O.

Handshake (joiner J, host H):
    J -> H  Hello(version, rules id, nonce_j, name)
    H -> J  Challenge(nonce_h, key required?, host proof)     or Refuse(reason)
    J -> H  Auth(joiner proof)                                 or Goodbye(auth_failed)
    H -> J  Ping x N, J -> H Pong x N   (the host measures the RTT for `--delay auto`)
    H -> J  Welcome(seed, delay, joiner slot, rules, rtt, name) or Refuse(reason)
Then both sides exchange Input (every frame), ChainCheck, Ping/Pong and finally Goodbye.

Errors blame a side: `RemoteProtocolError` when the peer's bytes are bad (we then queue a goodbye
saying so), `LocalProtocolError` when the caller misuses this object. After an error, or once the
connection has ended, it stays that way: every later call raises or reports the same end.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from lockstep.engine import MAX_DELAY_FRAMES, auto_delay
from lockstep.rules import SIM_VERSION, Rules, RulesError, rules_id, split_rules_id
from peer import auth
from peer.errors import LocalProtocolError, RemoteProtocolError
from peer.messages import (
    HANDSHAKE_REASONS,
    NONCE_SIZE,
    PROTOCOL_VERSION,
    Auth,
    ChainCheck,
    Challenge,
    Decoder,
    Goodbye,
    Hello,
    Input,
    Message,
    Ping,
    Pong,
    Refuse,
    Welcome,
    encode,
    encode_input,
    name_as_sent,
    printable,
)

DEFAULT_HANDSHAKE_TIMEOUT_MS = 5000
DEFAULT_SILENCE_TIMEOUT_MS = 5000
DEFAULT_PING_INTERVAL_MS = 1000
PING_REPLY_MIN_MS = 100
_U32 = 0xFFFFFFFF


class Role(enum.Enum):
    HOST = "host"
    JOINER = "joiner"


class Phase(enum.Enum):
    HANDSHAKE = "handshake"
    PLAYING = "playing"
    CLOSING = "closing"  # we said goodbye and still listen for the peer's
    ENDED = "ended"


class _Step(enum.Enum):
    """Where the handshake stands, on either side."""

    AWAIT_HELLO = 1
    AWAIT_AUTH = 2
    PROBING = 3
    AWAIT_CHALLENGE = 4
    AWAIT_WELCOME = 5


@dataclass(frozen=True)
class HostConfig:
    rules: Rules
    seed: int
    delay_frames: int | None = None  # None: pick from the measured RTT
    key: bytes | None = None
    name: str = "host"
    joiner_slot: int = 1
    rtt_probes: int = 3


@dataclass(frozen=True)
class JoinerConfig:
    key: bytes | None = None
    name: str = "joiner"


@dataclass(frozen=True)
class Timeouts:
    handshake_ms: int = DEFAULT_HANDSHAKE_TIMEOUT_MS
    silence_ms: int = DEFAULT_SILENCE_TIMEOUT_MS
    ping_interval_ms: int = DEFAULT_PING_INTERVAL_MS


# -- events -------------------------------------------------------------------------------------
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


@dataclass(frozen=True)
class RemoteInput:
    player_input: int
    chain_bits: int


@dataclass(frozen=True)
class RemoteChain:
    frame: int
    chain: bytes


@dataclass(frozen=True)
class Ended:
    """The connection is over. `by_remote`: the peer ended it (refusal or goodbye)."""

    reason: str
    detail: str
    by_remote: bool
    frame: int | None = None  # the peer's last frame and chain, when its goodbye carried them
    chain: bytes | None = None


ProtocolEvent = Established | RemoteInput | RemoteChain | Ended


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
        self.phase = Phase.HANDSHAKE
        self.timeouts = timeouts
        self._host = host
        self._joiner = joiner
        self._nonce = nonce
        self._peer_nonce = b""
        self._step = _Step.AWAIT_HELLO if role is Role.HOST else _Step.AWAIT_CHALLENGE
        self._decoder = Decoder()
        self._outbox = bytearray()
        self._events: list[ProtocolEvent] = []
        self._error: RemoteProtocolError | None = None
        self._ended: Ended | None = None
        self._goodbye_sent: str | None = None
        self._started_ms = now_ms
        self._last_received_ms = now_ms
        self._last_progress_ms = now_ms
        self._last_ping_ms = now_ms
        self._now_ms = now_ms
        self._challenge_sent_ms = 0
        self._rtt_samples: list[int] = []
        self._last_pong_sent_ms = now_ms - PING_REPLY_MIN_MS
        self._remote_name = ""
        self.established: Established | None = None
        self.rtt_ms: int | None = None
        self._srtt_x8 = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        if role is Role.JOINER:
            assert joiner is not None
            self._send(Hello(PROTOCOL_VERSION, rules_id(Rules()), nonce, joiner.name))

    # -- output -----------------------------------------------------------------------------------
    def data_to_send(self) -> bytes:
        """Bytes the caller must write to the peer, in order; call after every other call."""
        data = bytes(self._outbox)
        self._outbox.clear()
        self.bytes_sent += len(data)
        return data

    def _send(self, message: Message) -> None:
        self._outbox += encode(message)

    def send_input(self, player_input: int, chain_bits: int) -> None:
        if self._sending_game_data("send an input"):
            self._outbox += encode_input(player_input, chain_bits)

    def send_chain(self, frame: int, chain: bytes) -> None:
        if self._sending_game_data("send a chain check"):
            self._send(ChainCheck(frame, chain))

    def send_goodbye(self, reason: str, frame: int, chain: bytes, detail: str = "") -> None:
        """Say goodbye (quit, finished, desync, ...) and keep listening for the peer's goodbye.

        Also allowed after the peer's goodbye: it may be waiting for ours to compare final chains.
        """
        if self._goodbye_sent is not None or self._error is not None:
            return
        self._send(Goodbye(reason, frame, chain, detail))
        self._goodbye_sent = reason
        if self.phase is not Phase.ENDED:
            self.phase = Phase.CLOSING

    def refuse(self, reason: str, detail: str) -> None:
        """Refuse the peer during the handshake (e.g. a second player: session_full)."""
        if self.phase is Phase.ENDED:
            return
        self._send(Refuse(reason, detail))
        self._end(Ended(reason, detail, by_remote=False), report=False)

    def _sending_game_data(self, what: str) -> bool:
        """True while game data may go out; after a goodbye it is quietly dropped."""
        if self.phase is Phase.HANDSHAKE:
            raise LocalProtocolError(f"cannot {what} before the handshake is complete")
        return self.phase is Phase.PLAYING

    # -- input ------------------------------------------------------------------------------------
    def receive_data(self, data: bytes, now_ms: int) -> None:
        """Bytes from the peer; b"" means the peer closed its side."""
        self._now_ms = now_ms
        if self.phase is Phase.ENDED:
            return
        if not data:
            if self._goodbye_sent is not None:
                self._end(Ended(self._goodbye_sent, "the peer closed the connection", by_remote=False))
            elif self.phase is Phase.HANDSHAKE:
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
                self._handle(message)
            except RemoteProtocolError as exc:
                self._fail(exc)
                raise
        return self._events.pop(0) if self._events else None

    def tick(self, now_ms: int) -> None:
        """Let time pass: handshake deadline, silence timeout and heartbeats."""
        self._now_ms = now_ms
        if self.phase in (Phase.CLOSING, Phase.ENDED):
            return  # after our goodbye the caller decides how long to wait for the peer's
        if self.phase is Phase.HANDSHAKE:
            if now_ms - self._started_ms > self.timeouts.handshake_ms:
                detail = f"no complete handshake within {self.timeouts.handshake_ms} ms"
                if self.role is Role.HOST:
                    self._refuse_handshake("handshake_timeout", detail)
                else:
                    self._goodbye_handshake("handshake_timeout", detail)
            return
        if now_ms - self._last_received_ms > self.timeouts.silence_ms:
            detail = f"nothing heard from the peer for {self.timeouts.silence_ms} ms"
            # Worded for the peer, which shows it as the reason (its own timeout may differ).
            heard = f"the other player heard nothing from you for {self.timeouts.silence_ms} ms"
            self._send(Goodbye("peer_timeout", 0, bytes(8), heard))
            self._end(Ended("peer_timeout", detail, by_remote=False))
            return
        if now_ms - self._last_ping_ms >= self.timeouts.ping_interval_ms:
            self._ping(now_ms)

    def fail_remote(self, message: str) -> None:
        """The caller found the peer's data invalid (e.g. inputs too far ahead): fail as ours would."""
        self._fail(RemoteProtocolError(message))

    # -- internals --------------------------------------------------------------------------------
    def _ping(self, now_ms: int) -> None:
        self._last_ping_ms = now_ms
        self._send(Ping(now_ms & _U32))

    def _fail(self, exc: RemoteProtocolError) -> None:
        if self._error is None and self.phase is not Phase.ENDED and self._goodbye_sent is None:
            if self.phase is Phase.HANDSHAKE and self.role is Role.HOST:
                self._send(Refuse(exc.reason, str(exc)))
            else:
                self._send(Goodbye(exc.reason, 0, bytes(8), str(exc)))
        self._error = exc
        self.phase = Phase.ENDED
        if self._ended is None:
            self._ended = Ended(exc.reason, str(exc), by_remote=False)

    def _end(self, ended: Ended, report: bool = True) -> None:
        self.phase = Phase.ENDED
        if self._ended is None:
            self._ended = ended
            if report:
                self._events.append(ended)

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

    def _unexpected(self, message: Message) -> RemoteProtocolError:
        name = type(message).__name__.lower()
        if self.phase is Phase.HANDSHAKE and self._step in (_Step.AWAIT_HELLO, _Step.AWAIT_CHALLENGE):
            expected = "a hello" if self._step is _Step.AWAIT_HELLO else "a challenge or refusal"
            return RemoteProtocolError(
                f"not a Lockstep Pong peer (first message was not {expected} but {name})"
            )
        return RemoteProtocolError(f"unexpected {name} message during the {self.phase.value}")

    def _handle(self, message: Message) -> None:
        if isinstance(message, (Refuse, Goodbye)):
            self._check_farewell(message)
            frame = message.frame if isinstance(message, Goodbye) else None
            chain = message.chain if isinstance(message, Goodbye) else None
            self._end(Ended(message.reason, printable(message.detail), True, frame, chain))
        elif isinstance(message, Ping):
            self._on_ping(message)
        elif isinstance(message, Pong):
            if self.phase is Phase.HANDSHAKE and self._step is not _Step.PROBING:
                raise self._unexpected(message)
            self._on_pong(message)
        elif self.phase is Phase.CLOSING and self._goodbye_sent != "finished":
            return  # game data still in flight after our quit or desync: no longer of interest
        elif self.phase in (Phase.PLAYING, Phase.CLOSING):
            # Playing, or closing after our `finished`: the peer's last inputs carry the chain bits
            # of the frames just before our end, and a divergence there must be named at its frame.
            if isinstance(message, Input):
                self._events.append(RemoteInput(message.player_input, message.chain_bits))
            elif isinstance(message, ChainCheck):
                self._events.append(RemoteChain(message.frame, message.chain))
            else:
                raise self._unexpected(message)
        elif self.role is Role.HOST:
            self._handle_host_handshake(message)
        else:
            self._handle_joiner_handshake(message)

    def _check_farewell(self, message: Refuse | Goodbye) -> None:
        """A refusal or goodbye must fit the moment: no peer may claim a match it never played."""
        if isinstance(message, Refuse):
            # Only the host refuses, and only a joiner still in its handshake.
            if self.role is not Role.JOINER or self.phase is not Phase.HANDSHAKE:
                raise self._unexpected(message)
            if message.reason not in HANDSHAKE_REASONS:
                raise RemoteProtocolError(f"a refusal cannot give the reason {message.reason!r}")
        elif self.phase is Phase.HANDSHAKE and message.reason in ("finished", "desync"):
            raise RemoteProtocolError(f"a goodbye with reason {message.reason!r} before the match began")

    def _on_ping(self, ping: Ping) -> None:
        # Before the match only the host's RTT probes may ping, and during it a peer pings about
        # once a second: anything faster is answered at most every PING_REPLY_MIN_MS, so a ping
        # flood cannot make us queue replies it never reads.
        if self.phase is Phase.HANDSHAKE:
            if self._step is not _Step.AWAIT_WELCOME:
                raise self._unexpected(ping)
        elif self._now_ms - self._last_pong_sent_ms < PING_REPLY_MIN_MS:
            return
        self._last_pong_sent_ms = self._now_ms
        self._send(Pong(ping.token))

    def _on_pong(self, pong: Pong) -> None:
        rtt = (self._now_ms - pong.token) & _U32
        if rtt > 60_000:
            return  # a token we never sent, or absurdly old: no information
        if self.phase is not Phase.HANDSHAKE and self.rtt_ms is not None:
            # Smoothed like TCP's SRTT (RFC 6298, gain 1/8), kept times 8 as Linux does so integer
            # rounding does not stop it short: one late pong must not make the overlay jump or
            # stand as the match's RTT in the JSON result.
            self._srtt_x8 += rtt - self._srtt_x8 // 8
            self.rtt_ms = self._srtt_x8 // 8
        else:
            self._set_rtt(rtt)
        if self.phase is Phase.HANDSHAKE and self._step is _Step.PROBING:
            self._rtt_samples.append(rtt)
            self._continue_probing()

    # host side
    def _handle_host_handshake(self, message: Message) -> None:
        host = self._host
        assert host is not None
        if isinstance(message, Hello) and self._step is _Step.AWAIT_HELLO:
            if message.protocol_version != PROTOCOL_VERSION:
                self._refuse_handshake(
                    "version_mismatch",
                    f"protocol versions differ: host {PROTOCOL_VERSION}, joiner {message.protocol_version}",
                )
                return
            try:
                joiner_sim, _ = split_rules_id(message.rules_id)
            except RulesError as exc:
                raise RemoteProtocolError(f"hello carries a bad rules id: {exc}") from None
            if joiner_sim != SIM_VERSION:
                self._refuse_handshake(
                    "rules_mismatch",
                    f"simulation versions differ: host {SIM_VERSION}, joiner {joiner_sim}",
                )
                return
            if len(message.nonce) != NONCE_SIZE:
                raise RemoteProtocolError("hello carries a bad nonce")
            self._peer_nonce = message.nonce
            self._remote_name = printable(message.name)
            proof = auth.host_proof(host.key, message.nonce, self._nonce) if host.key else b""
            self._send(Challenge(self._nonce, host.key is not None, proof))
            self._challenge_sent_ms = self._now_ms
            self._step = _Step.AWAIT_AUTH
        elif isinstance(message, Auth) and self._step is _Step.AWAIT_AUTH:
            if host.key is not None:
                expected = auth.joiner_proof(host.key, self._peer_nonce, self._nonce)
                if not auth.proofs_match(expected, message.proof):
                    self._refuse_handshake("auth_failed", "the joiner does not know the host's key")
                    return
            elif message.proof:
                raise RemoteProtocolError("the joiner sent a key proof the host did not ask for")
            self._rtt_samples.append(max(0, self._now_ms - self._challenge_sent_ms))
            self._step = _Step.PROBING
            self._continue_probing()
        else:
            raise self._unexpected(message)

    def _continue_probing(self) -> None:
        host = self._host
        assert host is not None
        if len(self._rtt_samples) < max(1, host.rtt_probes):
            self._ping(self._now_ms)
            return
        rtt = max(self._rtt_samples)  # the slow end of the spread: jitter must not stall us
        self._set_rtt(rtt)
        delay = auto_delay(rtt) if host.delay_frames is None else host.delay_frames
        if not 0 <= delay <= MAX_DELAY_FRAMES:
            raise LocalProtocolError(f"input delay must be 0..{MAX_DELAY_FRAMES}")
        self._send(Welcome(host.seed, delay, host.joiner_slot, rules_id(host.rules), rtt, host.name))
        self._establish(host.rules, host.seed, delay, 1 - host.joiner_slot, host.name, rtt)

    def _refuse_handshake(self, reason: str, detail: str) -> None:
        self._send(Refuse(reason, detail))
        self._end(Ended(reason, detail, by_remote=False))

    # joiner side
    def _handle_joiner_handshake(self, message: Message) -> None:
        joiner = self._joiner
        assert joiner is not None
        if isinstance(message, Challenge) and self._step is _Step.AWAIT_CHALLENGE:
            self._peer_nonce = message.nonce
            if message.key_required and joiner.key is None:
                self._goodbye_handshake("auth_failed", "the host requires a key (use --key)")
                return
            if not message.key_required and joiner.key is not None:
                self._goodbye_handshake("auth_failed", "the host does not use a key, but we were given one")
                return
            proof = b""
            if joiner.key is not None:
                expected = auth.host_proof(joiner.key, self._nonce, message.nonce)
                if not auth.proofs_match(expected, message.proof):
                    self._goodbye_handshake("auth_failed", "the host does not know our key")
                    return
                proof = auth.joiner_proof(joiner.key, self._nonce, message.nonce)
            self._send(Auth(proof))
            self._step = _Step.AWAIT_WELCOME
        elif isinstance(message, Welcome) and self._step is _Step.AWAIT_WELCOME:
            try:
                host_sim, encoded_rules = split_rules_id(message.rules_id)
            except RulesError as exc:
                raise RemoteProtocolError(f"welcome carries a bad rules id: {exc}") from None
            if host_sim != SIM_VERSION:
                self._goodbye_handshake(
                    "rules_mismatch", f"simulation versions differ: host {host_sim}, joiner {SIM_VERSION}"
                )
                return
            try:
                rules = Rules.decode(encoded_rules)
            except RulesError as exc:
                self._goodbye_handshake("rules_mismatch", f"the host's rules are not valid here: {exc}")
                return
            if message.delay_frames > MAX_DELAY_FRAMES:
                raise RemoteProtocolError(f"input delay {message.delay_frames} exceeds {MAX_DELAY_FRAMES}")
            self._remote_name = printable(message.name)
            self._establish(
                rules, message.seed, message.delay_frames, message.joiner_slot, joiner.name, message.rtt_ms
            )
            self._set_rtt(message.rtt_ms)
        else:
            raise self._unexpected(message)

    def _goodbye_handshake(self, reason: str, detail: str) -> None:
        self._send(Goodbye(reason, 0, bytes(8), detail))
        self._end(Ended(reason, detail, by_remote=False))

    def _set_rtt(self, rtt: int) -> None:
        self.rtt_ms = rtt
        self._srtt_x8 = 8 * rtt

    def _establish(self, rules: Rules, seed: int, delay: int, slot: int, name: str, rtt: int) -> None:
        self.phase = Phase.PLAYING
        self._last_ping_ms = self._now_ms
        self.established = Established(rules, seed, delay, slot, name_as_sent(name), self._remote_name, rtt)
        self._events.append(self.established)
