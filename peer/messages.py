"""Wire messages and their byte encoding (no I/O).

Two shapes share one stream:
- An input, the message sent every frame, is three bytes with the top bit clear:
  `0iilllll` `cccccccc` `cccccccc` — the player's 2 input bits, a 5-bit check lag and 16 bits of the
  sender's chain (little-endian). The input's own frame is implicit: the inputs of one stream are
  numbered consecutively from the frame the handshake names (TCP keeps them in order), so a count is
  all either side needs to say which inputs it holds. The chain bits are those of frame
  `input frame - delay - lag`, so every check names its frame; lag 31 means "no check in this one".
- Every other message is framed: a tag byte with the top bit set, a little-endian u16 payload
  length, then the payload. A receiver can skip nothing and trust nothing: every field is checked.

The first eight bytes of a hello's payload (magic) and the u16 after them (version) never change
layout, so any two versions can tell each other apart and refuse cleanly.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from peer.errors import RemoteProtocolError
from replay.writer import utf8_prefix

MAGIC = b"LSPONG\x00\x01"
PROTOCOL_VERSION = 2
INPUT_SIZE = 3
NO_CHECK_LAG = 31  # an input that carries no chain check
MATCH_ID_SIZE = 16
# Inputs sent back to a player that crashed: what it sent after its replay's last chunk (a chunk is
# 60 frames) plus the delay; far more is no honest crash.
MAX_ECHO_FRAMES = 600
NONCE_SIZE = 16
PROOF_SIZE = 32
MAX_NAME_BYTES = 32
MAX_DETAIL_BYTES = 200
MAX_PAYLOAD = 1024  # no legal message comes near this; anything bigger is refused
MAX_CHAT_BYTES = 120  # one short line of chat
FRAMES_OVERHEAD = 12  # a batch of frames: its first frame (u32) and the chain after its last (8)
MAX_BATCH_FRAMES = MAX_PAYLOAD - FRAMES_OVERHEAD
MAX_FRAME_INPUT = 15  # both players' 2-bit inputs, packed

# The reasons a host may give when it refuses a connection; the others end a match that exists.
HANDSHAKE_REASONS = (
    "version_mismatch",
    "rules_mismatch",
    "auth_failed",
    "session_full",
    "handshake_timeout",
    "protocol_error",
    "unsupported",  # the connection asks for something this host does not offer (yet)
    "spectators_full",
)
MATCH_REASONS = ("peer_timeout", "quit", "desync", "finished", "too_slow")
REASONS = (*HANDSHAKE_REASONS, *MATCH_REASONS)  # wire code = index + 1
_REASON_CODE = {name: i + 1 for i, name in enumerate(REASONS)}

TAG_HELLO = 1
TAG_CHALLENGE = 2
TAG_AUTH = 3
TAG_WELCOME = 4
TAG_REFUSE = 5
TAG_CHAIN = 6
TAG_PING = 7
TAG_PONG = 8
TAG_GOODBYE = 9
TAG_MATCH_INFO = 10
TAG_FRAMES = 11
TAG_CHAT = 12
TAG_WATCHERS = 13


class Purpose(enum.IntEnum):
    """What a connection is for, said in its hello."""

    PLAY = 0  # take the free seat of a new match
    WATCH = 1  # follow a match without playing
    RESUME = 2  # take one's own seat back in a match under way


class Netcode(enum.IntEnum):
    """How the match hides latency; the host decides, the welcome says."""

    LOCKSTEP = 0  # input delay: every frame waits for both inputs
    ROLLBACK = 1  # predict the peer's input, run ahead, re-simulate when it differs


_HEADER = struct.Struct("<BH")
_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


@dataclass(frozen=True, slots=True)
class Hello:
    """Joiner -> host, first message. Magic and version come first and never change layout.

    `match_id`, `held` and `own_from` matter for RESUME: which match, the first frame of the host's
    input stream that this side does not hold, and the first frame of its own stream it lacks (a
    process that crashed lost its last inputs; the host sends them back). A new player sends no id
    and zeros.
    """

    protocol_version: int
    rules_id: bytes
    nonce: bytes
    name: str
    purpose: Purpose = Purpose.PLAY
    match_id: bytes = b""
    held: int = 0
    own_from: int = 0


@dataclass(frozen=True, slots=True)
class Challenge:
    """Host -> joiner: the host's nonce and, with a key, its proof of knowing the key; to a RESUME,
    also the first frame of its own input stream it lacks (a host that crashed lost its last ones)."""

    nonce: bytes
    key_required: bool
    proof: bytes  # empty without a key
    own_from: int = 0


@dataclass(frozen=True, slots=True)
class Auth:
    """Joiner -> host: the joiner's proof (empty without a key) and, to take a seat back, its proof of
    the match's secret (empty otherwise)."""

    proof: bytes
    seat_proof: bytes = b""
    echo: bytes = b""  # RESUME: the host's own inputs from its `own_from` on, one byte a frame


