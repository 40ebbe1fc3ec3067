"""`pong fuzz`: the campaign passes on the real game, fails (and says how) on a broken toy one."""

from __future__ import annotations

import functools
import io
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

from tests.conftest import PROFILE, ROOT
from tools import fuzz_campaign, fuzz_properties
from tools.cli import main
from tools.fuzz_campaign import Progress, run_campaign
from tools.fuzz_properties import CountedMachine, GivenProperty, MachineProperty


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run in a temporary directory: `.hypothesis/` and regression files must not land in the repo."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYPOTHESIS_DATABASE", raising=False)
    return tmp_path


class TickingClock:
    """A fake clock for the time box: every reading moves it on by `tick` seconds. The runner reads
    it once per example and a few times per turn, so a campaign's time passes with its work,
    alike on a fast machine and on a loaded one, and time limits can be checked exactly."""

    def __init__(self, tick: float = 0.001) -> None:
        self.now = 0.0
        self.tick = tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def campaign(properties, seconds, *, tick=0.001, seed=0, **options):
    """`run_campaign` on a ticking clock, with its examples drawn from `seed` (None: random)."""
    return run_campaign(properties, seconds, clock=TickingClock(tick), seed=seed, **options)


@pytest.fixture
def ticking_pong_fuzz(monkeypatch):
    """`pong fuzz` (run in-process by `main`) times its campaign with a ticking clock."""
    monkeypatch.setattr(
        fuzz_campaign, "run_campaign", functools.partial(fuzz_campaign.run_campaign, clock=TickingClock())
    )


# --- the real properties -------------------------------------------------------------------------


def test_pong_fuzz_for_2_seconds_passes_and_counts_examples(workdir, capsys):
    """The real thing, in real time: only what holds on any machine is checked (how many examples
    fit in 2 s is not); `--seed` makes the examples those of a fixed sequence, as CI needs."""
    assert main(["fuzz", "--seconds", "2", "--seed", "0", "--workers", "1", "--json"]) == 0
    captured = capsys.readouterr()
    out = last_json(captured.out)
    assert out["ok"] is True and out["failures"] == [] and out["interrupted"] is False
    assert out["properties"] == len(fuzz_properties.PROPERTIES) == 10
    assert out["examples"] > 0 and out["examples"] == sum(out["per_property"].values())
    assert out["seconds"] >= 2  # it ran its time (and then ended: we are here)
    assert out["seed"] == 0 and out["database"] == str(Path(".hypothesis") / "examples")
    assert out["workers"] == 1
    assert "fuzz ok:" in captured.out
    # Progress went to stderr (not a terminal here: whole lines, no carriage returns).
    assert "examples, 10 properties" in captured.err and "\r" not in captured.err


def test_the_campaign_visits_every_property_and_ends_on_time(workdir):
    """With turns of up to 5 s in a 1 s campaign, every property still gets its turn and the
    campaign ends within a few clock readings after its deadline (the ticking clock makes that
    exact: no machine is too slow or too fast for it)."""
    result = campaign(fuzz_properties.PROPERTIES, 1.0, tick=0.01, turn_seconds=5.0)
    assert result.ok and result.examples > 0
    assert all(n > 0 for n in result.per_property.values()), result.per_property
    assert 1.0 <= result.seconds <= 1.0 + 10 * 0.01


def recording(seen):
    def record(x: int, ys: list[int]) -> None:
        seen.append((x, tuple(ys)))

    return GivenProperty(
        "record", "records its examples", record, {"x": st.integers(), "ys": st.lists(st.integers())}
    )


def test_a_seeded_campaign_runs_the_same_examples_and_another_seed_others(workdir):
    runs = []
    for seed in (7, 7, 8):
        seen: list[tuple[int, tuple[int, ...]]] = []
        result = campaign([recording(seen)], 0.2, seed=seed)
        assert result.ok and result.examples == len(seen) > 10
        runs.append(seen)
    assert runs[0] == runs[1] != runs[2]
    assert len(set(runs[0])) > 10  # turn after turn, new examples: not one turn's over and over


def test_only_selects_properties_and_lists_them(workdir, capsys):
    assert main(["fuzz", "--only", "list"]) == 0
    listing = capsys.readouterr().out
    assert all(p.name in listing for p in fuzz_properties.PROPERTIES)
    assert main(["fuzz", "--seconds", "0.5", "--only", "codec_round_trip", "--workers", "1", "--json"]) == 0
    out = last_json(capsys.readouterr().out)
    assert out["properties"] == 1 and list(out["per_property"]) == ["codec_round_trip"]


