"""Chat in a replay: kept with the frame each line arrived at, shown by the viewer, never part of
what is verified."""

from __future__ import annotations

import pytest

from lockstep.game import Game
from lockstep.rules import Rules
from lockstep.script import random_inputs
from replay.format import ReplayCorruptError
from replay.reader import ChatLine, parse_replay, read_replay
from replay.verify import verify_replay
from replay.viewer import CHAT_SHOWN_FRAMES, Viewer
from replay.writer import ReplayWriter

RULES = Rules()


def recorded(tmp_path, lines):
    """A 300-frame replay with `lines` [(frame, name, text)] said along the way."""
    path = tmp_path / "chat.replay"
    game = Game(RULES, 4)
    with ReplayWriter(path, RULES, 4, 2, ("Hana", "Jo"), 0) as writer:
        pending = sorted(lines)
        for frame, frame_input in enumerate(random_inputs(1, 300)):
            while pending and pending[0][0] == frame:
                _, name, text = pending.pop(0)
                writer.add_chat(name, text)
            writer.add_frame(frame_input, game.advance(frame_input))
        writer.finish("finished")
    return path


def test_chat_is_kept_with_its_frame_and_the_replay_still_verifies(tmp_path):
    path = recorded(tmp_path, [(0, "Sam", "hi"), (130, "Hana", "gg"), (130, "Jo", "\x1b[2Jwp")])
    replay = read_replay(path)
    assert replay.chat == [
        ChatLine(0, "Sam", "hi"),
        ChatLine(130, "Hana", "gg"),
        ChatLine(130, "Jo", "?[2Jwp"),
    ]
    assert replay.frames == 300 and verify_replay(replay).ok
    plain = read_replay(recorded(tmp_path, []))
    assert plain.frame_inputs == replay.frame_inputs and plain.chat == []
    assert plain.recorded_final_chain == replay.recorded_final_chain


def test_a_chat_line_after_the_frames_recorded_before_it_is_corruption(tmp_path):
    data = bytearray(recorded(tmp_path, [(60, "Sam", "hi")]).read_bytes())
    at = data.index(b"Sam") - 9  # the line's frame, 8 bytes before its name's length
    assert int.from_bytes(data[at : at + 8], "little") == 60
    data[at : at + 8] = (61).to_bytes(8, "little")
    with pytest.raises(ReplayCorruptError):  # its CRC no longer matches, and its frame lies
        parse_replay(bytes(data))


def test_the_viewer_shows_the_lines_of_the_last_seconds():
    pygame = pytest.importorskip("pygame")
    del pygame
    from replay.reader import Replay

    replay = Replay(1, 1, RULES, 4, 2, ("Hana", "Jo"), 0, 60, bytes(600), [], None, False)
    replay.chat.extend([ChatLine(10, "Sam", "hi"), ChatLine(200, "Hana", "gg")])
    viewer = Viewer(replay)
    assert viewer.chat_at(5) == []
    assert viewer.chat_at(10) == ["Sam: hi"]
    assert viewer.chat_at(200) == ["Sam: hi", "Hana: gg"]
    assert viewer.chat_at(10 + CHAT_SHOWN_FRAMES) == ["Hana: gg"]