@dataclass(frozen=True, slots=True)
class Welcome:
    """Host -> joiner: the match. The game starts for both sides with this message.

    `match_id` names the match (a resume quotes it); `held` is the first frame of the joiner's input
    stream the host does not hold: the joiner's inputs continue from there (for a new match, the
    delay: inputs before it are neutral and never sent).
    """

    seed: int
    delay_frames: int
    joiner_slot: int
    rules_id: bytes
    rtt_ms: int
    name: str
    match_id: bytes = bytes(MATCH_ID_SIZE)
    held: int = 0
    netcode: Netcode = Netcode.LOCKSTEP
    echo: bytes = b""  # RESUME: the joiner's own inputs from its hello's `own_from` on, a byte a frame


@dataclass(frozen=True, slots=True)
class Refuse:
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Input:
    player_input: int
    chain_bits: int
    check_lag: int = 0


@dataclass(frozen=True, slots=True)
class ChainCheck:
    frame: int
    chain: bytes


@dataclass(frozen=True, slots=True)
class Ping:
    token: int


@dataclass(frozen=True, slots=True)
class Pong:
    token: int


@dataclass(frozen=True, slots=True)
class Goodbye:
    """Ends the match; carries the sender's last frame and chain so the ends can be compared.

    A goodbye sent by the connection itself (a timeout, bad data) knows no frame: 0 and zeros.
    """

    reason: str
    frame: int
    chain: bytes
    detail: str


@dataclass(frozen=True, slots=True)
class MatchInfo:
    """Host -> spectator, once: the match it follows (what a replay's header holds) and the host's
    frame when the spectator was admitted. Frames follow from frame 0."""

    seed: int
    delay_frames: int
    rules_id: bytes
    names: tuple[str, str]  # (left, right)
    netcode: Netcode
    joined_at: int


@dataclass(frozen=True, slots=True)
class Frames:
    """Host -> spectator: confirmed frames `first` .. `first + len(inputs) - 1` (one packed input
    byte each, replay numbering: input i turns state i into state i + 1) and `chain`, the chain
    after the last of them, a checkpoint the spectator's re-simulation must meet."""

    first: int
    inputs: bytes
    chain: bytes


@dataclass(frozen=True, slots=True)
class Chat:
    """A line of chat: sent with an empty name, relayed by the host with the sender's."""

    name: str
    text: str


@dataclass(frozen=True, slots=True)
class Watchers:
    """Host -> joiner: how many spectators watch now (sent when it changes), for the overlay."""

    count: int


Message = (
    Hello
    | Challenge
    | Auth
    | Welcome
    | Refuse
    | Input
    | ChainCheck
    | Ping
    | Pong
    | Goodbye
    | MatchInfo
    | Frames
    | Chat
    | Watchers
)


def printable(text: str) -> str:
    """A peer's text made safe to show: control characters (newlines, terminal escapes) become '?'.

    Names and details come from the other machine and end up in terminals, logs and replays; a peer
    must not be able to forge log lines or send escape sequences through them.
    """
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def name_as_sent(name: str) -> str:
    """`name` as the peer will see it (cut to MAX_NAME_BYTES of UTF-8, unprintables as '?'): the
    local side records this too, so both replays of a match name the players alike."""
    return printable(utf8_prefix(name, MAX_NAME_BYTES).decode("utf-8"))


