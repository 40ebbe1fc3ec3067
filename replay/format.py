"""The replay file format (version 1): constants, record layout and the errors of reading one.

All integers are little-endian. A file is a header, then records: chunks of frames, and a footer
on an orderly end.

Header::

    offset  size  field
    0       8     magic  b"\\x89PONGRP\\n" (non-ASCII first byte, newline: text-mode mangling shows)
    8       2     format version (u16)                 \\  these four bytes never change layout
    10      2     body length L (u16)                  /  across format versions, so a reader can
    12      1     prefix check = 0xA5 ^ bytes 8..11       tell "other version" from "corrupted"
    13      L     body:
                    rules id (RULES_ID_SIZE bytes: u32 SIM_VERSION + encoded rules)
                    seed (u64), input delay (u16), creation time (i64 unix seconds, metadata only),
                    nominal frames per chunk (u16),
                    name of the left player (u8 length + UTF-8), name of the right player (same),
                    then, only when the match was not lockstep or the seat is recorded, its
                    netcode (u8: 0 = lockstep, 1 = rollback); a reader of this version takes a
                    header without it as lockstep;
                    then, optionally, the recorder's seat (SEAT bytes: its slot u8, plus 2 when
                    it is the host's; the match id; the match's secret): what `pong join --rejoin`
                    and `pong host --resume` prove to take that seat back after a crash. Whoever
                    holds the file holds the seat: share an unfinished replay with care.
    13+L    4     CRC32 of bytes 0 .. 13+L

Record (chunk, chat line or footer)::

    1  tag: b"C" chunk, b"T" a line of chat, b"E" end (footer)
    2  payload length P (u16)
    1  record check = 0xA5 ^ tag ^ both length bytes
    P  payload
    4  CRC32 of the tag, length, check and payload

    chunk payload:  n frame inputs (one byte per frame: both players packed, see lockstep.inputs),
                    then the chain value after the chunk's last frame (8 bytes); n = P - 8
    chat payload:   the frame count when the line arrived (u64; at most the frames before it),
                    sender (u8 length + UTF-8), text (UTF-8, the rest); no part of the game
    footer payload: frame count (u64), final chain (8 bytes), end reason (UTF-8, the rest)

The check byte protects the length, so a single corrupted byte in a record header is reported as
corruption and is never mistaken for a file cut short by a crash. With 60 frames per chunk a
chunk costs 1 byte per frame plus 16 bytes, about 1.27 bytes per frame.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from lockstep.chain import CHAIN_SIZE
from lockstep.rules import RULES_ID_SIZE

MAGIC = b"\x89PONGRP\n"
FORMAT_VERSION = 1

PREFIX = struct.Struct("<HHB")  # format version, body length, prefix check
PREFIX_END = len(MAGIC) + PREFIX.size  # 13: where the header body starts
BODY_FIXED = struct.Struct(f"<{RULES_ID_SIZE}sQHqH")  # rules id, seed, delay, created, chunk frames
RECORD_HEAD = struct.Struct("<BHB")  # tag, payload length, check
CRC = struct.Struct("<I")
FOOTER_FIXED = struct.Struct(f"<Q{CHAIN_SIZE}s")  # frames, final chain; the end reason follows

TAG_CHUNK = ord("C")
TAG_END = ord("E")
TAG_CHAT = ord("T")
# Play went on after a break: u64 frame, u8 kind (RESUME_KINDS), u32 ms paused. Not part of the game.
TAG_RESUME = ord("R")
RESUME = struct.Struct("<QBI")
RESUME_KINDS = ("reconnect", "rejoin")  # after a dropped connection; a seat taken back after a crash
MAX_CHAT_RECORD_BYTES = 255  # a chat line's text (the protocol sends at most 120)
CHECK_SEED = 0xA5

DEFAULT_CHUNK_FRAMES = 60  # about one second of play per chunk: a crash loses at most this
MAX_CHUNK_FRAMES = 4096
MAX_NAME_BYTES = 255
MAX_REASON_BYTES = 64
MAX_HEADER_DELAY = 0xFFFF  # what the header's 16-bit delay field holds (the engine allows far less)
MAX_FILE_BYTES = 1 << 30  # about 800 hours of play; nothing bigger is a replay
VALID_INPUT_MAX = 0x0F  # the four bits lockstep.inputs uses
MATCH_ID_BYTES = 16
SECRET_BYTES = 32
SEAT = struct.Struct(f"<B{MATCH_ID_BYTES}s{SECRET_BYTES}s")  # slot (| HOST_SEAT), match id, secret
HOST_SEAT = 2


@dataclass(frozen=True)
class RecordedSeat:
    """The recorder's seat in its match: which paddle, which match, and the secret that proves it."""

    slot: int
    match_id: bytes
    secret: bytes
    host: bool = False  # whose seat: the host's (taken back with --resume) or the joiner's (--rejoin)


# How the match hid latency, by the header's netcode byte (peer.messages.Netcode's values). A
# lockstep replay leaves the byte out: its bytes are those of a replay from before rollback.
NETCODES = ("lockstep", "rollback")


def check_byte(data: bytes) -> int:
    """The one-byte check of a header prefix or record head: any single changed byte breaks it."""
    value = CHECK_SEED
    for b in data:
        value ^= b
    return value


def record_head(tag: int, payload_length: int) -> bytes:
    head = struct.pack("<BH", tag, payload_length)
    return head + bytes((check_byte(head),))


class ReplayError(Exception):
    """A file that cannot be read as a replay; the message is one line for a person.

    `offset` is the byte offset of the problem and `chunk` the index of the chunk (0-based) where
    it applies; either is None when it does not.
    """

    def __init__(self, message: str, *, offset: int | None = None, chunk: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset
        self.chunk = chunk


class ReplayCorruptError(ReplayError):
    """A byte of the file is wrong (a CRC or check byte does not match, a field is impossible)."""


class ReplayTooLongError(ReplayError):
    """A replay holding more frames than the caller asked to read into memory."""


class ReplayVersionError(ReplayError):
    """A replay of another format version or `SIM_VERSION`: it means a different game here."""
