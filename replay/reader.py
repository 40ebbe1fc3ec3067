"""Reading a replay: the intact prefix of a crashed recording, a precise report of a corrupted one.

`read_replay(path)` returns a `Replay` or raises `ReplayError` (one line for a person, never a
traceback's worth): corruption names the chunk and byte offset (`ReplayCorruptError`), another
format version or `SIM_VERSION` names both versions (`ReplayVersionError`). A file cut short by a
crash is not an error: it yields every complete chunk, `truncated=True` and a warning saying where
it ends.

Files are read as a stream: `open_replay(path)` gives a `ReplayReader` that checks the header and
then yields one chunk at a time, in memory bounded by a record, so a caller that needs only a pass
over the chunks (verify, info) costs the same on a crafted gigabyte as on a minute of play, and may
stop at the first chunk that answers its question. `read_replay` collects a whole file (`max_frames`
bounds what it will hold).
"""

from __future__ import annotations

import io
import os
import stat
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from lockstep.chain import CHAIN_SIZE
from lockstep.rules import SIM_VERSION, TICKS_PER_SECOND, Rules, RulesError, split_rules_id
from replay.format import (
    BODY_FIXED,
    CRC,
    FOOTER_FIXED,
    FORMAT_VERSION,
    HOST_SEAT,
    MAGIC,
    MAX_CHUNK_FRAMES,
    MAX_FILE_BYTES,
    MAX_REASON_BYTES,
    NETCODES,
    PREFIX,
    PREFIX_END,
    RECORD_HEAD,
    RESUME,
    RESUME_KINDS,
    SEAT,
    TAG_CHAT,
    TAG_CHUNK,
    TAG_END,
    TAG_RESUME,
    VALID_INPUT_MAX,
    RecordedSeat,
    ReplayCorruptError,
    ReplayError,
    ReplayTooLongError,
    ReplayVersionError,
    check_byte,
)

__all__ = [
    "ChatLine",
    "Footer",
    "Header",
    "Replay",
    "ReplayCorruptError",
    "ReplayError",
    "ReplayReader",
    "ReplayTooLongError",
    "ReplayVersionError",
    "open_replay",
    "parse_replay",
    "read_replay",
]


@dataclass(frozen=True)
class Resume:
    """Play went on at `frame` after a break: a reconnect, or a seat taken back after a crash."""

    frame: int
    kind: str
    paused_ms: int


@dataclass(frozen=True)
class ChatLine:
    """A line of chat and the frame count when it arrived; shown by the viewer, never verified."""

    frame: int
    name: str
    text: str


@dataclass(frozen=True)
class Footer:
    frames: int
    final_chain: bytes
    end_reason: str


@dataclass(frozen=True)
class Replay:
    """A replay as read: the header fields, every intact frame input, and the recorded chains."""

    format_version: int
    sim_version: int
    rules: Rules
    seed: int
    input_delay: int
    names: tuple[str, str]
    created_unix: int  # metadata only: never part of the game
    chunk_frames: int  # nominal frames per chunk the recorder used
    frame_inputs: bytes  # one packed byte per frame (lockstep.inputs), frame 1 first
    checkpoints: list[tuple[int, bytes]]  # (frame f, chain[f]) at the end of every chunk
    footer: Footer | None  # None when the recording did not end in order (crash, kill)
    truncated: bool
    warnings: list[str] = field(default_factory=list)
    size_bytes: int = 0
    header_bytes: int = 0
    path: str = ""
    chat: list[ChatLine] = field(default_factory=list)
    netcode: str = "lockstep"
    seat: RecordedSeat | None = None  # the recorder's seat, when it recorded one

    @property
    def frames(self) -> int:
        return len(self.frame_inputs)

    @property
    def duration_s(self) -> float:
        return self.frames / TICKS_PER_SECOND

    @property
    def end_reason(self) -> str | None:
        return self.footer.end_reason if self.footer else None

    @property
    def recorded_final_chain(self) -> bytes | None:
        """The chain the recorder wrote for the last frame (footer, else the last checkpoint)."""
        if self.footer is not None:
            return self.footer.final_chain
        return self.checkpoints[-1][1] if self.checkpoints else None