def chat_text(text: str) -> str:
    """A chat line as it may be sent and shown: one line, no control characters, at most
    `MAX_CHAT_BYTES` of UTF-8."""
    return printable(utf8_prefix(" ".join(text.split()), MAX_CHAT_BYTES).decode("utf-8", errors="ignore"))


# -- encoding -------------------------------------------------------------------------------------
def _echo(inputs: bytes) -> bytes:
    if len(inputs) > MAX_ECHO_FRAMES:
        raise ValueError(f"at most {MAX_ECHO_FRAMES} inputs are sent back at once")
    return _U16.pack(len(inputs)) + inputs


def _short_bytes(data: bytes) -> bytes:
    return _U8.pack(len(data)) + data


def _framed(tag: int, payload: bytes) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"message payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    return _HEADER.pack(0x80 | tag, len(payload)) + payload


def encode_input(player_input: int, chain_bits: int, check_lag: int = 0) -> bytes:
    return bytes(((player_input & 3) << 5 | check_lag & 0x1F, chain_bits & 0xFF, (chain_bits >> 8) & 0xFF))


def encode(message: Message) -> bytes:
    if isinstance(message, Input):
        return encode_input(message.player_input, message.chain_bits, message.check_lag)
    if isinstance(message, Hello):
        payload = (
            MAGIC
            + _U16.pack(message.protocol_version)
            + _U8.pack(message.purpose)
            + _short_bytes(message.rules_id)
            + message.nonce
            + _short_bytes(utf8_prefix(message.name, MAX_NAME_BYTES))
            + _short_bytes(message.match_id)
            + _U32.pack(message.held)
            + _U32.pack(message.own_from)
        )
        return _framed(TAG_HELLO, payload)
    if isinstance(message, Challenge):
        payload = (
            message.nonce
            + _U8.pack(int(message.key_required))
            + _short_bytes(message.proof)
            + _U32.pack(message.own_from)
        )
        return _framed(TAG_CHALLENGE, payload)
    if isinstance(message, Auth):
        payload = _short_bytes(message.proof) + _short_bytes(message.seat_proof) + _echo(message.echo)
        return _framed(TAG_AUTH, payload)
    if isinstance(message, Welcome):
        payload = (
            _U64.pack(message.seed)
            + _U8.pack(message.delay_frames)
            + _U8.pack(message.joiner_slot)
            + _U32.pack(message.rtt_ms)
            + _short_bytes(message.rules_id)
            + _short_bytes(utf8_prefix(message.name, MAX_NAME_BYTES))
            + message.match_id
            + _U32.pack(message.held)
            + _U8.pack(message.netcode)
            + _echo(message.echo)
        )
        return _framed(TAG_WELCOME, payload)
    if isinstance(message, Refuse):
        payload = _U8.pack(_REASON_CODE[message.reason]) + utf8_prefix(message.detail, MAX_DETAIL_BYTES)
        return _framed(TAG_REFUSE, payload)
    if isinstance(message, ChainCheck):
        return _framed(TAG_CHAIN, _U64.pack(message.frame) + message.chain)
    if isinstance(message, Ping):
        return _framed(TAG_PING, _U32.pack(message.token))
    if isinstance(message, Pong):
        return _framed(TAG_PONG, _U32.pack(message.token))
    if isinstance(message, Goodbye):
        payload = (
            _U8.pack(_REASON_CODE[message.reason])
            + _U64.pack(message.frame)
            + message.chain
            + utf8_prefix(message.detail, MAX_DETAIL_BYTES)
        )
        return _framed(TAG_GOODBYE, payload)
    if isinstance(message, MatchInfo):
        payload = (
            _U64.pack(message.seed)
            + _U8.pack(message.delay_frames)
            + _short_bytes(message.rules_id)
            + _short_bytes(utf8_prefix(message.names[0], MAX_NAME_BYTES))
            + _short_bytes(utf8_prefix(message.names[1], MAX_NAME_BYTES))
            + _U8.pack(message.netcode)
            + _U32.pack(message.joined_at)
        )
        return _framed(TAG_MATCH_INFO, payload)
    if isinstance(message, Frames):
        return _framed(TAG_FRAMES, _U32.pack(message.first) + message.chain + message.inputs)
    if isinstance(message, Chat):
        payload = _short_bytes(utf8_prefix(message.name, MAX_NAME_BYTES)) + utf8_prefix(
            message.text, MAX_CHAT_BYTES
        )
        return _framed(TAG_CHAT, payload)
    if isinstance(message, Watchers):
        return _framed(TAG_WATCHERS, _U8.pack(min(255, message.count)))
    raise TypeError(f"not a message: {message!r}")


