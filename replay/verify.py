"""Verification: re-simulate a replay's inputs and compare the chain at every recorded checkpoint.

The re-simulation runs chunk by chunk (`Game.run`) and compares only at the end of each chunk, so
it costs little more than the simulation itself (an hour of play, 216,000 frames, in about a third
of a second). It stops at the first checkpoint whose chain differs: that checkpoint is the answer,
and nothing after it can change it. `verify_file` reads the file as a stream alongside, so a
crafted file of any size costs one chunk of memory and is refused as soon as it goes wrong.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from lockstep.game import Game
from lockstep.rules import Rules
from lockstep.sim import step
from lockstep.state import State, initial_state
from replay.reader import Footer, Header, Replay, ReplayReader, Resume, open_replay


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    frames: int  # frames re-simulated (every intact frame, or up to the first bad checkpoint)
    checkpoints: int  # chain values compared: one per chunk, plus the footer's final chain
    first_bad_frame: int | None  # frame of the first checkpoint whose chain differs; None when ok
    final_chain: bytes  # the chain the inputs produce after the last frame re-simulated
    truncated: bool  # the replay has no footer: only its intact prefix was checked
    last_good_frame: int = 0  # the last checkpoint that matched before the first bad one
    final_state: State | None = None  # the state after the last frame re-simulated (score, winner)
    read_to_end: bool = True  # False: stopped at the first bad checkpoint, the rest was not read
    end_reason: str | None = None  # the footer's, when the file was read to its end
    warnings: tuple[str, ...] = ()  # the reader's (where a truncated file ends)


class _Checker:
    """Re-simulates chunk after chunk and compares the chain after each with the recorded one."""

    def __init__(self, rules: Rules, seed: int) -> None:
        self.game = Game(rules, seed)
        self.frames = 0
        self.compared = 0
        self.last_good = 0
        self.first_bad: int | None = None

    def check(self, inputs: bytes, expected: bytes) -> bool:
        chain = self.game.run(inputs)
        self.frames += len(inputs)
        self.compared += 1
        if chain != expected:
            self.first_bad = self.frames
            return False
        self.last_good = self.frames
        return True

    def result(
        self,
        truncated: bool,
        *,
        read_to_end: bool = True,
        end_reason: str | None = None,
        warnings: tuple[str, ...] = (),
    ) -> VerifyResult:
        return VerifyResult(
            ok=self.first_bad is None,
            frames=self.frames,
            checkpoints=self.compared,
            first_bad_frame=self.first_bad,
            final_chain=self.game.chain,
            truncated=truncated,
            last_good_frame=self.last_good,
            final_state=self.game.state,
            read_to_end=read_to_end,
            end_reason=end_reason,
            warnings=warnings,
        )


def verify_replay(replay: Replay) -> VerifyResult:
    """Verify a replay already read into memory."""
    checker = _Checker(replay.rules, replay.seed)
    start = 0
    for frame, expected in replay.checkpoints:
        if not checker.check(replay.frame_inputs[start:frame], expected):
            break
        start = frame
    else:
        if replay.footer is not None:
            checker.check(b"", replay.footer.final_chain)
    # The whole file was read: its end reason and warnings are known either way.
    return checker.result(replay.truncated, end_reason=replay.end_reason, warnings=tuple(replay.warnings))


def verify_file(path: str | os.PathLike[str]) -> VerifyResult:
    """Read and verify a replay file in one streaming pass; raises `ReplayError` for a file that
    cannot be read up to its first bad checkpoint (or its end)."""
    with open_replay(path) as reader:
        return verify_reader(reader)


def verify_reader(reader: ReplayReader) -> VerifyResult:
    """`verify_file` on a reader whose header has been read: its chunks are read up to the first
    bad checkpoint only."""
    header = reader.header
    checker = _Checker(header.rules, header.seed)
    for inputs, expected in reader.chunks():
        if not checker.check(inputs, expected):
            return checker.result(False, read_to_end=False)
    footer = reader.footer
    if footer is not None:
        checker.check(b"", footer.final_chain)
    return checker.result(
        reader.truncated,
        end_reason=footer.end_reason if footer is not None else None,
        warnings=tuple(reader.warnings),
    )


@dataclass(frozen=True)
class FileSummary:
    """What one streaming pass over a replay file tells (for `info`)."""

    header: Header
    frames: int
    chunks: int
    footer: Footer | None
    truncated: bool
    warnings: tuple[str, ...]
    size_bytes: int
    recorded_final_chain: bytes | None  # the footer's, else the last checkpoint's
    final_state: State  # after the last intact frame
    resumes: tuple[Resume, ...] = ()  # where play went on after a break


def summarize_file(path: str | os.PathLike[str]) -> FileSummary:
    """Read a replay file as a stream and play its inputs (no chain); raises `ReplayError`."""
    with open_replay(path) as reader:
        header = reader.header
        state = initial_state(header.rules, header.seed)
        last_chain = None
        for inputs, chain in reader.chunks():
            _play(state, header.rules, inputs)
            last_chain = chain
        footer = reader.footer
        return FileSummary(
            header=header,
            frames=reader.frames,
            chunks=reader.chunk_count,
            footer=footer,
            truncated=reader.truncated,
            warnings=tuple(reader.warnings),
            size_bytes=reader.size_bytes,
            recorded_final_chain=footer.final_chain if footer is not None else last_chain,
            final_state=state,
            resumes=tuple(reader.resumes),
        )


def _play(state: State, rules: Rules, inputs: bytes) -> None:
    """Step only: `info` wants the score, not the chain (half the cost)."""
    _step = step
    for frame_input in inputs:
        _step(state, rules, frame_input)
