"""The replay format, writer and reader: round trips, crashes, corruption and versions."""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import tempfile
import zlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockstep.chain import chain_start
from lockstep.game import Game
from lockstep.rules import RULES_ID_SIZE, SIM_VERSION, UNIT, Rules
from lockstep.script import random_inputs
from replay.format import (
    CRC,
    DEFAULT_CHUNK_FRAMES,
    FORMAT_VERSION,
    MAGIC,
    PREFIX,
    PREFIX_END,
    RECORD_HEAD,
    ReplayCorruptError,
    ReplayError,
    ReplayVersionError,
    check_byte,
)
from replay.matches import record_inputs
from replay.reader import parse_replay, read_replay
from replay.verify import verify_file, verify_replay
from replay.writer import ReplayWriteError, ReplayWriter, encode_header

SMALL_FRAMES = 300  # five chunks: small enough to cut and flip at every byte


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A small finished replay: (bytes, its path, the game's chains after every frame)."""
    path = tmp_path_factory.mktemp("small") / "small.replay"
    rules = Rules(points_to_win=999)
    inputs = random_inputs(11, SMALL_FRAMES)
    game = Game(rules, 11)
    chains = [game.chain] + [game.advance(i) for i in inputs]
    with ReplayWriter(str(path), rules, 11, 2, ("ann", "bo"), 1_700_000_000) as writer:
        for f, frame_input in enumerate(inputs):
            writer.add_frame(frame_input, chains[f + 1])
        writer.finish("quit")
    return path.read_bytes(), path, chains, bytes(inputs)


def header_end(data: bytes) -> int:
    (body_length,) = struct.unpack_from("<H", data, 10)
    return PREFIX_END + body_length + CRC.size


def record_starts(data: bytes) -> list[int]:
    starts = []
    pos = header_end(data)
    while pos < len(data):
        starts.append(pos)
        _, length, _ = RECORD_HEAD.unpack_from(data, pos)
        pos += RECORD_HEAD.size + length + CRC.size
    return starts


# --- round trips ---------------------------------------------------------------------------------

RULE_SETS = [
    Rules(),
    Rules(points_to_win=1),
    Rules(frame_limit=40),
    Rules(field_w=1000 * UNIT, field_h=700 * UNIT, ball_size=12 * UNIT, serve_delay_frames=0),
]


@given(
    raw=st.binary(max_size=400),
    rules=st.sampled_from(RULE_SETS),
    seed=st.integers(0, 2**64 - 1),
    delay=st.integers(0, 0xFFFF),
    names=st.tuples(st.text(max_size=20), st.text(max_size=20)),
    created=st.integers(-(2**63), 2**63 - 1),
    chunk_frames=st.integers(1, 100),
    end_reason=st.sampled_from([None, "quit", "desync", "finished", "peer_timeout", "protocol_error"]),
)
def test_write_read_round_trip(raw, rules, seed, delay, names, created, chunk_frames, end_reason):
    inputs = bytes(b & 0x0F for b in raw)
    game = Game(rules, seed)
    expected_checkpoints = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.replay"
        with ReplayWriter(str(path), rules, seed, delay, names, created, chunk_frames=chunk_frames) as w:
            for frame_input in inputs:
                chain = game.advance(frame_input)
                w.add_frame(frame_input, chain)
                if game.frame % chunk_frames == 0:
                    expected_checkpoints.append((game.frame, chain))
            if end_reason is not None:
                w.finish(end_reason)
        if len(inputs) % chunk_frames:
            expected_checkpoints.append((game.frame, game.chain))
        replay = read_replay(path)
        size = path.stat().st_size
    assert (replay.rules, replay.seed, replay.input_delay) == (rules, seed, delay)
    assert (replay.names, replay.created_unix, replay.chunk_frames) == (names, created, chunk_frames)
    assert (replay.format_version, replay.sim_version) == (FORMAT_VERSION, SIM_VERSION)
    assert replay.frame_inputs == inputs
    assert replay.checkpoints == expected_checkpoints
    assert replay.size_bytes == size
    if end_reason is None:
        assert replay.footer is None and replay.truncated and replay.warnings
    else:
        assert replay.footer is not None and not replay.truncated and replay.warnings == []
        assert replay.footer.end_reason == end_reason
        assert replay.footer.final_chain == game.chain
    result = verify_replay(replay)
    assert result.ok and result.first_bad_frame is None
    assert result.final_chain == game.chain and result.frames == len(inputs)


def test_a_replay_without_frames_round_trips(tmp_path):
    path = tmp_path / "empty.replay"
    with ReplayWriter(str(path), Rules(), 3, 0, ("a", "b"), 0) as writer:
        writer.finish("quit")
    replay = read_replay(path)
    assert replay.frames == 0 and replay.checkpoints == [] and not replay.truncated
    result = verify_replay(replay)
    assert result.ok and result.final_chain == chain_start(Rules(), 3) and result.checkpoints == 1


def test_size_per_frame_meets_the_target(tmp_path):
    recorded = record_inputs(tmp_path / "r.replay", Rules(points_to_win=999), 1, random_inputs(1, 36_000))
    assert recorded.frames == 36_000
    assert (tmp_path / "r.replay").stat().st_size / 36_000 <= 1.3


# --- the writer ----------------------------------------------------------------------------------


def test_each_full_chunk_is_on_disk_while_the_game_runs(tmp_path):
    path = tmp_path / "live.replay"
    game = Game(Rules(), 1)
    writer = ReplayWriter(str(path), Rules(), 1, 2, ("a", "b"), 0)
    assert read_replay(path).frames == 0
    for f in range(DEFAULT_CHUNK_FRAMES * 2 + 10):
        writer.add_frame(1, game.advance(1))
        on_disk = read_replay(path)
        assert on_disk.frames == (f + 1) // DEFAULT_CHUNK_FRAMES * DEFAULT_CHUNK_FRAMES
        assert on_disk.truncated
    # A crash here loses only the 10 frames of the unfinished chunk; close() keeps them too.
    writer.close()
    closed = read_replay(path)
    assert closed.frames == 130 and closed.truncated and closed.footer is None
    assert verify_replay(closed).ok
    writer.close()  # idempotent


def test_finish_syncs_the_file_and_its_directory_once_and_chunks_do_not(tmp_path, monkeypatch):
    import replay.writer

    synced = []
    monkeypatch.setattr(replay.writer.os, "fsync", synced.append)
    game = Game(Rules(), 1)
    writer = ReplayWriter(str(tmp_path / "r.replay"), Rules(), 1, 0, ("a", "b"), 0, chunk_frames=10)
    for _ in range(35):
        writer.add_frame(0, game.advance(0))
    assert synced == []
    fd = writer._file.fileno()
    writer.finish("finished")
    assert len(synced) == 2 and synced[0] == fd  # the file, then its directory's entry


@pytest.mark.parametrize("err, raises", [(errno.EINVAL, False), (errno.EIO, True)])
def test_a_failed_sync_is_a_write_error_unless_the_file_cannot_be_synced(tmp_path, monkeypatch, err, raises):
    import replay.writer

    def fsync(fd):
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(replay.writer.os, "fsync", fsync)
    writer = ReplayWriter(str(tmp_path / "r.replay"), Rules(), 1, 0, ("a", "b"), 0)
    if raises:
        with pytest.raises(ReplayWriteError, match="Input/output error"):
            writer.finish("finished")
    else:
        writer.finish("finished")
        assert read_replay(tmp_path / "r.replay").footer is not None


def test_leaving_the_with_block_on_an_exception_closes_without_footer(tmp_path):
    path = tmp_path / "crash.replay"
    game = Game(Rules(), 1)
    with pytest.raises(RuntimeError), ReplayWriter(str(path), Rules(), 1, 0, ("a", "b"), 0) as writer:
        for _ in range(75):
            writer.add_frame(0, game.advance(0))
        raise RuntimeError("the game crashed")
    replay = read_replay(path)
    assert replay.frames == 75 and replay.truncated and replay.checkpoints[-1] == (75, game.chain)


def test_writing_after_finish_or_close_is_refused(tmp_path):
    writer = ReplayWriter(str(tmp_path / "r.replay"), Rules(), 1, 0, ("a", "b"), 0)
    writer.finish("quit")
    assert writer.finished and writer.closed
    with pytest.raises(ReplayWriteError, match="closed"):
        writer.add_frame(0, bytes(8))
    with pytest.raises(ReplayWriteError, match="closed"):
        writer.finish("quit")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"seed": -1}, "seed"),
        ({"input_delay": 70_000}, "delay"),
        ({"names": ("a",)}, "pair"),
    ],
)
def test_bad_header_values_are_refused(tmp_path, kwargs, message):
    args = {"rules": Rules(), "seed": 1, "input_delay": 0, "names": ("a", "b"), "created_unix": 0} | kwargs
    with pytest.raises(ValueError, match=message):
        ReplayWriter(str(tmp_path / "r.replay"), **args)


