"""The game state: a fixed set of integer fields and nothing else.

Nothing outside these fields influences a step, so a copy of them is a complete save and their
encoding (see `codec`) is what the hash chain certifies.
"""

from __future__ import annotations

from dataclasses import dataclass

from lockstep import rng
from lockstep.rules import Rules

# Encoding order; `codec` and the desync diff rely on it.
FIELDS = (
    "frame",
    "paddle_l",  # top edge of the left paddle
    "paddle_r",
    "ball_x",  # left edge of the ball
    "ball_y",  # top edge of the ball
    "ball_vx",
    "ball_vy",
    "score_l",
    "score_r",
    "serve_timer",  # ticks until the next serve; the ball rests while > 0
    "rally",  # paddle hits in the current rally (drives the speed-up)
    "rng",
    "over",  # 0 while playing, 1 once the match has ended
)


@dataclass(slots=True)
class State:
    frame: int
    paddle_l: int
    paddle_r: int
    ball_x: int
    ball_y: int
    ball_vx: int
    ball_vy: int
    score_l: int
    score_r: int
    serve_timer: int
    rally: int
    rng: int
    over: int

    def copy(self) -> State:
        """An exact save: `step` may update a state in place, so callers keep copies."""
        # Spelled out: dataclasses.replace is several times slower, and the engine copies every frame.
        return State(
            self.frame,
            self.paddle_l,
            self.paddle_r,
            self.ball_x,
            self.ball_y,
            self.ball_vx,
            self.ball_vy,
            self.score_l,
            self.score_r,
            self.serve_timer,
            self.rally,
            self.rng,
            self.over,
        )

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in FIELDS}

    def score(self) -> tuple[int, int]:
        return self.score_l, self.score_r


def initial_state(rules: Rules, seed: int) -> State:
    """Frame 0: paddles centred, the ball resting in the middle, the first serve pending."""
    if seed < 0 or seed >= 1 << 64:
        raise ValueError("seed must be in 0 .. 2**64-1")
    paddle_y = (rules.field_h - rules.paddle_h) // 2
    return State(
        frame=0,
        paddle_l=paddle_y,
        paddle_r=paddle_y,
        ball_x=(rules.field_w - rules.ball_size) // 2,
        ball_y=(rules.field_h - rules.ball_size) // 2,
        ball_vx=0,
        ball_vy=0,
        score_l=0,
        score_r=0,
        serve_timer=max(rules.serve_delay_frames, 1),
        rally=0,
        rng=rng.seed_state(seed),
        over=0,
    )


def winner(state: State) -> int | None:
    """0 left, 1 right, None while playing or on a draw (frame limit with equal scores)."""
    if not state.over or state.score_l == state.score_r:
        return None
    return 0 if state.score_l > state.score_r else 1
