"""The command line of the core tools: synctest, bench, help, bad usage."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tools.cli import main


def run_pong(*args):
    return subprocess.run([sys.executable, "-m", "tools", *args], cwd=ROOT, capture_output=True, text=True)


def last_json(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


def test_synctest_json_reports_ok(capsys):
    assert main(["synctest", "--frames", "3000", "--check-distance", "5", "--json"]) == 0
    out = last_json(capsys.readouterr().out)
    assert out["ok"] is True and out["frames"] == 3000 and out["first_bad_frame"] is None
    assert len(bytes.fromhex(out["final_chain"])) == 8


def test_synctest_is_reproducible_and_seed_dependent(capsys):
    chains = []
    for seed in ("1", "1", "2"):
        main(["synctest", "--frames", "500", "--seed", seed, "--json"])
        chains.append(last_json(capsys.readouterr().out)["final_chain"])
    assert chains[0] == chains[1] != chains[2]


def test_synctest_exits_1_naming_the_frame_when_restore_is_broken(capsys, monkeypatch):
    from lockstep.game import Game

    original = Game.restore

    def broken(self, snapshot):
        original(self, snapshot)
        self.state.paddle_l += 1

    monkeypatch.setattr(Game, "restore", broken)
    assert main(["synctest", "--frames", "100", "--check-distance", "3", "--json"]) == 1
    captured = capsys.readouterr().out
    assert "frame 3" in captured
    assert last_json(captured)["first_bad_frame"] == 3


def test_bench_reports_sim_fps_as_json(capsys):
    assert main(["bench", "--only", "sim_fps", "--json"]) == 0
    out = last_json(capsys.readouterr().out)
    assert out["sim_fps"] > 0


@pytest.mark.parametrize(
    "args",
    [
        ["synctest", "--frames", "0"],
        ["synctest", "--frames", "lots"],
        ["synctest", "--seed", "-1"],
        ["synctest", "--check-distance", "0"],
        ["no-such-command"],
        [],
    ],
)
def test_bad_usage_is_one_clear_line_and_exit_2(args):
    result = run_pong(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "error:" in result.stderr


def test_help_lists_commands_and_does_not_import_pygame():
    probe = "import sys, tools.cli; tools.cli.build_parser(); print('pygame' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
    help_text = run_pong("--help").stdout
    for command in ("synctest", "bench"):
        assert command in help_text
