"""The fan-out of confirmed frames, and the replay recorder as one of its consumers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lockstep.engine import FrameAdvanced
from lockstep.game import Game
from lockstep.rules import Rules
from lockstep.script import random_inputs
from peer.fanout import ConsumerFailed, Fanout
from peer.protocol import Established
from peer.recording import ReplayRecorder
from replay.reader import read_replay
from replay.verify import verify_replay

RULES = Rules(points_to_win=999)


def frames(count: int, seed: int = 4) -> list[FrameAdvanced]:
    game = Game(RULES, seed)
    out = []
    for frame_input in random_inputs(seed, count):
        chain = game.advance(frame_input)
        out.append(FrameAdvanced(game.frame, frame_input, chain))
    return out


class Collector:
    def __init__(self, fail_after: int | None = None) -> None:
        self.frames: list[FrameAdvanced] = []
        self.fail_after = fail_after

    def take(self, batch: Sequence[FrameAdvanced]) -> None:
        if self.fail_after is not None and len(self.frames) + len(batch) > self.fail_after:
            raise ConsumerFailed("the disk is full")
        self.frames.extend(batch)


def test_every_consumer_gets_every_frame_in_order_from_when_it_joined():
    fanout = Fanout()
    first, second, late = Collector(), Collector(), Collector()
    fanout.add(first)
    fanout.add(second)
    confirmed = frames(50)
    fanout.publish(confirmed[:20])
    fanout.add(late)
    fanout.publish([])
    fanout.publish(confirmed[20:])
    assert first.frames == second.frames == confirmed
    assert late.frames == confirmed[20:]
    assert len(fanout) == 3 and fanout.failure is None


def test_a_failing_consumer_is_dropped_and_only_an_essential_one_is_the_sessions_failure():
    fanout = Fanout()
    spectator, replay, healthy = Collector(fail_after=5), Collector(fail_after=30), Collector()
    fanout.add(spectator)
    fanout.add(replay, essential=True)
    fanout.add(healthy)
    confirmed = frames(40)
    fanout.publish(confirmed[:10])
    assert fanout.failure is None  # a spectator that fails is only dropped
    assert [str(detail) for _, detail in fanout.dropped] == ["the disk is full"]
    fanout.publish(confirmed[10:])
    assert fanout.failure == "the disk is full"
    assert len(fanout) == 1 and healthy.frames == confirmed
    assert replay.frames == confirmed[:10]  # nothing after the failing batch


def test_the_recorder_writes_a_replay_that_verifies(tmp_path: Path):
    path = str(tmp_path / "m.replay")
    recorder = ReplayRecorder(path, created=False)
    recorder.check()
    established = Established(RULES, 4, 0, 1, "joiner", "host", 3)
    recorder.open(established, 0)
    fanout = Fanout()
    fanout.add(recorder, essential=True)
    confirmed = frames(300)
    for start in range(0, 300, 7):
        fanout.publish(confirmed[start : start + 7])
    assert recorder.finish("quit") and fanout.failure is None
    recorder.close()
    replay = read_replay(path)
    assert replay.names == ("host", "joiner")  # left first, whatever our slot
    assert list(replay.frame_inputs) == [f.frame_input for f in confirmed]
    assert verify_replay(replay).ok


def test_a_replay_that_cannot_be_opened_fails_the_first_batch(tmp_path: Path):
    target = tmp_path / "gone" / "m.replay"
    recorder = ReplayRecorder(str(target), created=False)
    recorder.open(Established(RULES, 4, 0, 0, "a", "b", 3), 0)
    fanout = Fanout()
    fanout.add(recorder, essential=True)
    fanout.publish(frames(1))
    assert fanout.failure is not None and "m.replay" in fanout.failure
    assert not recorder.finish("quit")


def test_a_file_the_recorder_made_and_never_wrote_is_removed_but_a_users_is_kept(tmp_path: Path):
    ours, theirs = tmp_path / "ours.replay", tmp_path / "theirs.replay"
    theirs.write_bytes(b"")
    for path in (ours, theirs):
        recorder = ReplayRecorder(str(path), created=False)
        recorder.check()
        assert path.exists()
        recorder.close()
    assert not ours.exists() and theirs.exists()
