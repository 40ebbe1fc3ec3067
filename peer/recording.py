"""The replay of a live match: where it goes, that it can be written before anyone connects, and the
frame consumer that writes every confirmed frame to it."""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Sequence

from lockstep.engine import FrameAdvanced
from peer.fanout import ConsumerFailed
from peer.protocol import Established, Role
from replay.format import RecordedSeat
from replay.reader import ReplayError, read_replay
from replay.verify import verify_replay
from replay.writer import ReplayWriteError, ReplayWriter


def default_replay_path(role: Role | str, now: float | None = None) -> str:
    """A new file `pong-DATE-TIME-ROLE[-N].replay` here, created empty so no other match takes it
    (ROLE: host, joiner, or a spectator's "spectator")."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    name = role if isinstance(role, str) else role.value
    for n in range(1, 1000):
        path = f"pong-{stamp}-{name}{'' if n == 1 else f'-{n}'}.replay"
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            continue  # another match started in the same second
        except OSError:
            return path  # unwritable here: check_record_path will say so in one line
        return path
    return path


PROBE_BYTES = 4096  # a replay's header and its first minute or so


def check_record_path(path: str) -> bool:
    """Fail before any network activity when the replay could not be written; True when it
    created the (empty) file."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ReplayWriteError(f"cannot record to {path}: directory {directory} does not exist")
    if os.path.isdir(path):
        raise ReplayWriteError(f"cannot record to {path}: it is a directory")
    if os.path.exists(path) and not os.path.isfile(path):
        # Opening a FIFO for writing would block the game loop until someone reads it.
        raise ReplayWriteError(f"cannot record to {path}: it is not a regular file")
    if not os.access(directory, os.W_OK):
        raise ReplayWriteError(f"cannot record to {path}: directory {directory} is not writable")
    # The real test is opening it (a read-only mount, /proc, a file we may not write): now, before
    # anyone joins, not once a match has begun. A file it creates stays empty until the match
    # starts, and is removed when no match does (ReplayRecorder.close).
    existed = os.path.lexists(path)  # a dangling symlink exists too: its target is what gets made
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | (0 if existed else os.O_EXCL), 0o644)
    except FileExistsError:
        return False  # created a moment ago by someone else: the writer will tell if it cannot write
    except OSError as exc:
        raise ReplayWriteError(f"cannot record to {path}: {exc.strerror or exc}") from None
    try:
        # A full disk (or a file size limit) must stop us now, not after the other player joined:
        # write the first seconds of a replay and take them back. A file with content is the
        # user's to keep until a match overwrites it: only the free space is looked at then.
        if os.fstat(fd).st_size == 0:
            probe = memoryview(bytes(PROBE_BYTES))
            while probe:  # a size limit shows as a short write, then an error
                probe = probe[os.write(fd, probe) :]
            os.fsync(fd)
            os.ftruncate(fd, 0)
        else:
            space = os.fstatvfs(fd)
            if space.f_bavail * space.f_frsize < PROBE_BYTES:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    except OSError as exc:
        os.close(fd)
        if not existed:  # ours, and no match will come: no file either
            with contextlib.suppress(OSError):
                os.remove(path)
        raise ReplayWriteError(f"cannot record to {path}: {exc.strerror or exc}") from None
    os.close(fd)
    return not existed


