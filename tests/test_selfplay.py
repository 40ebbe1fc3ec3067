"""`pong selfplay` leaves no mess: its temporary directory goes when all is well, is kept and named
when not, and `--out DIR` never overwrites a replay."""

from __future__ import annotations

import json
import os
import tempfile

import pytest

from tools import selfplay
from tools.cli import main
from tools.procmatch import MatchRun, PeerRun


@pytest.fixture
def temp_root(tmp_path, monkeypatch):
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def test_a_good_run_removes_its_temporary_directory_and_says_nothing_of_stalls(temp_root, capsys):
    assert main(["selfplay", "--points", "1", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert result["ok"] and result["replays"] is None and set(result["stalls"]) == {"host", "joiner"}
    assert list(temp_root.iterdir()) == []
    assert out[0].startswith("selfplay ok: ") and "stall" not in out[0] and "(removed; --out DIR" in out[0]


def test_a_failed_run_keeps_its_temporary_directory_and_names_it(temp_root, capsys, monkeypatch):
    failed = PeerRun(3, {"result": "peer_timeout", "frames": 0}, "peer_timeout")
    monkeypatch.setattr(selfplay, "run_match", lambda *a, **k: MatchRun(failed, failed, 1.0))
    assert main(["selfplay", "--points", "1"]) == 3
    (kept,) = temp_root.iterdir()
    err = capsys.readouterr().err
    assert err.startswith("selfplay FAILED: ") and f"the replays are in {kept}" in err


def test_out_never_overwrites_a_replay(tmp_path):
    (tmp_path / "host.replay").write_bytes(b"mine")
    first = selfplay.replay_paths(str(tmp_path))
    assert first == {"host": str(tmp_path / "host-2.replay"), "joiner": str(tmp_path / "joiner-2.replay")}
    second = selfplay.replay_paths(str(tmp_path))
    assert second["host"].endswith("host-3.replay") and second["joiner"].endswith("joiner-3.replay")
    assert (tmp_path / "host.replay").read_bytes() == b"mine"
    assert not os.path.exists(tmp_path / "joiner.replay")  # a half-taken pair is not left behind


def test_out_twice_keeps_both_runs(tmp_path, capsys):
    out = str(tmp_path / "out")
    for _ in range(2):
        assert main(["selfplay", "--points", "1", "--out", out, "--json"]) == 0
    replays = [
        json.loads(line)["replays"] for line in capsys.readouterr().out.splitlines() if line[:1] == "{"
    ]
    assert replays[0] != replays[1]
    assert sorted(os.listdir(out)) == ["host-2.replay", "host.replay", "joiner-2.replay", "joiner.replay"]