def test_a_leaky_restore_is_caught_by_the_real_save_restore_property(workdir, monkeypatch):
    """The real properties have teeth: a restore that forgets the RNG fails `save_restore`."""
    from lockstep.game import Game

    original = Game.restore

    def leaky_restore(self, snapshot):
        rng = self.state.rng
        original(self, snapshot)
        self.state.rng = rng

    monkeypatch.setattr(Game, "restore", leaky_restore)
    result = campaign(fuzz_properties.by_name(["save_restore"]), 30.0, database_dir=workdir / "db")
    assert not result.ok and [f.property for f in result.failures] == ["save_restore"]
    assert result.seconds < 30  # on the ticking clock: the failure ended the campaign


# --- a deliberately non-deterministic toy game (a test double, not the simulation) ---------------


class LeakyToyGame:
    """Deterministic, except that an input with bit 3 set mixes in a process-wide call counter."""

    calls = 0

    def __init__(self, seed: int) -> None:
        self.value = seed

    def advance(self, frame_input: int) -> int:
        if frame_input & 8:
            LeakyToyGame.calls += 1
            self.value += LeakyToyGame.calls
        self.value = (self.value * 31 + frame_input) % (1 << 61)
        return self.value


def check_toy_game_is_deterministic(seed: int, inputs: list[int]) -> None:
    a, b = LeakyToyGame(seed), LeakyToyGame(seed)
    assert [a.advance(i) for i in inputs] == [b.advance(i) for i in inputs], (
        "same seed and inputs, other chain"
    )


TOY = GivenProperty(
    "toy_determinism",
    "the toy game gives the same chain for the same seed and inputs",
    check_toy_game_is_deterministic,
    {"seed": st.integers(0, 2**32), "inputs": st.lists(st.integers(0, 15), max_size=50)},
)


def test_a_non_deterministic_toy_game_makes_pong_fuzz_fail_with_a_minimal_example(
    workdir, monkeypatch, capsys, ticking_pong_fuzz
):
    monkeypatch.setattr(fuzz_properties, "PROPERTIES", (TOY, *fuzz_properties.PROPERTIES[:2]))
    assert main(["fuzz", "--seconds", "30", "--seed", "0", "--workers", "1", "--json"]) == 1
    captured = capsys.readouterr()
    out = last_json(captured.out)
    assert out["ok"] is False and out["seconds"] < 30  # the first failure ends the campaign
    [failure] = out["failures"]
    assert failure["property"] == "toy_determinism"
    assert failure["error"] == "AssertionError: same seed and inputs, other chain"
    # Shrunk all the way: the smallest seed and the one input that reads the counter.
    assert failure["example"] == "check_toy_game_is_deterministic(\n    seed=0,\n    inputs=[8],\n)"
    assert "minimal failing example" in captured.out and "seed=0," in captured.out
    path = workdir / "fuzz-regression-toy_determinism.py"
    assert failure["regression_file"] == os.path.join(".", path.name)
    source = path.read_text()
    module = check_toy_game_is_deterministic.__module__  # as pytest imported this file
    assert f"from {module} import check_toy_game_is_deterministic" in source
    assert "def test_fuzz_regression_toy_determinism():" in source
    # The regression test is a plain pytest test that fails on the bug.
    test = runpy.run_path(str(path))["test_fuzz_regression_toy_determinism"]
    with pytest.raises(AssertionError, match="other chain"):
        test()


def test_a_failure_is_replayed_first_from_the_example_database(workdir):
    first = campaign([TOY], 30.0)
    assert [f.property for f in first.failures] == ["toy_determinism"]
    assert any((workdir / ".hypothesis" / "examples").iterdir())
    again = campaign([TOY], 30.0)
    assert [f.example for f in again.failures] == [f.example for f in first.failures]
    # The saved example fails again at once: no search, no shrinking.
    assert again.examples <= 5 < first.examples


def test_keep_going_fuzzes_the_others_after_a_failure(workdir):
    result = campaign([TOY, *fuzz_properties.by_name(["codec_round_trip"])], 1.5, keep_going=True, tick=0.005)
    assert [f.property for f in result.failures] == ["toy_determinism"]
    assert result.seconds >= 1.5 and result.per_property["codec_round_trip"] > 0


class ToyCounterMachine(CountedMachine):
    """A toy state machine with a bug: its total may pass the limit it promises."""

    fuzz_name = "toy_machine"

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    @rule(n=st.integers(0, 10))
    def add(self, n: int) -> None:
        self.total += n

    @invariant()
    def stays_small(self) -> None:
        assert self.total <= 15, f"total {self.total}"


