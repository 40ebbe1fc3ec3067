"""Rollback through the whole program: the replay header's netcode, `pong replay info`, and real
`pong host --netcode rollback` / `pong join` processes on loopback (through netsim's latency)."""

from __future__ import annotations

import io
import json
import struct
import zlib

import pytest

from lockstep.game import Game
from lockstep.rules import Rules
from replay.format import CRC, PREFIX, PREFIX_END, ReplayCorruptError, check_byte
from replay.reader import ReplayReader, parse_replay, read_replay
from replay.verify import verify_replay
from replay.writer import ReplayWriter, encode_header
from tools.netsim import Impairment, NetSim

RULES = Rules(points_to_win=1)
NAMES = ("left", "right")


def test_a_lockstep_header_is_byte_for_byte_what_it_was_and_a_rollback_one_adds_one_byte():
    before = encode_header(RULES, 5, 2, NAMES, 0)
    assert encode_header(RULES, 5, 2, NAMES, 0, netcode="lockstep") == before
    rollback = encode_header(RULES, 5, 2, NAMES, 0, netcode="rollback")
    assert len(rollback) == len(before) + 1
    assert parse_replay(before).format_version == parse_replay(rollback).format_version == 1
    with pytest.raises(ValueError, match="netcode"):
        encode_header(RULES, 5, 2, NAMES, 0, netcode="telepathy")


def _with_netcode_byte(value: int) -> bytes:
    """A header whose netcode byte is `value`, with its length, check and CRC made right."""
    body = encode_header(RULES, 5, 2, NAMES, 0)[PREFIX_END : -CRC.size] + bytes((value,))
    prefix = struct.pack("<HH", 1, len(body))
    head = b"\x89PONGRP\n" + PREFIX.pack(1, len(body), check_byte(prefix)) + body
    return head + CRC.pack(zlib.crc32(head))


def test_the_reader_names_the_netcode_and_refuses_one_it_does_not_know():
    assert ReplayReader(io.BytesIO(_with_netcode_byte(1)), "r").header.netcode == "rollback"
    assert ReplayReader(io.BytesIO(encode_header(RULES, 5, 2, NAMES, 0)), "l").header.netcode == "lockstep"
    for value in (0, 2, 255):  # lockstep leaves the byte out: a 0 there is no file we write
        with pytest.raises(ReplayCorruptError, match="unknown netcode"):
            ReplayReader(io.BytesIO(_with_netcode_byte(value)), "x")


def test_pong_replay_info_shows_the_netcode(pong, tmp_path):
    path = tmp_path / "r.replay"
    game = Game(RULES, 5)
    with ReplayWriter(str(path), RULES, 5, 1, NAMES, 0, netcode="rollback") as writer:
        for _ in range(30):
            writer.add_frame(0, game.advance(0))
        writer.finish("quit")
    assert verify_replay(read_replay(path)).ok
    text = pong("replay", "info", str(path))
    assert text.finish()[0] == 0 and any("netcode rollback" in line for line in text.lines)
    code, info = pong("replay", "info", str(path), "--json").finish()
    assert code == 0 and info is not None and info["netcode"] == "rollback"


def test_a_rollback_match_between_two_processes_at_100ms_rtt(pong, tmp_path):
    """Over netsim at 100 ms RTT: the auto delay stays small, rollbacks happen, both sides end with
    the same chain, and both replays say rollback and verify."""
    h = pong(
        "host",
        "--port",
        "0",
        "--headless",
        "--bot",
        "tracker",
        "--json",
        "--record",
        "host.replay",
        "--netcode",
        "rollback",
        "--frames",
        "240",
        "--seed",
        "3",
    )
    with NetSim("127.0.0.1", h.port(), Impairment(delay_ms=50, jitter_ms=10)) as sim:
        j = pong(
            "join",
            f"127.0.0.1:{sim.port}",
            "--headless",
            "--bot",
            "random",
            "--json",
            "--record",
            "joiner.replay",
        )
        (hc, hr), (jc, jr) = h.finish(timeout=120), j.finish(timeout=120)
    assert hc == jc == 0, (h.stderr, j.stderr)
    assert hr["result"] == jr["result"] == "finished"
    assert hr["final_chain"] == jr["final_chain"] and hr["frames"] == jr["frames"] > 0
    for result in (hr, jr):
        assert result["netcode"] == "rollback" and result["max_rollback"] == 8
        assert result["input_delay"] <= 2
        assert 0 <= result["deepest_rollback"] <= 8
        assert result["resimulated_frames"] >= result["rollbacks"]
    assert hr["rollbacks"] + jr["rollbacks"] > 0
    for name, result in (("host", hr), ("joiner", jr)):
        replay = read_replay(tmp_path / f"{name}.replay")
        assert verify_replay(replay).ok and replay.frames == result["frames"]
        with open(tmp_path / f"{name}.replay", "rb") as file:
            assert ReplayReader(file, name).header.netcode == "rollback"


def test_a_desync_under_rollback_is_caught_reported_and_explained_like_in_lockstep(pong, tmp_path):
    """The joiner departs at frame 150 (--debug-desync-at) in a rollback match over a 40 ms RTT
    link: both stop with desync at 150..152, write their reports, and `pong desync` on the two
    replays names frame 150 and ball_y, as it does for lockstep."""
    frame = 150
    bot = ("--headless", "--bot", "tracker", "--fast", "--json")
    h = pong("host", "--port", "0", "--netcode", "rollback", "--seed", "9", *bot, "--record", "host.replay")
    with NetSim("127.0.0.1", h.port(), Impairment(delay_ms=20)) as sim:
        j = pong(
            "join",
            f"127.0.0.1:{sim.port}",
            *bot,
            "--record",
            "joiner.replay",
            "--debug-desync-at",
            str(frame),
        )
        (hc, hr), (jc, jr) = h.finish(timeout=120), j.finish(timeout=120)
    assert hc == jc == 1, (h.stderr, j.stderr)
    for result in (hr, jr):
        assert result["result"] == "desync" and result["netcode"] == "rollback"
        assert frame <= result["desync_frame"] <= frame + 2
        report = json.loads((tmp_path / result["report"]).read_text())
        assert frame <= report["frame"] <= frame + 2
        assert report["state_first_divergent"] is not None and report["state_last_agreed"] is not None
    code, out = pong("desync", "host.replay", "joiner.replay", "--json").finish()
    assert code == 1 and out is not None
    assert out["diverged"] is True and out["first_frame"] == frame
    assert [item["field"] for item in out["diff"]] == ["ball_y"]
