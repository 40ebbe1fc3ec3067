"""`pong replay verify|info|play`: exit codes, JSON fields, clear one-line errors, no pygame."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lockstep.game import Game
from lockstep.rules import Rules
from lockstep.script import random_inputs
from replay.matches import record_bot_match, record_inputs
from replay.writer import ReplayWriter
from tests.conftest import ROOT
from tools.cli import main


def last_json(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


def run_pong(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "tools", *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=60
    )


@pytest.fixture(scope="module")
def match(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "match.replay"
    recorded = record_bot_match(path, Rules(points_to_win=2), 3, ("tracker", "random"), input_delay=2)
    return path, recorded


def test_verify_ok_json(match, capsys):
    path, recorded = match
    assert main(["replay", "verify", str(path), "--json"]) == 0
    out = capsys.readouterr().out
    assert "replay ok" in out
    fields = last_json(out)
    assert fields["ok"] is True and fields["first_bad_frame"] is None and fields["truncated"] is False
    assert fields["frames"] == recorded.frames
    assert fields["final_chain"] == recorded.final_chain.hex()
    assert fields["checkpoints"] == -(-recorded.frames // 60) + 1  # every chunk and the footer


def test_info_json_describes_the_match(match, capsys):
    path, recorded = match
    assert main(["replay", "info", str(path), "--json"]) == 0
    out = capsys.readouterr().out
    fields = last_json(out)
    assert fields["names"] == ["tracker", "random"]
    assert fields["seed"] == 3 and fields["input_delay"] == 2
    assert fields["frames"] == recorded.frames
    assert fields["duration_s"] == round(recorded.frames / 60, 3)
    assert fields["score"] == list(recorded.score) and fields["winner"] in ("left", "right")
    assert fields["end_reason"] == "finished" and fields["truncated"] is False
    assert fields["rules"]["points_to_win"] == 2 and fields["sim_version"] >= 1
    assert fields["size_bytes"] == path.stat().st_size and fields["bytes_per_frame"] > 1
    assert "final score" in out and "ended: finished" in out


def test_a_truncated_replay_verifies_its_prefix_with_a_warning(match, tmp_path, capsys):
    path, _ = match
    data = path.read_bytes()
    cut = tmp_path / "cut.replay"
    cut.write_bytes(data[: len(data) * 2 // 3])
    assert main(["replay", "verify", str(cut), "--json"]) == 0
    captured = capsys.readouterr()
    fields = last_json(captured.out)
    assert fields["ok"] is True and fields["truncated"] is True and fields["frames"] % 60 == 0
    assert "warning" in captured.err and "truncated" in captured.err
    assert main(["replay", "info", str(cut), "--json"]) == 0
    fields = last_json(capsys.readouterr().out)
    assert fields["truncated"] is True and fields["end_reason"] is None


def test_a_chain_mismatch_exits_1_naming_the_checkpoint(tmp_path, capsys):
    path = tmp_path / "desync.replay"
    game = Game(Rules(), 2)
    with ReplayWriter(str(path), Rules(), 2, 0, ("a", "b"), 0) as writer:
        for f, frame_input in enumerate(random_inputs(2, 200), start=1):
            writer.add_frame(frame_input, game.advance(frame_input))
            if f == 100:
                game.state.score_r += 1
        writer.finish("desync")
    assert main(["replay", "verify", str(path), "--json"]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "frame 120" in out
    fields = last_json(out)
    assert fields["ok"] is False and fields["first_bad_frame"] == 120


def test_every_byte_flip_makes_verify_fail_with_one_clear_line(tmp_path, capsys):
    path = tmp_path / "small.replay"
    record_inputs(path, Rules(), 8, random_inputs(8, 200), end_reason="quit")
    data = path.read_bytes()
    bad_path = tmp_path / "bad.replay"
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x5A
        bad_path.write_bytes(bytes(bad))
        assert main(["replay", "verify", str(bad_path), "--json"]) != 0, i
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("pong: error: "), (i, captured.err)
        assert "corrupted" in lines[0] or "not a Lockstep Pong replay" in lines[0]


@pytest.mark.parametrize("action", ["verify", "info", "play"])
def test_unreadable_files_exit_2_without_traceback(tmp_path, action):
    junk = tmp_path / "junk.replay"
    junk.write_bytes(b"\x00" * 100)
    for target in (junk, tmp_path / "missing.replay", tmp_path):
        result = run_pong("replay", action, str(target))
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith("pong: error: ") and len(result.stderr.strip().splitlines()) == 1


def test_a_file_name_that_is_not_utf8_is_printed_escaped_not_a_traceback(match, tmp_path):
    odd = tmp_path / os.fsdecode(b"m\xe4tch.replay")
    odd.write_bytes(match[0].read_bytes())
    env = dict(os.environ, PYTHONIOENCODING="utf-8:strict")  # what a UTF-8 locale gives
    info = run_pong("replay", "info", str(odd), env=env)
    assert info.returncode == 0 and "Traceback" not in info.stderr, info.stderr
    assert "m\\udce4tch.replay" in info.stdout  # the byte, escaped, in the lines for a person
    assert run_pong("replay", "verify", str(odd), env=env).returncode == 0


def test_replay_without_an_action_is_bad_usage():
    result = run_pong("replay")
    assert result.returncode == 2 and "error:" in result.stderr


def test_play_without_a_display_says_so_and_exits_2(match):
    path, _ = match
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")}
    result = run_pong("replay", "play", str(path), env=env)
    assert result.returncode == 2
    assert "display" in result.stderr and "pong replay verify" in result.stderr
    assert "pong replay info" in result.stderr and "Traceback" not in result.stderr
    assert "pygame" not in result.stdout


def test_play_opens_and_closes_a_window_on_the_dummy_driver(match):
    path, _ = match
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy")
    result = run_pong("replay", "play", str(path), "--max-ticks", "5", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # in particular no pygame banner


def test_headless_replay_commands_do_not_import_pygame(match):
    path, _ = match
    probe = (
        "import sys; from tools.cli import main\n"
        f"for action in ('verify', 'info'): main(['replay', action, {str(path)!r}])\n"
        "print('PYGAME' if 'pygame' in sys.modules else 'CLEAN')"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip().splitlines()[-1] == "CLEAN"


def test_bench_reports_the_replay_size_per_frame(capsys):
    assert main(["bench", "--only", "replay_bytes_per_frame", "--json"]) == 0
    assert 1 <= last_json(capsys.readouterr().out)["replay_bytes_per_frame"] <= 1.5