def test_bad_frames_and_reasons_are_programming_errors(tmp_path):
    writer = ReplayWriter(str(tmp_path / "r.replay"), Rules(), 1, 0, ("a", "b"), 0)
    with pytest.raises(ValueError, match="frame input"):
        writer.add_frame(16, bytes(8))
    with pytest.raises(ValueError, match="chain"):
        writer.add_frame(0, bytes(7))
    writer.close()


def test_long_names_and_odd_reasons_are_cut_not_refused(tmp_path):
    path = tmp_path / "r.replay"
    long_name = "é" * 200  # 400 bytes of UTF-8
    with ReplayWriter(str(path), Rules(), 1, 0, (long_name, "\udcff"), 0) as writer:
        writer.finish("")
    replay = read_replay(path)
    assert replay.names == ("é" * 127, "?") and replay.end_reason == "unknown"
    with ReplayWriter(str(path), Rules(), 1, 0, ("a", "b"), 0) as writer:
        writer.finish("x" * 100)
    assert read_replay(path).end_reason == "x" * 64


def test_an_unwritable_path_raises_replay_write_error(tmp_path):
    with pytest.raises(ReplayWriteError, match="cannot write replay"):
        ReplayWriter(str(tmp_path / "no" / "such" / "dir.replay"), Rules(), 1, 0, ("a", "b"), 0)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_raises_replay_write_error():
    with pytest.raises(ReplayWriteError, match="No space left"):
        ReplayWriter("/dev/full", Rules(), 1, 0, ("a", "b"), 0)