class ReplayRecorder:
    """Writes the match to `path` as its frames are confirmed (a `FrameConsumer`).

    `created` says the file is ours (made empty to reserve it): when no frame is ever written it is
    removed again, while a file that was there before is the user's, even when empty.
    """

    def __init__(self, path: str, *, created: bool, host: bool = False) -> None:
        self.path = path
        self.created = created
        self._host = host  # whose seat the replay records (a spectator's records none)
        self.error: str | None = None  # the first write failure, in one line
        self._writer: ReplayWriter | None = None

    def check(self) -> None:
        """Before any network activity: raises `ReplayWriteError` when the file could not be written."""
        if check_record_path(self.path):
            self.created = True

    def open(self, established: Established, created_unix: int) -> None:
        """The match starts: write the header (a failure is kept, and told by the first `take`)."""
        names = established.names
        try:
            self._writer = ReplayWriter(
                self.path,
                established.rules,
                established.seed,
                established.delay_frames,
                names,
                created_unix,
                netcode=established.netcode.name.lower(),
                # Whoever holds this file may take the seat back after a crash (--rejoin/--resume).
                seat=RecordedSeat(
                    established.local_slot, established.match_id, established.secret, self._host
                )
                if established.secret
                else None,
            )
        except ReplayWriteError as exc:
            self.error = str(exc)

    def take(self, frames: Sequence[FrameAdvanced]) -> None:
        if self.error is None and self._writer is not None:
            try:
                for frame in frames:
                    self._writer.add_frame(frame.frame_input, frame.chain)
            except ReplayWriteError as exc:
                self.error = str(exc)
        if self.error is not None:
            raise ConsumerFailed(self.error)

    def chat(self, name: str, text: str) -> None:
        """A line of chat, kept with the frame it arrived at (none before the match began)."""
        if self.error is None and self._writer is not None and not self._writer.closed:
            try:
                self._writer.add_chat(name, text)
            except ReplayWriteError as exc:
                self.error = str(exc)  # the next `take` tells

    def resumed(self, kind: str, paused_ms: int, frame: int | None = None) -> None:
        """Play goes on after a break (a reconnect, or a seat taken back): say so in the replay."""
        if self.error is None and self._writer is not None:
            try:
                self._writer.add_resume(kind, paused_ms, frame)
            except ReplayWriteError as exc:
                self.error = str(exc)

    def finish(self, end_reason: str) -> bool:
        """The footer and the last sync; True when the replay is complete (else `error` says why)."""
        if self._writer is None:
            return False
        try:
            self._writer.finish(end_reason)
        except ReplayWriteError as exc:
            self.error = self.error or str(exc)
            return False
        return True

    def close(self) -> None:
        """However the session ends: keep what was recorded (an unfinished file has no footer, so
        readers report it as cut short), and remove a file we made and never wrote."""
        writer = self._writer
        if writer is not None and not writer.closed:
            with contextlib.suppress(ReplayWriteError):
                writer.close()
        if not self.created or (writer is not None and writer.bytes_written > 0):
            return
        with contextlib.suppress(OSError):
            if os.path.isfile(self.path) and os.path.getsize(self.path) == 0:
                os.remove(self.path)


class SeatError(Exception):
    """A replay that cannot give its seat back. `str()` is one line for a person."""


def load_seat(path: str, role: Role) -> tuple[Established, bytes]:
    """The match a crashed player recorded, for `--rejoin`/`--resume`: as its header says, and the
    frames it holds, checked against their chains first."""
    try:
        replay = read_replay(path)
    except ReplayError as exc:
        raise SeatError(f"cannot take a seat back from {path}: {exc}") from None
    if replay.footer is not None:
        raise SeatError(
            f"the match in {path} is over ({replay.footer.end_reason}): there is no seat to take back"
        )
    seat = replay.seat
    if seat is None:
        raise SeatError(
            f"{path} records no seat to take back (a spectator's, or from before pong could rejoin)"
        )
    if seat.host != (role is Role.HOST):
        whose, how = (
            ("the host's", "pong host --resume") if seat.host else ("the joiner's", "pong join --rejoin")
        )
        raise SeatError(f"{path} is {whose} replay: take that seat back with {how}")
    if replay.netcode != "lockstep":
        raise SeatError("taking a seat back after a crash works in lockstep matches only, for now")
    result = verify_replay(replay)
    if not result.ok:
        raise SeatError(
            f"cannot take a seat back from {path}: its chain differs at frame {result.first_bad_frame}"
        )
    names = replay.names
    established = Established(
        replay.rules,
        replay.seed,
        replay.input_delay,
        seat.slot,
        names[seat.slot],
        names[1 - seat.slot],
        0,  # the round trip is measured anew
        seat.match_id,
        secret=seat.secret,
    )
    return established, replay.frame_inputs
