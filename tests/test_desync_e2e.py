"""Desync end to end: real `pong host`/`pong join` processes, one perturbed with --debug-desync-at F.

Both must stop with `desync` (exit 1) naming a frame in [F, F+2], keep their replays, write
their reports, and `pong desync` on the two replays, on the two reports, and on the replays
alone (reports moved away) must name frame F and the perturbed field, `ball_y`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from replay.reader import read_replay
from tests.procs import Pong

BOT = ("--headless", "--bot", "tracker", "--fast", "--json")


def pong_desync(*args, cwd):
    proc = subprocess.run(
        [sys.executable, "-m", "tools", "desync", *map(str, args), "--json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1]), proc.stdout


def play_with_desync(tmp_path, frame, perturbed):
    host_extra = ("--debug-desync-at", str(frame)) if perturbed == "host" else ()
    join_extra = ("--debug-desync-at", str(frame)) if perturbed == "joiner" else ()
    fixed = ("--port", "0", "--delay", "2", "--seed", "9")
    host = Pong("host", *fixed, *BOT, "--record", "host.replay", *host_extra, cwd=tmp_path)
    joiner = Pong(
        "join", f"127.0.0.1:{host.port()}", *BOT, "--record", "joiner.replay", *join_extra, cwd=tmp_path
    )
    try:
        return host.finish(), joiner.finish(), host, joiner
    finally:
        host.kill()
        joiner.kill()


@pytest.mark.parametrize(("frame", "perturbed"), [(75, "host"), (130, "joiner")])
def test_a_perturbed_peer_is_caught_reported_and_explained(tmp_path, frame, perturbed):
    (hc, hr), (jc, jr), host, joiner = play_with_desync(tmp_path, frame, perturbed)
    assert hc == jc == 1, (host.stderr, joiner.stderr)
    reports = []
    for result, name in ((hr, "host.replay"), (jr, "joiner.replay")):
        assert result["result"] == "desync"
        assert frame <= result["desync_frame"] <= frame + 2
        assert result["replay"] == name
        replay = read_replay(tmp_path / name)
        assert replay.footer is not None and replay.footer.end_reason == "desync"
        assert replay.frames >= frame
        report = json.loads((tmp_path / result["report"]).read_text())
        assert frame <= report["frame"] <= frame + 2 and report["replay"] == name
        assert report["state_first_divergent"] is not None and report["state_last_agreed"] is not None
        reports.append(result["report"])
    assert reports[0] != reports[1], "the two peers' reports must not overwrite each other"

    victim, other = ("A", "B") if perturbed == "host" else ("B", "A")
    for args in (("host.replay", "joiner.replay"), tuple(reports), (reports[0], "joiner.replay")):
        code, result, out = pong_desync(*args, cwd=tmp_path)
        assert code == 1, out
        assert result["diverged"] is True and result["first_frame"] == frame and result["exact"] is True
        assert [item["field"] for item in result["diff"]] == ["ball_y"]
        departure = result[victim.lower()]["departure"]
        assert (
            departure["frame"] == frame and departure["field"] == "ball_y" and departure["delta"] in (-1, 1)
        )
        assert result[other.lower()]["reproduces_recorded_chains"] is True
        assert f"{victim}'s game departed" in out

    # The replays alone (no reports next to them): the one-unit search still finds frame and field.
    alone = tmp_path / "alone"
    alone.mkdir()
    for name in ("host.replay", "joiner.replay"):
        shutil.copy(tmp_path / name, alone / name)
    code, result, _ = pong_desync("host.replay", "joiner.replay", "--png", "desync.png", cwd=alone)
    assert code == 1 and result["first_frame"] == frame
    assert [item["field"] for item in result["diff"]] == ["ball_y"]
    assert result[victim.lower()]["departure"]["source"] == "search"
    assert (alone / "desync.png").stat().st_size > 1000

    # Each replay on its own: the perturbed one departs from its inputs at F, the other is clean.
    code, result, _ = pong_desync(f"{perturbed}.replay", cwd=alone)
    assert code == 1 and result["first_frame"] == frame
    healthy = "joiner" if perturbed == "host" else "host"
    code, result, _ = pong_desync(f"{healthy}.replay", cwd=alone)
    assert code == 0 and result["diverged"] is False