@dataclass(frozen=True)
class Header:
    """The header fields of a replay, as read."""

    format_version: int
    sim_version: int
    rules: Rules
    seed: int
    input_delay: int
    names: tuple[str, str]
    created_unix: int
    chunk_frames: int
    header_bytes: int
    netcode: str = "lockstep"
    seat: RecordedSeat | None = None  # the recorder's seat, when it recorded one (a player's replay)


class ReplayReader:
    """A replay read record by record: memory stays bounded by one record (at most 64 KiB) whatever
    the file's size, and a caller may stop at any chunk without reading the rest.

    The header is read and checked on construction; `chunks()` then yields every chunk's inputs and
    recorded chain in order and raises `ReplayError` at the first bad record. Once it is exhausted,
    `footer`, `truncated`, `warnings` and `size_bytes` describe the whole file.
    """

    def __init__(self, file: BinaryIO, name: str) -> None:
        self._file = file
        self.name = name
        head = self._read(PREFIX_END)
        if len(head) == PREFIX_END and head.startswith(MAGIC):
            version, body_length, check = PREFIX.unpack_from(head, len(MAGIC))
            if check == check_byte(head[len(MAGIC) : PREFIX_END - 1]) and version == FORMAT_VERSION:
                head += self._read(body_length + CRC.size)
        self.header = _parse_header(head, name)
        self.footer: Footer | None = None
        self.truncated = False
        self.warnings: list[str] = []
        self.frames = 0
        self.chunk_count = 0
        self.chat: list[ChatLine] = []  # the lines of chat read so far, in order
        self.resumes: list[Resume] = []  # where play went on after a break, in order
        self.size_bytes = len(head)  # bytes read so far: the file's size once `chunks()` is done
        self._started = False

    def _read(self, size: int) -> bytes:
        try:
            return self._file.read(size)
        except OSError as exc:
            raise ReplayError(f"cannot read replay {self.name}: {exc.strerror or exc}") from None

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ReplayReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def chunks(self) -> Iterator[tuple[bytes, bytes]]:
        """(inputs, chain after the chunk's last frame) of every intact chunk, in order; once only."""
        if self._started:
            raise RuntimeError("ReplayReader.chunks() reads the file once")
        self._started = True
        name = self.name
        head_size = RECORD_HEAD.size
        while True:
            pos = self.size_bytes
            chunk = self.chunk_count
            head = self._read(head_size)
            if not head:
                break
            if self.footer is not None:
                try:
                    end = self._file.seek(0, os.SEEK_END)
                except OSError:
                    end = pos + len(head)
                raise ReplayCorruptError(
                    f"{name}: {max(end, pos + len(head)) - pos} unexpected bytes after the footer, at "
                    f"byte offset {pos}",
                    offset=pos,
                )
            if len(head) < head_size:
                self._cut(pos, len(head))
                return
            tag, length, check = RECORD_HEAD.unpack(head)
            if check != check_byte(head[:3]):
                raise ReplayCorruptError(
                    f"{name}: chunk {chunk} at byte offset {pos} is corrupted: bad record header",
                    offset=pos,
                    chunk=chunk,
                )
            rest = self._read(length + CRC.size)
            if len(rest) < length + CRC.size:
                self._cut(pos, head_size + len(rest))
                return
            self.size_bytes = pos + head_size + len(rest)
            payload = rest[:length]
            (crc,) = CRC.unpack_from(rest, length)
            if crc != zlib.crc32(payload, zlib.crc32(head)):
                end = pos + head_size + length
                what = "the footer" if tag == TAG_END else f"chunk {chunk}"
                raise ReplayCorruptError(
                    f"{name}: {what} at byte offset {pos} is corrupted: CRC mismatch over bytes "
                    f"{pos}..{end + CRC.size - 1}",
                    offset=pos,
                    chunk=chunk,
                )
            if tag == TAG_CHUNK:
                count = length - CHAIN_SIZE
                if not 1 <= count <= MAX_CHUNK_FRAMES:
                    raise ReplayCorruptError(
                        f"{name}: chunk {chunk} at byte offset {pos} claims {count} frames",
                        offset=pos,
                        chunk=chunk,
                    )
                inputs = payload[:count]
                if max(inputs) > VALID_INPUT_MAX:
                    bad = next(i for i, b in enumerate(inputs) if b > VALID_INPUT_MAX)
                    at = pos + head_size + bad
                    raise ReplayCorruptError(
                        f"{name}: chunk {chunk} holds an impossible input byte 0x{inputs[bad]:02x} "
                        f"at byte offset {at}",
                        offset=at,
                        chunk=chunk,
                    )
                self.frames += count
                self.chunk_count += 1
                yield inputs, payload[count:]
            elif tag == TAG_END:
                self.footer = _parse_footer(payload, pos + head_size, self.frames, name)
            elif tag == TAG_CHAT:
                self.chat.append(_parse_chat(payload, pos, self.frames, name))
            elif tag == TAG_RESUME:
                self.resumes.append(_parse_resume(payload, pos, self.frames, name))
            else:
                raise ReplayCorruptError(
                    f"{name}: unknown record type 0x{tag:02x} at byte offset {pos} (chunk {chunk})",
                    offset=pos,
                    chunk=chunk,
                )
        if self.footer is None:
            self.truncated = True
            self.warnings.append(
                f"{name}: truncated: no footer (the recording did not end in order); "
                f"kept all {self.frames} frames, up to byte offset {self.size_bytes}"
            )

    def _cut(self, pos: int, got: int) -> None:
        """The file ends inside the record at `pos` (a crash while writing it): keep what came before."""
        self.size_bytes = pos + got
        self.truncated = True
        self.warnings.append(
            f"{self.name}: truncated: the file ends at byte offset {self.size_bytes}, inside the record "
            f"that starts at byte offset {pos} (chunk {self.chunk_count}); kept the intact prefix of "
            f"{self.frames} frames"
        )


