"""Bots: players that read only the local simulation state, so both peers may run them freely.

A bot returns one player's 2-bit input for the next frame. Bots are deterministic (the random bot
has its own seeded generator, separate from the game's), which makes bot matches reproducible.
"""

from __future__ import annotations

from lockstep import rng
from lockstep.inputs import DOWN, NEUTRAL, UP
from lockstep.rules import Rules
from lockstep.state import State

BOT_NAMES = ("tracker", "random")


class Bot:
    def __init__(self, rules: Rules, side: int) -> None:
        self.rules = rules
        self.side = side  # 0 left, 1 right

    def decide(self, state: State) -> int:
        raise NotImplementedError


class TrackerBot(Bot):
    """Follows the ball once it comes into its half, otherwise drifts back to the centre.

    A dead zone and a late reaction make it beatable: a steep bounce outruns the paddle.
    """

    def decide(self, state: State) -> int:
        r = self.rules
        paddle = state.paddle_l if self.side == 0 else state.paddle_r
        centre = paddle + r.paddle_h // 2
        coming = state.ball_vx < 0 if self.side == 0 else state.ball_vx > 0
        ball_dx = state.ball_x if self.side == 0 else r.field_w - state.ball_x
        target = state.ball_y + r.ball_size // 2 if coming and ball_dx < r.field_w // 2 else r.field_h // 2
        dead_zone = r.paddle_h // 4
        if target < centre - dead_zone:
            return UP
        if target > centre + dead_zone:
            return DOWN
        return NEUTRAL


class RandomBot(Bot):
    """Holds a random direction for a random number of frames; seeded, so reproducible."""

    def __init__(self, rules: Rules, side: int, seed: int = 0) -> None:
        super().__init__(rules, side)
        self._rng = rng.seed_state(seed * 2 + side)
        self._held = NEUTRAL
        self._left = 0

    def decide(self, state: State) -> int:
        if self._left == 0:
            self._rng = rng.next_state(self._rng)
            bits = rng.output(self._rng)
            self._held = (NEUTRAL, UP, DOWN, NEUTRAL)[bits & 3]
            self._left = 1 + (bits >> 2) % 30
        self._left -= 1
        return self._held


def make_bot(name: str, rules: Rules, side: int, seed: int = 0) -> Bot:
    if name == "tracker":
        return TrackerBot(rules, side)
    if name == "random":
        return RandomBot(rules, side, seed)
    raise ValueError(f"unknown bot {name!r}; choose one of: {', '.join(BOT_NAMES)}")
