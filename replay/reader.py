"""Reading a replay: the intact prefix of a crashed recording, a precise report of a corrupted one.

`read_replay(path)` returns a `Replay` or raises `ReplayError` (one line for a person, never a
traceback's worth): corruption names the chunk and byte offset (`ReplayCorruptError`), another
format version or `SIM_VERSION` names both versions (`ReplayVersionError`). A file cut short by a
crash is not an error: it yields every complete chunk, `truncated=True` and a warning saying where
it ends.
"""

from __future__ import annotations

import os
import stat
import zlib
from dataclasses import dataclass, field

from lockstep.chain import CHAIN_SIZE
from lockstep.rules import SIM_VERSION, TICKS_PER_SECOND, Rules, RulesError, split_rules_id
from replay.format import (
    BODY_FIXED,
    CRC,
    FOOTER_FIXED,
    FORMAT_VERSION,
    MAGIC,
    MAX_CHUNK_FRAMES,
    MAX_FILE_BYTES,
    MAX_REASON_BYTES,
    PREFIX,
    PREFIX_END,
    RECORD_HEAD,
    TAG_CHUNK,
    TAG_END,
    VALID_INPUT_MAX,
    ReplayCorruptError,
    ReplayError,
    ReplayVersionError,
    check_byte,
)

__all__ = [
    "Footer",
    "Replay",
    "ReplayCorruptError",
    "ReplayError",
    "ReplayVersionError",
    "parse_replay",
    "read_replay",
]


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


def read_replay(path: str | os.PathLike[str]) -> Replay:
    """Read and check a replay file (see the module docstring); raises `ReplayError`."""
    name = os.fspath(path)
    try:
        if not stat.S_ISREG(os.stat(name).st_mode):  # before open(): opening a FIFO would block
            raise ReplayError(f"cannot read replay {name}: not a regular file")
        with open(name, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ReplayError(f"cannot read replay {name}: not a regular file")
            if info.st_size > MAX_FILE_BYTES:
                raise ReplayError(
                    f"cannot read replay {name}: {info.st_size} bytes is more than the "
                    f"{MAX_FILE_BYTES} a replay may have"
                )
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ReplayError(f"cannot read replay {name}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ReplayError(f"cannot read replay {name}: more than {MAX_FILE_BYTES} bytes")
    return parse_replay(data, name)


def parse_replay(data: bytes, name: str = "replay") -> Replay:
    """`read_replay` on bytes already in memory; `name` is used in messages."""
    n = len(data)
    header_end, fields = _parse_header(data, name)
    sim_version, rules, seed, input_delay, created_unix, chunk_frames, names = fields

    pieces: list[bytes] = []
    checkpoints: list[tuple[int, bytes]] = []
    warnings: list[str] = []
    footer: Footer | None = None
    frames = 0
    chunk = 0
    pos = header_end
    truncated = False
    head_size = RECORD_HEAD.size
    while pos < n:
        if footer is not None:
            raise ReplayCorruptError(
                f"{name}: {n - pos} unexpected bytes after the footer, at byte offset {pos}",
                offset=pos,
            )
        if n - pos < head_size:
            truncated = True
            warnings.append(_cut_warning(name, n, pos, chunk, frames))
            break
        tag, length, check = RECORD_HEAD.unpack_from(data, pos)
        if check != check_byte(data[pos : pos + 3]):
            raise ReplayCorruptError(
                f"{name}: chunk {chunk} at byte offset {pos} is corrupted: bad record header",
                offset=pos,
                chunk=chunk,
            )
        end = pos + head_size + length
        if end + CRC.size > n:
            truncated = True
            warnings.append(_cut_warning(name, n, pos, chunk, frames))
            break
        (crc,) = CRC.unpack_from(data, end)
        if crc != zlib.crc32(data[pos:end]):
            what = "the footer" if tag == TAG_END else f"chunk {chunk}"
            raise ReplayCorruptError(
                f"{name}: {what} at byte offset {pos} is corrupted: CRC mismatch over bytes "
                f"{pos}..{end + CRC.size - 1}",
                offset=pos,
                chunk=chunk,
            )
        payload = pos + head_size
        if tag == TAG_CHUNK:
            count = length - CHAIN_SIZE
            if not 1 <= count <= MAX_CHUNK_FRAMES:
                raise ReplayCorruptError(
                    f"{name}: chunk {chunk} at byte offset {pos} claims {count} frames",
                    offset=pos,
                    chunk=chunk,
                )
            inputs = data[payload : payload + count]
            if max(inputs) > VALID_INPUT_MAX:
                bad = next(i for i, b in enumerate(inputs) if b > VALID_INPUT_MAX)
                raise ReplayCorruptError(
                    f"{name}: chunk {chunk} holds an impossible input byte 0x{inputs[bad]:02x} "
                    f"at byte offset {payload + bad}",
                    offset=payload + bad,
                    chunk=chunk,
                )
            pieces.append(inputs)
            frames += count
            checkpoints.append((frames, data[payload + count : end]))
            chunk += 1
        elif tag == TAG_END:
            footer = _parse_footer(data, payload, end, frames, name)
        else:
            raise ReplayCorruptError(
                f"{name}: unknown record type 0x{tag:02x} at byte offset {pos} (chunk {chunk})",
                offset=pos,
                chunk=chunk,
            )
        pos = end + CRC.size
    else:
        if footer is None:
            truncated = True
            warnings.append(
                f"{name}: truncated: no footer (the recording did not end in order); "
                f"kept all {frames} frames, up to byte offset {n}"
            )

    return Replay(
        format_version=FORMAT_VERSION,
        sim_version=sim_version,
        rules=rules,
        seed=seed,
        input_delay=input_delay,
        names=names,
        created_unix=created_unix,
        chunk_frames=chunk_frames,
        frame_inputs=b"".join(pieces),
        checkpoints=checkpoints,
        footer=footer,
        truncated=truncated,
        warnings=warnings,
        size_bytes=n,
        header_bytes=header_end,
        path=name,
    )


_HeaderFields = tuple[int, Rules, int, int, int, int, tuple[str, str]]


def _parse_header(data: bytes, name: str) -> tuple[int, _HeaderFields]:
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
    if pos != body_end:
        raise malformed(f"{body_end - pos} unexpected bytes at the end of the header")
    fields = (sim_version, rules, seed, input_delay, created_unix, chunk_frames, (names[0], names[1]))
    return header_end, fields


def _parse_footer(data: bytes, start: int, end: int, frames: int, name: str) -> Footer:
    length = end - start
    if not FOOTER_FIXED.size < length <= FOOTER_FIXED.size + MAX_REASON_BYTES:
        raise ReplayCorruptError(f"{name}: the footer at byte offset {start} is malformed", offset=start)
    recorded_frames, final_chain = FOOTER_FIXED.unpack_from(data, start)
    try:
        reason = data[start + FOOTER_FIXED.size : end].decode("utf-8")
    except UnicodeDecodeError:
        raise ReplayCorruptError(
            f"{name}: the footer's end reason at byte offset {start} is not UTF-8", offset=start
        ) from None
    if recorded_frames != frames:
        raise ReplayCorruptError(
            f"{name}: the footer says {recorded_frames} frames but the chunks hold {frames}", offset=start
        )
    return Footer(recorded_frames, final_chain, reason)


def _cut_warning(name: str, size: int, pos: int, chunk: int, frames: int) -> str:
    return (
        f"{name}: truncated: the file ends at byte offset {size}, inside the record that starts at "
        f"byte offset {pos} (chunk {chunk}); kept the intact prefix of {frames} frames"
    )