# -- decoding -------------------------------------------------------------------------------------
class _Reader:
    """Reads fields from one payload; any shortfall or leftover is the peer's fault."""

    def __init__(self, payload: bytes, what: str) -> None:
        self.data = payload
        self.pos = 0
        self.what = what

    def take(self, size: int) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise RemoteProtocolError(f"{self.what} message is truncated")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def u8(self) -> int:
        return int(self.take(1)[0])

    def u16(self) -> int:
        return int(_U16.unpack(self.take(2))[0])

    def u32(self) -> int:
        return int(_U32.unpack(self.take(4))[0])

    def u64(self) -> int:
        return int(_U64.unpack(self.take(8))[0])

    def short_bytes(self, limit: int) -> bytes:
        size = self.u8()
        if size > limit:
            raise RemoteProtocolError(f"{self.what} field of {size} bytes exceeds {limit}")
        return self.take(size)

    def text(self, data: bytes) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise RemoteProtocolError(f"{self.what} text is not valid UTF-8") from None

    def echo(self) -> bytes:
        size = self.u16()
        if size > MAX_ECHO_FRAMES:
            raise RemoteProtocolError(f"{self.what} sends back {size} inputs; at most {MAX_ECHO_FRAMES} fit")
        data = self.take(size)
        if any(b > 3 for b in data):
            raise RemoteProtocolError(f"{self.what} sends back an input that is not two bits")
        return data

    def reason(self) -> str:
        code = self.u8()
        if not 1 <= code <= len(REASONS):
            raise RemoteProtocolError(f"{self.what} has unknown reason code {code}")
        return REASONS[code - 1]

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk

    def done(self) -> None:
        if self.pos != len(self.data):
            raise RemoteProtocolError(f"{self.what} message has {len(self.data) - self.pos} stray bytes")


def hello_version(payload: bytes) -> int:
    """The protocol version of a hello, readable whatever the rest of its layout is."""
    r = _Reader(payload, "hello")
    if r.take(len(MAGIC)) != MAGIC:
        raise RemoteProtocolError("not a Lockstep Pong peer (bad magic)")
    return r.u16()


