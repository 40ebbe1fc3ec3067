"""Golden replays (tests/data): recorded matches that must still verify, to the same final chain.

If SIM_VERSION was bumped on purpose, regenerate them with `python -m tools.make_golden`.
"""

from __future__ import annotations

import json

import pytest

from replay.format import ReplayVersionError
from replay.matches import record_inputs
from replay.reader import read_replay
from replay.verify import verify_replay
from tests.conftest import ROOT
from tools.cli import main
from tools.make_golden import EXPECTED_FILE, GOLDENS, record

DATA = ROOT / "tests" / "data"
REGENERATE = "if the simulation or format changed on purpose, run `python -m tools.make_golden`"


def expected():
    return json.loads((DATA / EXPECTED_FILE).read_text())


def test_every_golden_has_an_expectation():
    assert sorted(expected()["replays"]) == sorted(g.name for g in GOLDENS)
    assert len(GOLDENS) >= 3


@pytest.mark.parametrize("golden", GOLDENS, ids=lambda g: g.name)
def test_golden_replay_verifies_to_its_final_chain(golden):
    want = expected()["replays"][golden.name]
    try:
        replay = read_replay(DATA / golden.filename)
    except ReplayVersionError as exc:
        pytest.fail(f"{exc}; {REGENERATE}")
    result = verify_replay(replay)
    assert result.ok, f"{golden.filename} no longer verifies: first bad frame {result.first_bad_frame}"
    assert result.final_chain.hex() == want["final_chain"], REGENERATE
    assert result.frames == want["frames"]
    assert result.final_state is not None and list(result.final_state.score()) == want["score"]
    assert replay.end_reason == want["end_reason"]
    assert replay.truncated == (want["end_reason"] is None)


@pytest.mark.parametrize("golden", GOLDENS, ids=lambda g: g.name)
def test_recording_the_golden_inputs_again_gives_the_same_bytes(golden, tmp_path):
    """The recorder and the simulation still write exactly these files. (Re-recording from the
    stored inputs, not from the bots: a bot may change without changing the game.)"""
    replay = read_replay(DATA / golden.filename)
    again = tmp_path / golden.filename
    recorded = record_inputs(
        again,
        replay.rules,
        replay.seed,
        replay.frame_inputs,
        input_delay=replay.input_delay,
        names=replay.names,
        created_unix=replay.created_unix,
        end_reason=replay.end_reason,
        chunk_frames=replay.chunk_frames,
    )
    assert recorded.final_chain.hex() == expected()["replays"][golden.name]["final_chain"], REGENERATE
    assert again.read_bytes() == (DATA / golden.filename).read_bytes(), REGENERATE


def test_the_scripted_goldens_are_what_make_golden_records(tmp_path):
    """Scripted goldens depend only on the seeded input script, so the generator must reproduce them."""
    for golden in GOLDENS:
        if golden.bots is None:
            record(golden, tmp_path / golden.filename)
            assert (tmp_path / golden.filename).read_bytes() == (DATA / golden.filename).read_bytes()


def test_golden_replays_through_the_command_line(capsys):
    for golden in GOLDENS:
        assert main(["replay", "verify", str(DATA / golden.filename), "--json"]) == 0
        out = capsys.readouterr().out
        want = expected()["replays"][golden.name]["final_chain"]
        assert json.loads(out.strip().splitlines()[-1])["final_chain"] == want