class FailingFile:
    """Accepts `budget` writes, then fails like a full disk."""

    def __init__(self, budget):
        self.budget = budget

    def write(self, data):
        if self.budget == 0:
            raise OSError(28, "No space left on device")
        self.budget -= 1
        return len(data)

    def flush(self):
        pass

    def close(self):
        pass


def test_a_disk_failure_mid_game_raises_and_then_stays_failed(tmp_path):
    writer = ReplayWriter(str(tmp_path / "r.replay"), Rules(), 1, 0, ("a", "b"), 0, chunk_frames=10)
    writer._file.close()
    writer._file = FailingFile(budget=2)
    game = Game(Rules(), 1)
    for _ in range(20):
        writer.add_frame(0, game.advance(0))  # two chunks written
    for _ in range(9):
        writer.add_frame(0, game.advance(0))  # pending, nothing written yet
    with pytest.raises(ReplayWriteError, match="No space left"):
        writer.add_frame(0, game.advance(0))
    with pytest.raises(ReplayWriteError, match="No space left"):
        writer.add_frame(0, game.advance(0))
    writer.close()  # no exception: already closed


# --- truncation (a crash) ------------------------------------------------------------------------


def test_truncation_at_every_offset_yields_the_intact_prefix(small):
    data, _, chains, inputs = small
    end_of_header = header_end(data)
    starts = record_starts(data)
    for cut in range(len(data)):
        if cut < end_of_header:
            with pytest.raises(ReplayError, match=r"truncated|empty") as info:
                parse_replay(data[:cut], "cut")
            assert not isinstance(info.value, ReplayCorruptError)
            continue
        replay = parse_replay(data[:cut], "cut")
        complete = sum(1 for s in [*starts[1:], len(data)] if s <= cut) if cut > end_of_header else 0
        frames = min(complete * DEFAULT_CHUNK_FRAMES, SMALL_FRAMES)
        assert replay.truncated and len(replay.warnings) == 1 and "truncated" in replay.warnings[0]
        assert replay.frame_inputs == inputs[:frames]
        assert replay.footer is None
        result = verify_replay(replay)
        assert result.ok and result.final_chain == chains[frames]
    whole = parse_replay(data, "whole")
    assert not whole.truncated and whole.warnings == [] and whole.frames == SMALL_FRAMES


