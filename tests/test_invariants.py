"""What every step must keep true, for any seed, inputs and (valid) rules."""

from hypothesis import given
from hypothesis import strategies as st

from lockstep.bots import make_bot
from lockstep.game import Game
from lockstep.inputs import pack
from lockstep.rules import Rules
from lockstep.state import FIELDS, winner
from tools.fuzz_properties import varied_rules

rules_strategy = varied_rules


def check(rules, prev, state):
    for name in FIELDS:
        assert type(getattr(state, name)) is int, name
    assert 0 <= state.paddle_l <= rules.field_h - rules.paddle_h
    assert 0 <= state.paddle_r <= rules.field_h - rules.paddle_h
    assert 0 <= state.ball_y <= rules.field_h - rules.ball_size
    assert -rules.ball_size < state.ball_x < rules.field_w
    assert state.score_l >= prev.score_l and state.score_r >= prev.score_r
    assert state.score_l + state.score_r - prev.score_l - prev.score_r <= 1
    assert abs(state.ball_vx) <= rules.ball_speed_max
    assert abs(state.ball_vy) <= rules.bounce_vy_max
    assert state.frame == prev.frame + 1
    assert state.over in (0, 1)
    if prev.over:
        assert state.over == 1
        assert {n: getattr(state, n) for n in FIELDS if n != "frame"} == {
            n: getattr(prev, n) for n in FIELDS if n != "frame"
        }, "a finished match must stay frozen"


@given(rules_strategy, st.integers(0, 2**64 - 1), st.lists(st.integers(0, 15), max_size=3000))
def test_invariants_hold_after_every_step(rules, seed, inputs):
    game = Game(rules, seed)
    for frame_input in inputs:
        prev = game.state.copy()
        game.advance(frame_input)
        check(rules, prev, game.state)
        state = game.state
        reached_points = max(state.score_l, state.score_r) >= rules.points_to_win
        reached_limit = rules.frame_limit and state.frame >= rules.frame_limit
        assert bool(state.over) == bool(reached_points or reached_limit)


@given(st.integers(1, 5000), st.integers(0, 2**32))
def test_match_ends_exactly_at_the_frame_limit(limit, seed):
    rules = Rules(frame_limit=limit, points_to_win=999)
    game = Game(rules, seed)
    for _ in range(limit - 1):
        game.advance(0)
    assert not game.state.over
    game.advance(0)
    assert game.state.over and game.state.frame == limit


def test_bots_play_a_full_match_to_a_winner():
    rules = Rules(points_to_win=5)
    game = Game(rules, 11)
    left, right = make_bot("tracker", rules, 0), make_bot("random", rules, 1, seed=4)
    while not game.state.over:
        game.advance(pack(left.decide(game.state), right.decide(game.state)))
        assert game.frame < 100_000, "a bot match must end"
    assert winner(game.state) in (0, 1)
    assert max(game.state.score()) == 5


def test_trackers_rally_and_still_score():
    """Two trackers keep long rallies (the speed-up reaches them) but the match still ends."""
    rules = Rules(points_to_win=3)
    game = Game(rules, 2)
    left, right = make_bot("tracker", rules, 0), make_bot("tracker", rules, 1)
    longest = 0
    while not game.state.over and game.frame < 200_000:
        game.advance(pack(left.decide(game.state), right.decide(game.state)))
        longest = max(longest, game.state.rally)
    assert game.state.over
    assert longest >= 3