def test_a_failing_state_machine_is_written_out_as_its_steps(workdir):
    prop = MachineProperty("toy_machine", "the toy total stays small", ToyCounterMachine)
    result = campaign([prop], 30.0)
    [failure] = result.failures
    assert failure.example.startswith("state = ToyCounterMachine()")
    assert failure.example.endswith("state.teardown()")
    assert result.per_property["toy_machine"] > 0
    test = runpy.run_path(failure.regression_file)["test_fuzz_regression_toy_machine"]
    with pytest.raises(AssertionError, match=r"total (1[6-9]|20)"):
        test()


def test_a_suite_profile_does_not_leak_into_a_campaign(workdir):
    """Run under the derandomized `ci` profile, the campaign still explores (and uses its database)."""
    assert settings.default.derandomize is (PROFILE == "ci")
    result = campaign([TOY], 30.0, seed=None)
    assert not result.ok and (workdir / ".hypothesis" / "examples").is_dir()


# --- progress and interruption ------------------------------------------------------------------


def test_progress_is_rewritten_in_place_on_a_terminal_and_a_line_every_few_seconds_otherwise():
    tty, pipe = io.StringIO(), io.StringIO()
    on_tty, on_pipe = Progress(tty, tty=True), Progress(pipe, every_s=5.0, tty=False)
    for now in (0.0, 0.05, 0.2, 3.0, 6.0, 7.0):
        on_tty.show(now, f"at {now}")
        on_pipe.show(now, f"at {now}")
    on_tty.done()
    assert tty.getvalue() == "\rat 0.0\rat 0.2\rat 3.0\rat 6.0\rat 7.0\n"
    assert pipe.getvalue() == "at 0.0\nat 6.0\n"


def interrupting(seed: int) -> None:
    raise KeyboardInterrupt


def test_ctrl_c_ends_the_campaign_with_what_it_ran(workdir, monkeypatch, capsys, ticking_pong_fuzz):
    stop = GivenProperty("ctrl_c", "a person presses Ctrl-C", interrupting, {"seed": st.integers()})
    monkeypatch.setattr(fuzz_properties, "PROPERTIES", (*fuzz_properties.PROPERTIES[:1], stop))
    assert main(["fuzz", "--seconds", "30", "--workers", "1", "--json"]) == 130
    out = last_json(capsys.readouterr().out)
    assert out["interrupted"] is True and out["ok"] is False and out["failures"] == []
    assert out["per_property"]["ctrl_c"] == 1 and out["seconds"] < 30


# --- usage ---------------------------------------------------------------------------------------


def run_pong(*args, cwd):
    return subprocess.run([sys.executable, "-m", "tools", *args], cwd=cwd, capture_output=True, text=True)


@pytest.mark.parametrize(
    "args",
    [
        ["--seconds", "0"],
        ["--seconds", "-3"],
        ["--seconds", "soon"],
        ["--seconds", "nan"],
        ["--seconds", "1e9"],
        ["--only", "no_such_property"],
        ["--interpreters", "--seconds", "5"],
        ["--interpreters", "--seed", "1"],
        ["--seed", "-1"],
        ["--workers", "0"],
        ["--workers", "many"],
        ["--interpreters", "--workers", "2"],
        ["--interpreters", "--database", "db"],
    ],
)
def test_bad_usage_is_one_line_and_exit_2(args, tmp_path):
    env_root = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-m", "tools", "fuzz", *args],
        cwd=tmp_path,
        env=env_root,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "error:" in result.stderr
    assert not (tmp_path / ".hypothesis").exists()


# --- the profiles --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "profile, derandomize, at_least",
    [("", True, 50), ("ci", True, 50), ("dev", False, 100), ("fuzz", False, 10_000)],
)
def test_profiles_are_selected_by_an_environment_variable(profile, derandomize, at_least, tmp_path):
    probe = (
        "import tests.conftest as c; from hypothesis import settings as s; d = s.default; "
        "print(c.PROFILE, d.derandomize, d.max_examples, d.deadline, d.database)"
    )
    env = dict(os.environ, HYPOTHESIS_PROFILE=profile, HYPOTHESIS_DATABASE=str(tmp_path / "shared"))
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True)
    name, derandomized, examples, deadline, database = out.stdout.split(maxsplit=4)
    assert name == (profile or "ci")
    assert derandomized == str(derandomize) and int(examples) >= at_least and deadline == "None"
    if not derandomize:
        assert str(tmp_path / "shared") in database  # the shared example database
