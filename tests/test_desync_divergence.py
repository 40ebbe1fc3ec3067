"""The divergence analysis behind `pong desync` (replay/divergence.py) on sides built in memory.

No files: each side is what a recording would hold (inputs, recorded chains every CHECKPOINT
frames and at the end, and optionally full states, as a report has). The command on real files
is tested in test_desync.py.
"""

from __future__ import annotations

import pytest

from lockstep.chain import chain_next, chain_start
from lockstep.game import Game
from lockstep.inputs import DOWN, UP, pack, unpack
from lockstep.rules import Rules
from lockstep.script import random_inputs
from lockstep.state import initial_state
from replay.divergence import (
    MAX_SEARCH_FRAMES,
    Base,
    DivergenceError,
    Side,
    check_alone,
    check_side,
    compare,
    simulate,
    state_of,
)

RULES = Rules(points_to_win=99)
SEED = 11
FRAMES = 400
CHECKPOINT = 60
INPUTS = random_inputs(5, FRAMES)


def make_side(
    label="A",
    inputs=INPUTS,
    *,
    seed=SEED,
    perturb=None,
    checkpoint=CHECKPOINT,
    states_at=(),
    base=None,
):
    """A recording of `inputs` played from frame 0; `perturb=(frame, field, delta)` changes the
    real game right after that frame's step. Chains are recorded every `checkpoint` frames and at
    the last; the real states (and their chains, as a report holds them) at `states_at`. With
    `base=F` the side holds only frames F.. (a report's window), with every chain from there on."""
    game = Game(RULES, seed)
    chains = {0: game.chain}
    states = {0: game.state.copy()}
    for frame, frame_input in enumerate(inputs, start=1):
        before = game.chain
        game.advance(frame_input)
        if perturb is not None and frame == perturb[0]:
            name, delta = perturb[1], perturb[2]
            setattr(game.state, name, getattr(game.state, name) + delta)
            game.chain = chain_next(before, game.state)
        chains[frame] = game.chain
        states[frame] = game.state.copy()
    last = len(inputs)
    if base is None:
        recorded = {f: c for f, c in chains.items() if f and (f % checkpoint == 0 or f == last)}
        start = Base(0, initial_state(RULES, seed), chain_start(RULES, seed))
        side_inputs, input_start = bytes(inputs), 1
    else:
        recorded = {f: c for f, c in chains.items() if f >= base}
        start = Base(base, states[base], chains[base])
        side_inputs, input_start = bytes(inputs[base:]), base + 1
    recorded.update({f: chains[f] for f in states_at})
    return Side(
        label=label,
        path=f"{label.lower()}.replay",
        rules=RULES,
        seed=seed,
        names=("left", "right"),
        base=start,
        input_start=input_start,
        inputs=side_inputs,
        recorded_chains=recorded,
        recorded_states={f: states[f] for f in states_at},
    )


def inputs_differing_at(frame):
    inputs = list(INPUTS)
    left, right = unpack(inputs[frame - 1])
    inputs[frame - 1] = pack(UP if left == DOWN else DOWN, right)
    return inputs


def test_simulate_gives_every_chain_and_the_wanted_states():
    side = make_side()
    chains, states = simulate(side, want=(0, 137, FRAMES))
    game = Game(RULES, SEED)
    expected = [game.chain] + [game.advance(i) for i in INPUTS]
    assert chains == b"".join(expected)
    assert sorted(states) == [0, 137, FRAMES] and states[137].frame == 137
    _, early = simulate(side, upto=50, want=(50, 51))
    assert sorted(early) == [50]


def test_a_side_that_reproduces_its_chains_is_consistent():
    side = make_side()
    check = check_side(side)
    assert check.consistent and check.model is None
    assert check.compared == FRAMES // CHECKPOINT + 1 and check.valid_until == FRAMES
    assert (side.first_frame, side.end_frame, side.input_end) == (0, FRAMES, FRAMES)


