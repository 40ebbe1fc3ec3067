"""The streaming replay recorder: fed one confirmed frame at a time, crash-safe by construction.

    with ReplayWriter(path, rules, seed, input_delay, ("alice", "bob"), int(time.time())) as rec:
        for frame_input in confirmed_inputs:
            rec.add_frame(frame_input, game.advance(frame_input))
        rec.finish("finished")

Every chunk (60 frames, about a second of play) is written and flushed to the operating system as
soon as it is complete, so a crash of the process loses at most the frames of the current chunk.
`finish(reason)` writes the pending frames and the footer and syncs the file to disk; `close()` (or
leaving the `with` block without `finish`) writes the pending frames without a footer, which readers
report as truncated.

Disk failures (full disk, removed directory, ...) raise `ReplayWriteError`, the only exception a
caller has to catch; after one, the writer is closed and every later call raises it again.
Programming errors (an input byte above 15, a chain that is not 8 bytes, a seed or delay out of
range) raise `ValueError`. Player names longer than 255 bytes of UTF-8 are cut, never refused.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import zlib
from types import TracebackType
from typing import BinaryIO, NoReturn

from lockstep.chain import CHAIN_SIZE, chain_start
from lockstep.rules import Rules, rules_id
from replay.format import (
    BODY_FIXED,
    CRC,
    DEFAULT_CHUNK_FRAMES,
    FOOTER_FIXED,
    FORMAT_VERSION,
    HOST_SEAT,
    MAGIC,
    MATCH_ID_BYTES,
    MAX_CHAT_RECORD_BYTES,
    MAX_CHUNK_FRAMES,
    MAX_HEADER_DELAY,
    MAX_NAME_BYTES,
    MAX_REASON_BYTES,
    NETCODES,
    PREFIX,
    RESUME,
    RESUME_KINDS,
    SEAT,
    SECRET_BYTES,
    TAG_CHAT,
    TAG_CHUNK,
    TAG_END,
    TAG_RESUME,
    VALID_INPUT_MAX,
    RecordedSeat,
    check_byte,
    record_head,
)


class ReplayWriteError(Exception):
    """The replay could not be written (an `OSError` underneath); the message names the file."""


def encode_header(
    rules: Rules,
    seed: int,
    input_delay: int,
    names: tuple[str, str],
    created_unix: int,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    netcode: str = "lockstep",
    seat: RecordedSeat | None = None,
) -> bytes:
    """The header bytes of a replay; raises `ValueError` for values the format cannot hold."""
    if not isinstance(rules, Rules):
        raise ValueError("rules must be a lockstep.rules.Rules")
    if not 0 <= seed < 1 << 64:
        raise ValueError("seed must be in 0 .. 2**64-1")
    if not 0 <= input_delay <= MAX_HEADER_DELAY:
        raise ValueError(f"input delay must be 0..{MAX_HEADER_DELAY} frames")
    if not -(1 << 63) <= created_unix < 1 << 63:
        raise ValueError("created_unix out of range")
    if not 1 <= chunk_frames <= MAX_CHUNK_FRAMES:
        raise ValueError(f"chunk_frames must be 1..{MAX_CHUNK_FRAMES}")
    if len(names) != 2:
        raise ValueError("names must be a pair (left, right)")
    if netcode not in NETCODES:
        raise ValueError(f"netcode must be one of {', '.join(NETCODES)}")
    body = BODY_FIXED.pack(rules_id(rules), seed, input_delay, created_unix, chunk_frames)
    for name in names:
        raw = utf8_prefix(name, MAX_NAME_BYTES)
        body += bytes((len(raw),)) + raw
    if netcode != "lockstep" or seat is not None:
        body += bytes((NETCODES.index(netcode),))
    if seat is not None:
        if (
            seat.slot not in (0, 1)
            or len(seat.match_id) != MATCH_ID_BYTES
            or len(seat.secret) != SECRET_BYTES
        ):
            raise ValueError("a seat is a slot (0 or 1), a 16-byte match id and a 32-byte secret")
        body += SEAT.pack(seat.slot | (HOST_SEAT if seat.host else 0), seat.match_id, seat.secret)
    prefix = struct.pack("<HH", FORMAT_VERSION, len(body))
    head = MAGIC + PREFIX.pack(FORMAT_VERSION, len(body), check_byte(prefix)) + body
    return head + CRC.pack(zlib.crc32(head))


def encode_record(tag: int, payload: bytes) -> bytes:
    record = record_head(tag, len(payload)) + payload
    return record + CRC.pack(zlib.crc32(record))


def encode_chunk(frame_inputs: bytes, chain: bytes) -> bytes:
    return encode_record(TAG_CHUNK, frame_inputs + chain)


def encode_footer(frames: int, final_chain: bytes, end_reason: str) -> bytes:
    reason = utf8_prefix(end_reason, MAX_REASON_BYTES) or b"unknown"
    return encode_record(TAG_END, FOOTER_FIXED.pack(frames, final_chain) + reason)


def utf8_prefix(text: str, limit: int) -> bytes:
    """`text` as UTF-8, cut to at most `limit` bytes at a character boundary (never raises: a long
    or odd name must not cost a recording)."""
    raw = str(text).encode("utf-8", "replace")
    if len(raw) <= limit:
        return raw
    return raw[:limit].decode("utf-8", "ignore").encode("utf-8")


class ReplayWriter:
    """Records a match to `path` as it is played (see the module docstring)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        rules: Rules,
        seed: int,
        input_delay: int,
        names: tuple[str, str],
        created_unix: int,
        *,
        chunk_frames: int = DEFAULT_CHUNK_FRAMES,
        netcode: str = "lockstep",
        seat: RecordedSeat | None = None,
    ) -> None:
        header = encode_header(rules, seed, input_delay, names, created_unix, chunk_frames, netcode, seat)
        self.path = os.fspath(path)
        self.rules = rules
        self.seed = seed
        self.chunk_frames = chunk_frames
        self.frames = 0  # frames added so far
        self.bytes_written = 0
        self.finished = False
        self.closed = False
        self._pending = bytearray()
        self._chain = chain_start(rules, seed)
        self._failure: str | None = None
        self._file: BinaryIO | None = None
        try:
            self._file = open(self.path, "wb")  # noqa: SIM115 - held open for the whole match
        except OSError as exc:
            self._fail(exc)
        self._write(header)

    @property
    def chain(self) -> bytes:
        """The last chain value added (the start of the chain before any frame)."""
        return self._chain

    def add_frame(self, frame_input: int, chain: bytes) -> None:
        """Record one confirmed frame: both players' packed input and the chain after the frame."""
        if self._file is None:
            self._raise_closed()
        if not 0 <= frame_input <= VALID_INPUT_MAX:
            raise ValueError(f"frame input must be 0..{VALID_INPUT_MAX}, got {frame_input}")
        if len(chain) != CHAIN_SIZE:
            raise ValueError(f"a chain value is {CHAIN_SIZE} bytes, got {len(chain)}")
        self._pending.append(frame_input)
        self._chain = bytes(chain)
        self.frames += 1
        if len(self._pending) >= self.chunk_frames:
            self._write_chunk()

    def add_chat(self, name: str, text: str) -> None:
        """Record a line of chat at the current frame (the frames before it are written first, so
        the file reads in order). Chat is no part of the game: verification never looks at it."""
        if self._file is None:
            self._raise_closed()
        self._write_chunk()
        sender = utf8_prefix(name, MAX_NAME_BYTES)
        payload = struct.pack("<QB", self.frames, len(sender)) + sender
        self._write(encode_record(TAG_CHAT, payload + utf8_prefix(text, MAX_CHAT_RECORD_BYTES)))

    def add_resume(self, kind: str, paused_ms: int, frame: int | None = None) -> None:
        """Record that play went on after a break (`RESUME_KINDS`) at `frame` (default: the current
        one; never a later one)."""
        if self._file is None:
            self._raise_closed()
        self._write_chunk()
        at = self.frames if frame is None else min(frame, self.frames)
        payload = RESUME.pack(at, RESUME_KINDS.index(kind), min(max(paused_ms, 0), 0xFFFFFFFF))
        self._write(encode_record(TAG_RESUME, payload))

    def finish(self, end_reason: str) -> None:
        """An orderly end: write the pending frames and the footer, then close the file.

        `end_reason` is the reason the match ended with (`finished`, `quit`, `desync`,
        `peer_timeout`, ...); it is stored as at most 64 bytes of UTF-8, "unknown" when empty."""
        if self._file is None:
            self._raise_closed()
        self._write_chunk()
        self._write(encode_footer(self.frames, self._chain, end_reason))
        self._sync()
        self.finished = True
        self.close()

    def close(self) -> None:
        """Close without a footer (crash-like ends); the frames added so far stay readable.

        Safe to call more than once and after `finish`. Raises `ReplayWriteError` only if the
        pending frames cannot be written.
        """
        if self._file is None:
            self.closed = True
            return
        try:
            self._write_chunk()
        finally:
            file, self._file = self._file, None
            self.closed = True
            if file is not None:
                try:
                    file.close()
                except OSError as exc:
                    self._fail(exc)

    def __enter__(self) -> ReplayWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            # Do not hide the original exception behind a write error of ours.
            with contextlib.suppress(ReplayWriteError):
                self.close()
        else:
            self.close()

    def _write_chunk(self) -> None:
        if self._pending:
            record = encode_chunk(bytes(self._pending), self._chain)
            self._pending.clear()
            self._write(record)

    def _write(self, data: bytes) -> None:
        file = self._file
        if file is None:
            self._raise_closed()
        try:
            file.write(data)
            file.flush()
        except OSError as exc:
            self._fail(exc)
        self.bytes_written += len(data)

    def _sync(self) -> None:
        # Flushing each chunk survives a crash of the process; a finished replay should also
        # survive the machine going down right after the match, so the end pays for one fsync
        # (never once a chunk: at --fast speed that would be hundreds a second).
        assert self._file is not None
        try:
            os.fsync(self._file.fileno())
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # EINVAL: a pipe or device, nothing to sync
                self._fail(exc)
        # A new file is only durable once its directory entry is: best effort, as some file
        # systems cannot sync a directory.
        with contextlib.suppress(OSError):
            directory = os.open(os.path.dirname(os.path.abspath(self.path)), os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    def _fail(self, exc: OSError) -> NoReturn:
        reason = exc.strerror or str(exc)
        self._failure = f"cannot write replay {self.path}: {reason}"
        file, self._file = self._file, None
        self.closed = True
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()
        raise ReplayWriteError(self._failure) from exc

    def _raise_closed(self) -> NoReturn:
        if self._failure is not None:
            raise ReplayWriteError(self._failure)
        raise ReplayWriteError(f"replay {self.path} is already closed")
