import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockstep.codec import STATE_SIZE, StateCodecError, decode, encode
from lockstep.game import Game
from lockstep.rules import Rules
from lockstep.script import random_inputs
from lockstep.state import FIELDS, State

i64 = st.integers(-(1 << 63), (1 << 63) - 1)
states = st.builds(
    State,
    *[
        st.integers(0, (1 << 64) - 1) if f == "rng" else st.integers(0, 1) if f == "over" else i64
        for f in FIELDS
    ],
)


@given(states)
def test_decode_inverts_encode(state):
    data = encode(state)
    assert len(data) == STATE_SIZE
    assert decode(data) == state


@given(st.integers(0, 2**64 - 1), st.integers(0, 3000))
def test_round_trip_of_played_states(seed, frames):
    game = Game(Rules(), seed)
    game.run(random_inputs(seed, frames))
    assert decode(encode(game.state)) == game.state


@given(st.binary().filter(lambda b: len(b) != STATE_SIZE))
def test_decode_rejects_wrong_length(data):
    with pytest.raises(StateCodecError, match="bytes"):
        decode(data)


def test_decode_rejects_bad_over_flag():
    state = Game(Rules(), 1).state
    state.over = 7
    with pytest.raises(StateCodecError, match="over"):
        decode(encode(state))


@pytest.mark.parametrize("field, value", [("score_l", 1 << 63), ("rng", -1), ("frame", -(1 << 64))])
def test_encode_refuses_out_of_range_instead_of_wrapping(field, value):
    state = Game(Rules(), 1).state
    setattr(state, field, value)
    with pytest.raises(StateCodecError, match="out of range"):
        encode(state)


@given(states)
def test_copy_is_an_equal_independent_state(state):
    copy = state.copy()
    assert copy == state and copy is not state
    assert encode(copy) == encode(state)
    copy.frame += 1
    assert copy != state
