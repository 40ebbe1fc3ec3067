"""Same seed and inputs give the same chain: in one process, across processes, and over time."""

import os
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from lockstep.game import Game
from lockstep.rules import SIM_VERSION, Rules
from lockstep.script import random_inputs
from tests.conftest import ROOT

frame_inputs = st.lists(st.integers(0, 15), min_size=0, max_size=4000)
seeds = st.integers(0, 2**64 - 1)


@given(seeds, frame_inputs)
def test_same_seed_and_inputs_give_the_same_chain(seed, inputs):
    a = Game(Rules(), seed)
    b = Game(Rules(), seed)
    assert a.run(inputs) == b.run(inputs)
    assert a.state == b.state


@settings(max_examples=20)
@given(seeds, st.integers(1000, 6000))
def test_long_scripted_runs_are_reproducible(seed, frames):
    inputs = random_inputs(seed, frames)
    assert Game(Rules(), seed).run(inputs) == Game(Rules(), seed).run(inputs)


def test_different_seeds_give_different_games():
    inputs = random_inputs(3, 2000)
    assert Game(Rules(), 1).run(inputs) != Game(Rules(), 2).run(inputs)


def test_one_changed_input_changes_the_chain_from_there_on():
    inputs = random_inputs(5, 500)
    changed = list(inputs)
    changed[200] ^= 1
    a, b = Game(Rules(), 5), Game(Rules(), 5)
    chains_a = [a.advance(i) for i in inputs]
    chains_b = [b.advance(i) for i in changed]
    assert chains_a[:200] == chains_b[:200]
    assert all(x != y for x, y in zip(chains_a[200:], chains_b[200:]))


# Pinned: changes only together with a SIM_VERSION bump (see README, "Changing the simulation").
GOLDEN_SIM_VERSION = 1
GOLDEN_SEED = 20261126
GOLDEN_RULES = Rules(points_to_win=999)  # no early end: all 10,000 frames are live play
GOLDEN_CHAIN_10000 = "468fece07e7caa83"


def test_golden_chain_of_a_fixed_10000_frame_script():
    assert SIM_VERSION == GOLDEN_SIM_VERSION, "SIM_VERSION changed: re-pin the golden chain"
    chain = Game(GOLDEN_RULES, GOLDEN_SEED).run(random_inputs(GOLDEN_SEED, 10_000))
    assert chain.hex() == GOLDEN_CHAIN_10000


_CHILD = (
    "from lockstep.game import Game; from lockstep.rules import Rules; "
    "from lockstep.script import random_inputs; "
    "print(Game(Rules(), 99).run(random_inputs(99, 5000)).hex())"
)


def test_chain_is_the_same_under_different_hash_seeds():
    chains = set()
    for hash_seed in ("0", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        out = subprocess.run(
            [sys.executable, "-c", _CHILD], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
        chains.add(out.stdout.strip())
    chains.add(Game(Rules(), 99).run(random_inputs(99, 5000)).hex())
    assert len(chains) == 1, chains