def test_the_warning_says_where_the_file_ends(small):
    data, _, _, _ = small
    starts = record_starts(data)
    cut = starts[2] + 20
    replay = parse_replay(data[:cut], "cut")
    assert f"byte offset {cut}" in replay.warnings[0]
    assert f"byte offset {starts[2]} (chunk 2)" in replay.warnings[0]
    assert replay.frames == 2 * DEFAULT_CHUNK_FRAMES


# --- corruption ----------------------------------------------------------------------------------


@pytest.mark.parametrize("flip", ["bit", "byte"])
def test_every_single_byte_flip_is_reported_with_its_chunk_and_offset(small, flip):
    data, _, _, _ = small
    end_of_header = header_end(data)
    starts = record_starts(data)
    for i in range(len(data)):
        mask = 1 << (i % 8) if flip == "bit" else 0xFF
        bad = bytearray(data)
        bad[i] ^= mask
        with pytest.raises(ReplayError) as info:
            parse_replay(bytes(bad), "bad")
        error = info.value
        assert isinstance(error, ReplayCorruptError), (i, str(error))
        message = str(error)
        assert "corrupted" in message or "not a Lockstep Pong replay" in message
        if i >= end_of_header:
            record = max(k for k, s in enumerate(starts) if s <= i)
            assert error.offset == starts[record], (i, message)
            assert error.chunk == record
            assert f"byte offset {starts[record]}" in message
            assert f"chunk {record}" in message or "footer" in message


def test_a_corrupted_chunk_is_named_by_index_and_offset(small):
    data, _, _, _ = small
    starts = record_starts(data)
    bad = bytearray(data)
    bad[starts[3] + 30] ^= 0x04
    with pytest.raises(
        ReplayCorruptError, match=rf"chunk 3 at byte offset {starts[3]} is corrupted: CRC mismatch"
    ):
        parse_replay(bytes(bad), "bad")


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_anything_but_replay_error(junk):
    for data in (junk, MAGIC + junk):
        with contextlib.suppress(ReplayError):
            parse_replay(data, "junk")


@given(st.binary(min_size=1, max_size=200))
def test_garbage_after_a_valid_header_never_raises_anything_but_replay_error(junk):
    header = encode_header(Rules(), 1, 0, ("a", "b"), 0)
    try:
        replay = parse_replay(header + junk, "junk")
    except ReplayError:
        return
    verify_replay(replay)


def test_bytes_after_the_footer_are_corruption(small):
    data, _, _, _ = small
    with pytest.raises(ReplayCorruptError, match=f"after the footer, at byte offset {len(data)}"):
        parse_replay(data + b"\x00", "extra")