def open_replay(path: str | os.PathLike[str]) -> ReplayReader:
    """Open a replay file and read its header (see `ReplayReader`); raises `ReplayError`."""
    name = os.fspath(path)
    try:
        if not stat.S_ISREG(os.stat(name).st_mode):  # before open(): opening a FIFO would block
            raise ReplayError(f"cannot read replay {name}: not a regular file")
        file = open(name, "rb")  # noqa: SIM115 (the reader owns it; closed on every failure below)
    except OSError as exc:
        raise ReplayError(f"cannot read replay {name}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ReplayError(f"cannot read replay {name}: not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise ReplayError(
                f"cannot read replay {name}: {info.st_size} bytes is more than the "
                f"{MAX_FILE_BYTES} a replay may have"
            )
        return ReplayReader(file, name)
    except BaseException:
        file.close()
        raise


def read_replay(path: str | os.PathLike[str], *, max_frames: int | None = None) -> Replay:
    """Read and check a whole replay file (see the module docstring); raises `ReplayError`.

    With `max_frames`, a file holding more frames raises `ReplayTooLongError` as soon as reading
    passes that many, so a crafted file costs no more memory than a replay of that length.
    """
    with open_replay(path) as reader:
        return _collect(reader, max_frames)


def parse_replay(data: bytes, name: str = "replay") -> Replay:
    """`read_replay` on bytes already in memory; `name` is used in messages."""
    return _collect(ReplayReader(io.BytesIO(data), name), None)


def _collect(reader: ReplayReader, max_frames: int | None) -> Replay:
    inputs = bytearray()
    checkpoints: list[tuple[int, bytes]] = []
    for chunk_inputs, chain in reader.chunks():
        inputs += chunk_inputs
        if max_frames is not None and len(inputs) > max_frames:
            raise ReplayTooLongError(
                f"{reader.name}: more than {max_frames} frames", offset=reader.size_bytes
            )
        checkpoints.append((len(inputs), chain))
    h = reader.header
    return Replay(
        format_version=h.format_version,
        sim_version=h.sim_version,
        rules=h.rules,
        seed=h.seed,
        input_delay=h.input_delay,
        names=h.names,
        created_unix=h.created_unix,
        chunk_frames=h.chunk_frames,
        frame_inputs=bytes(inputs),
        checkpoints=checkpoints,
        footer=reader.footer,
        truncated=reader.truncated,
        warnings=reader.warnings,
        size_bytes=reader.size_bytes,
        header_bytes=h.header_bytes,
        path=reader.name,
        chat=reader.chat,
        netcode=h.netcode,
        seat=h.seat,
    )


def _shown(raw: bytes) -> str:
    """Text from a file made safe to show: control characters (terminal escapes) become '?'."""
    return "".join(ch if ch.isprintable() else "?" for ch in raw.decode("utf-8", "replace"))


def _parse_chat(payload: bytes, pos: int, frames: int, name: str) -> ChatLine:
    if len(payload) < 9 or len(payload) < 9 + payload[8]:
        raise ReplayCorruptError(f"{name}: the chat line at byte offset {pos} is cut short", offset=pos)
    frame = int.from_bytes(payload[:8], "little")
    if frame > frames:
        raise ReplayCorruptError(
            f"{name}: the chat line at byte offset {pos} names frame {frame}, after the {frames} "
            "frames before it",
            offset=pos,
        )
    size = payload[8]
    return ChatLine(frame, _shown(payload[9 : 9 + size]), _shown(payload[9 + size :]))


def _parse_resume(payload: bytes, pos: int, frames: int, name: str) -> Resume:
    if len(payload) != RESUME.size:
        raise ReplayCorruptError(f"{name}: the resume record at byte offset {pos} is malformed", offset=pos)
    frame, kind, paused_ms = RESUME.unpack(payload)
    if frame > frames or kind >= len(RESUME_KINDS):
        raise ReplayCorruptError(f"{name}: the resume record at byte offset {pos} is malformed", offset=pos)
    return Resume(frame, RESUME_KINDS[kind], paused_ms)


def _parse_header(data: bytes, name: str) -> Header:
    """The header at the start of `data` (the whole of it, when the file is long enough)."""
    n = len(data)
    magic_size = len(MAGIC)
    if n == 0:
        raise ReplayError(f"{name}: the file is empty", offset=0)
    if n < magic_size:
        if data == MAGIC[:n]:
            raise ReplayError(f"{name}: truncated inside the header: the file has only {n} bytes", offset=n)
        raise ReplayCorruptError(f"{name}: not a Lockstep Pong replay (no replay signature at byte 0)")
    if data[:magic_size] != MAGIC:
        raise ReplayCorruptError(
            f"{name}: not a Lockstep Pong replay, or its signature is corrupted (bytes 0..7)", offset=0
        )
    if n < PREFIX_END:
        raise ReplayError(f"{name}: truncated inside the header: the file has only {n} bytes", offset=n)
    version, body_length, check = PREFIX.unpack_from(data, magic_size)
    if check != check_byte(data[magic_size : PREFIX_END - 1]):
        raise ReplayCorruptError(
            f"{name}: the header is corrupted: bad check of byte offsets {magic_size}..{PREFIX_END - 1}",
            offset=magic_size,
        )
    if version != FORMAT_VERSION:
        raise ReplayVersionError(
            f"{name}: replay format version {version}; this pong reads format version {FORMAT_VERSION} only"
        )
    body_end = PREFIX_END + body_length
    header_end = body_end + CRC.size
    if n < header_end:
        raise ReplayError(
            f"{name}: truncated inside the header: the file has {n} bytes, the header needs {header_end}",
            offset=n,
        )
    (crc,) = CRC.unpack_from(data, body_end)
    if crc != zlib.crc32(data[:body_end]):
        raise ReplayCorruptError(
            f"{name}: the header is corrupted: CRC mismatch over byte offsets 0..{header_end - 1}", offset=0
        )

    def malformed(what: str) -> ReplayCorruptError:
        return ReplayCorruptError(f"{name}: the header is malformed: {what}", offset=PREFIX_END)

    if body_length < BODY_FIXED.size + 2:
        raise malformed(f"body of {body_length} bytes is too short")
    rid, seed, input_delay, created_unix, chunk_frames = BODY_FIXED.unpack_from(data, PREFIX_END)
    sim_version, encoded_rules = split_rules_id(rid)
    if sim_version != SIM_VERSION:
        raise ReplayVersionError(
            f"{name}: recorded with SIM_VERSION {sim_version}, but this pong simulates SIM_VERSION "
            f"{SIM_VERSION}: its inputs would play a different game"
        )
    try:
        rules = Rules.decode(encoded_rules)
    except RulesError as exc:
        raise malformed(f"invalid rules: {exc}") from None
    if not 1 <= chunk_frames <= MAX_CHUNK_FRAMES:
        raise malformed(f"{chunk_frames} frames per chunk")
    pos = PREFIX_END + BODY_FIXED.size
    names: list[str] = []
    for side in ("left", "right"):
        if pos >= body_end:
            raise malformed(f"the {side} player's name is missing")
        size = data[pos]
        if pos + 1 + size > body_end:
            raise malformed(f"the {side} player's name runs past the header")
        try:
            names.append(data[pos + 1 : pos + 1 + size].decode("utf-8"))
        except UnicodeDecodeError:
            raise malformed(f"the {side} player's name is not UTF-8") from None
        pos += 1 + size
    netcode = "lockstep"
    seat: RecordedSeat | None = None
    if pos < body_end:  # a match that was not lockstep, or a recorded seat, says how it hid latency
        with_seat = body_end - pos == 1 + SEAT.size
        if not (0 if with_seat else 1) <= data[pos] < len(NETCODES):
            raise malformed(f"unknown netcode {data[pos]}")
        netcode = NETCODES[data[pos]]
        pos += 1
        if with_seat:
            slot, match_id, secret = SEAT.unpack_from(data, pos)
            if slot & ~(1 | HOST_SEAT):
                raise malformed(f"the recorded seat is slot {slot}")
            seat = RecordedSeat(slot & 1, match_id, secret, bool(slot & HOST_SEAT))
            pos += SEAT.size
    if pos != body_end:
        raise malformed(f"{body_end - pos} unexpected bytes at the end of the header")
    return Header(
        format_version=version,
        sim_version=sim_version,
        rules=rules,
        seed=seed,
        input_delay=input_delay,
        names=(names[0], names[1]),
        created_unix=created_unix,
        chunk_frames=chunk_frames,
        header_bytes=header_end,
        netcode=netcode,
        seat=seat,
    )


def _parse_footer(payload: bytes, start: int, frames: int, name: str) -> Footer:
    """The footer record's payload (it starts at byte offset `start`) after `frames` frames."""
    if not FOOTER_FIXED.size < len(payload) <= FOOTER_FIXED.size + MAX_REASON_BYTES:
        raise ReplayCorruptError(f"{name}: the footer at byte offset {start} is malformed", offset=start)
    recorded_frames, final_chain = FOOTER_FIXED.unpack_from(payload)
    try:
        reason = payload[FOOTER_FIXED.size :].decode("utf-8")
    except UnicodeDecodeError:
        raise ReplayCorruptError(
            f"{name}: the footer's end reason at byte offset {start} is not UTF-8", offset=start
        ) from None
    if recorded_frames != frames:
        raise ReplayCorruptError(
            f"{name}: the footer says {recorded_frames} frames but the chunks hold {frames}", offset=start
        )
    return Footer(recorded_frames, final_chain, reason)