def test_a_one_unit_departure_is_found_by_the_search():
    side = make_side(perturb=(150, "ball_y", -1))
    check = check_side(side)
    assert (check.first_bad, check.last_good) == (180, 120)
    model = check.model
    assert model is not None and model.source == "search"
    assert (model.frame, model.field, model.delta) == (150, "ball_y", -1)
    assert check.valid_until == FRAMES and check.model_first_bad is None
    plain = simulate(side, upto=150, want=(150,))[1][150]
    assert state_of(side, check, 150).ball_y == plain.ball_y - 1


def test_a_recorded_state_right_after_the_last_agreeing_frame_explains_any_departure():
    """A five-unit change, which no one-unit search finds: the report's state does."""
    side = make_side(perturb=(121, "paddle_r", 5), states_at=(121,))
    check = check_side(side)
    assert check.model is not None and check.model.source == "report" and check.model.frame == 121
    assert [(name, real - plain) for name, plain, real in check.model.changes] == [("paddle_r", 5)]
    assert check.valid_until == FRAMES


def test_a_departure_beyond_the_search_window_is_only_narrowed():
    side = make_side(perturb=(150, "ball_y", -1), checkpoint=MAX_SEARCH_FRAMES + 60)
    check = check_side(side)
    assert check.model is None and check.first_bad == MAX_SEARCH_FRAMES + 60 and check.last_good == 0
    assert check.valid_until == 0
    assert state_of(side, check, 150) is None


def test_compare_identical_sides():
    a, b = make_side("A"), make_side("B")
    verdict = compare(a, check_side(a), b, check_side(b))
    assert not verdict.diverged and verdict.compared == (0, FRAMES) and verdict.diff == []


def test_compare_names_the_first_differing_input_and_the_field():
    a, b = make_side("A"), make_side("B", inputs_differing_at(137))
    verdict = compare(a, check_side(a), b, check_side(b))
    assert verdict.diverged and verdict.kind == "inputs" and verdict.exact
    assert verdict.first_frame == verdict.input_frame == verdict.diff_frame == 137
    assert [item["field"] for item in verdict.diff] == ["paddle_l"]


def test_compare_different_seeds_is_a_header_divergence_at_frame_zero():
    a, b = make_side("A"), make_side("B", seed=SEED + 1)
    verdict = compare(a, check_side(a), b, check_side(b))
    assert verdict.kind == "header" and verdict.first_frame == 0
    assert {"field": "seed", "a": SEED, "b": SEED + 1} in verdict.diff


def test_compare_a_perturbed_side_with_a_report_window():
    """B holds only a report's window (frames 140..) with every chain: exact at the departure."""
    a, b = make_side("A"), make_side("B", perturb=(150, "ball_vx", 1), base=140)
    verdict = compare(a, check_side(a), b, check_side(b))
    assert verdict.first_frame == 150 and verdict.kind == "chain" and verdict.exact
    assert verdict.compared == (140, FRAMES)
    assert [(d["field"], d["b"] - d["a"]) for d in verdict.diff] == [("ball_vx", 1)]


def test_compare_sides_without_common_frames_raises():
    a, b = make_side("A", INPUTS[:100]), make_side("B", base=200)
    with pytest.raises(DivergenceError, match="nothing to compare"):
        compare(a, check_side(a), b, check_side(b))


def test_check_alone_pins_a_perturbed_side_and_refuses_a_side_without_a_base():
    side = make_side(perturb=(75, "ball_vx", 1))
    verdict = check_alone(side, check_side(side))
    assert verdict.diverged and verdict.first_frame == 75 and verdict.exact
    assert [(d["field"], d["a"] - d["b"]) for d in verdict.diff] == [("ball_vx", 1)]
    good = make_side()
    assert not check_alone(good, check_side(good)).diverged
    bare = make_side()
    bare.base = None
    with pytest.raises(DivergenceError, match="nothing to re-simulate"):
        check_alone(bare, check_side(bare))
