"""Saving is exact: restore at any frame and continue gives the uninterrupted chain (synctest)."""

from hypothesis import given
from hypothesis import strategies as st

from lockstep.game import Game
from lockstep.rules import Rules
from lockstep.script import random_inputs
from lockstep.synctest import run_synctest

RULES = Rules(points_to_win=999)


@given(st.integers(0, 2**32), st.integers(1, 3000), st.data())
def test_restore_at_any_frame_then_continue_gives_the_same_chain(seed, frames, data):
    inputs = random_inputs(seed, frames)
    save_at = data.draw(st.integers(0, frames))
    straight = Game(RULES, seed)
    straight.run(inputs)

    game = Game(RULES, seed)
    game.run(inputs[:save_at])
    snapshot = game.save()
    game.run(inputs[save_at:])  # mutate past the snapshot: the snapshot must not change
    other = Game(RULES, seed + 1)
    other.restore(snapshot)
    other.run(inputs[save_at:])
    assert other.chain == straight.chain == game.chain
    assert other.state == straight.state


@given(st.integers(0, 2**32), st.integers(1, 12))
def test_synctest_passes_for_any_check_distance(seed, distance):
    result = run_synctest(lambda: Game(RULES, seed), random_inputs(seed, 600), distance)
    assert result.ok and result.first_bad_frame is None
    assert result.final_chain == Game(RULES, seed).run(random_inputs(seed, 600))


def test_synctest_names_the_first_frame_a_leaky_restore_breaks(monkeypatch):
    """A restore that forgets one field (here the RNG) must be caught, at the right frame."""
    original = Game.restore

    def leaky_restore(self, snapshot):
        rng = self.state.rng
        original(self, snapshot)
        self.state.rng = rng ^ 1

    monkeypatch.setattr(Game, "restore", leaky_restore)
    result = run_synctest(lambda: Game(RULES, 3), random_inputs(3, 400), 4)
    assert not result.ok
    # Rollbacks start at frame 1 (back to the start while fewer than 4 frames exist), and the rng
    # is part of the hashed state.
    assert result.first_bad_frame == 1
