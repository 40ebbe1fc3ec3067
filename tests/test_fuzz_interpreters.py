"""`pong fuzz --interpreters`: every CPython >= 3.10 here computes the same chains."""

from __future__ import annotations

import json
import shutil
import stat
import sys

import pytest

from lockstep.game import Game
from lockstep.rules import Rules
from lockstep.script import random_inputs
from tests.conftest import ROOT
from tools import fuzz_interpreters
from tools.cli import main
from tools.fuzz_interpreters import SCRIPTS, Interpreter, cross_check, find_interpreters


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def interpreters():
    found, _ = find_interpreters()
    return found


def test_every_interpreter_found_computes_the_same_chains(interpreters):
    if len(interpreters) < 2:
        only = ", ".join(f"{i.version} ({i.executable})" for i in interpreters) or "none"
        pytest.skip(f"only one CPython >= 3.10 is installed here ({only}): nothing to compare it with")
    check = cross_check(interpreters)
    assert check.compared and check.ok, [d.as_dict() for d in check.disagreements]
    chains = {json.dumps(i.chains, sort_keys=True) for i in check.interpreters}
    assert len(chains) == 1
    # ... and they are the chains this process computes, without any child.
    [script] = [s for s in SCRIPTS if s.name == "random-2"]
    here = Game(Rules(points_to_win=script.points_to_win), script.seed).run(
        random_inputs(script.seed, script.frames)
    )
    assert check.interpreters[0].chains["random-2"] == here.hex()


def test_this_interpreter_is_always_found_and_old_ones_are_skipped(interpreters):
    assert any(sys.version.split()[0] == i.version for i in interpreters)
    assert all(tuple(int(p) for p in i.version.split(".")[:2]) >= (3, 10) for i in interpreters)
    assert len({i.executable for i in interpreters}) == len(interpreters)


def test_a_lone_interpreter_is_reported_as_nothing_to_compare(monkeypatch, capsys):
    alone = [Interpreter(sys.executable, sys.version.split()[0], [sys.executable])]
    monkeypatch.setattr(fuzz_interpreters, "find_interpreters", lambda: (alone, []))
    assert main(["fuzz", "--interpreters", "--json"]) == 0
    captured = capsys.readouterr()
    out = last_json(captured.out)
    assert out["ok"] is True and out["compared"] is False
    assert "only one CPython >= 3.10 is present" in captured.out
    assert set(out["interpreters"][0]["chains"]) == {s.name for s in SCRIPTS}


def test_an_interpreter_that_computes_other_chains_fails_naming_the_frame(tmp_path, monkeypatch, capsys):
    """A stand-in 'interpreter' whose lockstep perturbs the state after frame 5000."""
    copy = tmp_path / "other" / "lockstep"
    shutil.copytree(ROOT / "lockstep", copy, ignore=shutil.ignore_patterns("__pycache__"))
    game_py = copy / "game.py"
    source = game_py.read_text()
    needle = "            _step(state, rules, frame_input)\n"  # in Game.run, the one stepping loop
    assert source.count(needle) == 1
    perturb = "            if state.frame == 5000:\n                state.rng ^= 1\n"
    game_py.write_text(source.replace(needle, needle + perturb))
    fake = tmp_path / "python-perturbed"
    fake.write_text(f'#!/bin/sh\nPYTHONPATH="{copy.parent}" exec "{sys.executable}" "$@"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    real = Interpreter(sys.executable, "real", [sys.executable])
    other = Interpreter(str(fake), "perturbed", [str(fake)])
    monkeypatch.setattr(fuzz_interpreters, "find_interpreters", lambda: ([real, other], []))
    assert main(["fuzz", "--interpreters", "--json"]) == 1
    captured = capsys.readouterr()
    out = last_json(captured.out)
    assert out["ok"] is False and out["compared"] is True
    # Every script runs past frame 5000; the chains agree at the checkpoints 2000 and 4000.
    assert {d["script"] for d in out["disagreements"]} == {s.name for s in SCRIPTS}
    assert {d["first_frame"] for d in out["disagreements"]} == {6000}
    assert "DIFFERENT" in captured.out and "interpreters FAILED" in captured.err