def test_other_files_are_refused_clearly(tmp_path):
    with pytest.raises(ReplayError, match="empty"):
        parse_replay(b"", "x")
    with pytest.raises(ReplayCorruptError, match="not a Lockstep Pong replay"):
        parse_replay(b"hello world, this is text\n", "x")
    with pytest.raises(ReplayError, match="No such file"):
        read_replay(tmp_path / "missing.replay")
    with pytest.raises(ReplayError, match=r"not a regular file|directory"):
        read_replay(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.replay"
    os.mkfifo(fifo)
    with pytest.raises(ReplayError, match="not a regular file"):
        read_replay(fifo)


# --- versions ------------------------------------------------------------------------------------


def with_format_version(data: bytes, version: int) -> bytes:
    """The same header claiming another format version, with valid checks (a genuine other file)."""
    body_length = struct.unpack_from("<H", data, 10)[0]
    prefix = struct.pack("<HH", version, body_length)
    out = bytearray(data)
    out[8:PREFIX_END] = PREFIX.pack(version, body_length, check_byte(prefix))
    return fix_header_crc(bytes(out))


def fix_header_crc(data: bytes) -> bytes:
    body_end = PREFIX_END + struct.unpack_from("<H", data, 10)[0]
    return data[:body_end] + CRC.pack(zlib.crc32(data[:body_end])) + data[body_end + CRC.size :]


def test_another_format_version_is_refused_naming_both(small):
    data, _, _, _ = small
    with pytest.raises(
        ReplayVersionError, match=f"format version 7; .* reads format version {FORMAT_VERSION}"
    ):
        parse_replay(with_format_version(data, 7), "future")


def test_another_sim_version_is_refused_naming_both(small):
    data, _, _, _ = small
    other = bytearray(data)
    struct.pack_into("<I", other, PREFIX_END, SIM_VERSION + 1)  # the rules id starts the body
    assert RULES_ID_SIZE > 4
    with pytest.raises(
        ReplayVersionError,
        match=f"SIM_VERSION {SIM_VERSION + 1}, but this pong simulates SIM_VERSION {SIM_VERSION}",
    ):
        parse_replay(fix_header_crc(bytes(other)), "old")


# --- verification --------------------------------------------------------------------------------


def test_verify_reports_the_first_bad_checkpoint(tmp_path):
    """A well-formed file whose recorded chain is wrong (a buggy peer): mismatch, not corruption."""
    rules = Rules()
    game = Game(rules, 4)
    path = tmp_path / "bad.replay"
    with ReplayWriter(str(path), rules, 4, 0, ("a", "b"), 0) as writer:
        for f in range(1, 301):
            chain = game.advance(2)
            writer.add_frame(2, bytes(8) if f == 150 else chain)
            if f == 170:
                game.state.score_l += 1  # the recorder's game diverges here
        writer.finish("desync")
    for result in (verify_replay(read_replay(path)), verify_file(path)):
        assert not result.ok
        assert result.first_bad_frame == 180  # the checkpoint after the divergence
        assert result.last_good_frame == 120
        # The chunk ending at frame 180 holds the divergence at 170; frame 150's bad value is not
        # stored. Verification stops at that first bad checkpoint: 60, 120 and 180 were compared.
        assert result.checkpoints == 3 and result.frames == 180


@pytest.mark.parametrize("netcode", ["lockstep", "rollback"])
def test_a_players_replay_records_its_seat_and_a_header_without_one_is_unchanged(netcode):
    from replay.format import RecordedSeat

    def parse_header(data, name):
        return parse_replay(data, name)

    rules = Rules(points_to_win=3)
    seat = RecordedSeat(1, b"m" * 16, b"s" * 32)
    plain = encode_header(rules, 9, 2, ("a", "b"), 0, netcode=netcode)
    seated = encode_header(rules, 9, 2, ("a", "b"), 0, netcode=netcode, seat=seat)
    assert parse_header(seated, "x").seat == seat and parse_header(seated, "x").netcode == netcode
    assert parse_header(plain, "x").seat is None and parse_header(plain, "x").netcode == netcode
    if netcode == "lockstep":  # byte for byte what a lockstep header always was
        assert plain == encode_header(rules, 9, 2, ("a", "b"), 0)
    with pytest.raises(ValueError, match="seat"):
        encode_header(rules, 9, 2, ("a", "b"), 0, seat=RecordedSeat(2, b"m" * 16, b"s" * 32))


def test_where_play_went_on_after_a_break_is_recorded_and_read_back(tmp_path):
    from replay.reader import open_replay

    rules = Rules(points_to_win=3)
    path = tmp_path / "r.replay"
    writer = ReplayWriter(path, rules, 5, 2, ("a", "b"), 0)
    game = Game(rules, 5)
    for _ in range(70):
        writer.add_frame(0, game.advance(0))
    writer.add_resume("reconnect", 1500)
    writer.add_resume("rejoin", 0, frame=60)
    writer.finish("finished")
    with open_replay(path) as reader:
        list(reader.chunks())
        assert [(r.frame, r.kind, r.paused_ms) for r in reader.resumes] == [
            (70, "reconnect", 1500),
            (60, "rejoin", 0),
        ]
    assert verify_file(path).ok  # no part of the game
