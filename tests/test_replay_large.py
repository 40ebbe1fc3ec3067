"""Crafted large replays: read as a stream, in bounded memory, verification stopping at the first bad
checkpoint. Behaviour only (bytes read, exit codes, peak memory with a generous bound), no timing:
`pong bench --only verify_crafted_100mb_s` measures the time."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from lockstep.rules import Rules
from replay.format import CRC, MAX_CHUNK_FRAMES, RECORD_HEAD
from replay.reader import ReplayCorruptError, ReplayReader, ReplayTooLongError, open_replay, read_replay
from replay.verify import verify_reader
from replay.writer import encode_chunk, encode_header
from tests.conftest import ROOT
from tools.cli import main

HEADER = encode_header(Rules(), 1, 2, ("a", "b"), 0)
WRONG = encode_chunk(bytes(60), bytes(8))  # a valid CRC over a chain no game produces
LARGEST_RECORD = RECORD_HEAD.size + 0xFFFF + CRC.size


def crafted(chunks: int, tail: bytes = b"") -> bytes:
    """The attack of the issue in small: a real header, then `chunks` well-formed chunks whose
    recorded chains are all wrong, then `tail`."""
    return HEADER + WRONG * chunks + tail


class CountingFile(io.BytesIO):
    """A file that counts what is asked of it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0
        self.largest_read = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        self.largest_read = max(self.largest_read, len(data))
        return data


def test_verify_stops_at_the_first_bad_checkpoint_and_reads_nothing_after_it():
    file = CountingFile(crafted(10_000))
    result = verify_reader(ReplayReader(file, "crafted"))
    assert not result.ok and result.first_bad_frame == 60 and result.last_good_frame == 0
    assert result.checkpoints == 1 and result.frames == 60 and result.read_to_end is False
    assert file.bytes_read == len(HEADER) + len(WRONG)  # the header and one chunk of 750 KB


def test_what_lies_after_the_first_bad_checkpoint_cannot_change_the_answer(tmp_path, capsys):
    """Corruption after the first bad checkpoint is never reached: the mismatch is the answer."""
    path = tmp_path / "crafted.replay"
    path.write_bytes(crafted(3, tail=b"\x00" * 100))
    assert main(["replay", "verify", str(path), "--json"]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "the rest of the file is not read" in out
    fields = json.loads(out.strip().splitlines()[-1])
    assert fields["first_bad_frame"] == 60 and fields["read_to_end"] is False
    assert fields["end_reason"] is None and fields["truncated"] is False


def test_reading_every_chunk_never_asks_for_more_than_a_record():
    file = CountingFile(crafted(2_000))
    reader = ReplayReader(file, "crafted")
    count = sum(1 for _ in reader.chunks())
    assert count == 2_000 and reader.frames == 120_000 and reader.truncated
    assert file.bytes_read == len(file.getvalue()) and file.largest_read <= LARGEST_RECORD


def test_streaming_a_file_holds_one_record_in_memory(tmp_path):
    """The chunks of an 8 MB file pass through in well under a megabyte of Python memory."""
    path = tmp_path / "big.replay"
    chunk = encode_chunk(bytes(MAX_CHUNK_FRAMES), bytes(8))
    path.write_bytes(HEADER + chunk * 2_000)
    tracemalloc.start()
    try:
        with open_replay(path) as reader:
            frames = sum(len(inputs) for inputs, _ in reader.chunks())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert frames == 2_000 * MAX_CHUNK_FRAMES
    assert peak < 1 << 20, peak


def test_read_replay_stops_at_max_frames_before_reading_on(tmp_path):
    """`pong desync`'s bound: past it the reader stops, never reaching the corruption further on."""
    path = tmp_path / "long.replay"
    path.write_bytes(crafted(5, tail=b"\x00" * 100))
    with pytest.raises(ReplayTooLongError, match="more than 100 frames"):
        read_replay(path, max_frames=100)
    with pytest.raises(ReplayCorruptError, match="byte offset"):  # what reading on would meet
        read_replay(path)


def test_pong_desync_stops_reading_a_replay_longer_than_it_analyses(tmp_path, capsys, monkeypatch):
    from tools import desync as desync_tool

    monkeypatch.setattr(desync_tool, "MAX_ANALYSED_FRAMES", 100)
    path = tmp_path / "long.replay"
    path.write_bytes(crafted(5, tail=b"\x00" * 100))  # corrupt beyond frame 120: never reached
    assert main(["desync", str(path), "--json"]) == 2
    error = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["error"]
    assert "more than pong desync analyses (100 frames" in error and "corrupted" not in error


def test_a_sparse_gigabyte_with_a_real_header_is_refused_at_its_first_record(tmp_path, capsys):
    path = tmp_path / "sparse.replay"
    with open(path, "wb") as file:
        file.write(HEADER)
        file.truncate(1 << 30)  # the largest size a replay may have: refused by content, not size
    assert main(["replay", "verify", str(path), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == (
        f"pong: error: {path}: chunk 0 at byte offset {len(HEADER)} is corrupted: bad record header"
    )
    assert json.loads(captured.out.strip().splitlines()[-1])["exit_code"] == 2


PEAK_RSS = """
import resource, sys
from tools.cli import main
code = main(["replay", "verify", sys.argv[1]])
try:  # Linux: this program's own peak (ru_maxrss would include the forking pytest's size)
    with open("/proc/self/status") as status:
        peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
except OSError:  # elsewhere ru_maxrss, in bytes on macOS
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // (1024 if sys.platform == "darwin" else 1)
print(code, peak_kib // 1024)
"""


@pytest.mark.parametrize("kind", ["crafted", "sparse"])
def test_verifying_a_large_crafted_file_stays_small(tmp_path, kind):
    """RSS of a whole `pong replay verify` process, with a generous bound (about 25 MB is used):
    reading such files whole took 6 bytes of memory per byte of a crafted file (630 MB for 100 MB)
    and the whole sparse gigabyte."""
    path = Path(tmp_path / f"{kind}.replay")
    if kind == "crafted":
        with open(path, "wb") as file:
            file.write(HEADER)
            block = WRONG * 10_000  # 0.76 MB
            for _ in range(52):  # 40 MB of well-formed chunks with wrong chains
                file.write(block)
        expected = 1
    else:
        with open(path, "wb") as file:
            file.write(HEADER)
            file.truncate(1 << 30)
        expected = 2
    proc = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    code, peak_mb = map(int, proc.stdout.strip().splitlines()[-1].split())
    assert code == expected, proc.stderr
    assert peak_mb <= 100, f"{peak_mb} MB"