def decode_payload(tag: int, payload: bytes) -> Message:
    if tag == TAG_HELLO:
        r = _Reader(payload, "hello")
        version = hello_version(r.take(len(MAGIC) + 2))
        if version != PROTOCOL_VERSION:
            # Another version may lay out the rest differently: report only what is stable.
            return Hello(version, b"", b"", "")
        purpose_code = r.u8()
        if purpose_code not in tuple(Purpose):
            raise RemoteProtocolError(f"hello has unknown purpose {purpose_code}")
        rules, nonce, name = r.short_bytes(255), r.take(NONCE_SIZE), r.text(r.short_bytes(MAX_NAME_BYTES))
        match, held, own_from = r.short_bytes(MATCH_ID_SIZE), r.u32(), r.u32()
        hello = Hello(version, rules, nonce, name, Purpose(purpose_code), match, held, own_from)
        r.done()
        return hello
    if tag == TAG_CHALLENGE:
        r = _Reader(payload, "challenge")
        nonce = r.take(NONCE_SIZE)
        key_flag = r.u8()
        if key_flag > 1:
            raise RemoteProtocolError("challenge has a bad key flag")
        challenge = Challenge(nonce, bool(key_flag), r.short_bytes(PROOF_SIZE), r.u32())
        r.done()
        return challenge
    if tag == TAG_AUTH:
        r = _Reader(payload, "auth")
        auth = Auth(r.short_bytes(PROOF_SIZE), r.short_bytes(PROOF_SIZE), r.echo())
        r.done()
        return auth
    if tag == TAG_WELCOME:
        r = _Reader(payload, "welcome")
        seed, delay, slot, rtt = r.u64(), r.u8(), r.u8(), r.u32()
        rules_id = r.short_bytes(255)
        name = r.text(r.short_bytes(MAX_NAME_BYTES))
        match, held, netcode = r.take(MATCH_ID_SIZE), r.u32(), r.u8()
        if netcode not in tuple(Netcode):
            raise RemoteProtocolError(f"welcome names an unknown netcode {netcode}")
        welcome = Welcome(seed, delay, slot, rules_id, rtt, name, match, held, Netcode(netcode), r.echo())
        r.done()
        if welcome.joiner_slot not in (0, 1):
            raise RemoteProtocolError(f"welcome assigns an invalid slot {welcome.joiner_slot}")
        return welcome
    if tag == TAG_REFUSE:
        r = _Reader(payload, "refusal")
        reason = r.reason()
        return Refuse(reason, r.text(r.rest()[:MAX_DETAIL_BYTES]))
    if tag == TAG_CHAIN:
        r = _Reader(payload, "chain check")
        check = ChainCheck(r.u64(), r.take(8))
        r.done()
        return check
    if tag in (TAG_PING, TAG_PONG):
        r = _Reader(payload, "ping")
        token = r.u32()
        r.done()
        return Ping(token) if tag == TAG_PING else Pong(token)
    if tag == TAG_GOODBYE:
        r = _Reader(payload, "goodbye")
        reason, frame, chain = r.reason(), r.u64(), r.take(8)
        return Goodbye(reason, frame, chain, r.text(r.rest()[:MAX_DETAIL_BYTES]))
    if tag == TAG_MATCH_INFO:
        r = _Reader(payload, "match info")
        seed, delay, rules = r.u64(), r.u8(), r.short_bytes(255)
        left, right = r.text(r.short_bytes(MAX_NAME_BYTES)), r.text(r.short_bytes(MAX_NAME_BYTES))
        netcode, joined_at = r.u8(), r.u32()
        r.done()
        if netcode not in tuple(Netcode):
            raise RemoteProtocolError(f"match info names an unknown netcode {netcode}")
        return MatchInfo(seed, delay, rules, (left, right), Netcode(netcode), joined_at)
    if tag == TAG_FRAMES:
        r = _Reader(payload, "frames")
        first, chain, inputs = r.u32(), r.take(8), r.rest()
        if not inputs:
            raise RemoteProtocolError("a batch of frames holds no frame")
        if max(inputs) > MAX_FRAME_INPUT:
            raise RemoteProtocolError(f"a batch of frames holds an input above {MAX_FRAME_INPUT}")
        return Frames(first, inputs, chain)
    if tag == TAG_CHAT:
        r = _Reader(payload, "chat")
        name = r.text(r.short_bytes(MAX_NAME_BYTES))
        text = r.rest()
        if len(text) > MAX_CHAT_BYTES:
            raise RemoteProtocolError(f"a chat line of {len(text)} bytes exceeds {MAX_CHAT_BYTES}")
        return Chat(name, r.text(text))
    if tag == TAG_WATCHERS:
        r = _Reader(payload, "watchers")
        watchers = Watchers(r.u8())
        r.done()
        return watchers
    raise RemoteProtocolError(f"unknown message tag {tag}")


class Decoder:
    """Turns a byte stream, split anywhere, into messages; bounded buffering."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def take_rest(self) -> bytes:
        """The bytes not decoded yet, for the machine the stream is handed over to."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest

    def next_message(self) -> Message | None:
        """The next complete message, None when more bytes are needed."""
        buf = self._buffer
        if not buf:
            return None
        first = buf[0]
        if not first & 0x80:
            if len(buf) < INPUT_SIZE:
                return None
            message = Input((first >> 5) & 3, buf[1] | buf[2] << 8, first & 0x1F)
            del buf[:INPUT_SIZE]
            return message
        if len(buf) < _HEADER.size:
            return None
        _, size = _HEADER.unpack_from(buf)
        if size > MAX_PAYLOAD:
            raise RemoteProtocolError(f"message of {size} bytes exceeds the {MAX_PAYLOAD}-byte limit")
        end = _HEADER.size + size
        if len(buf) < end:
            return None
        payload = bytes(buf[_HEADER.size : end])
        del buf[:end]
        return decode_payload(first & 0x7F, payload)
