"""One tick of Pong: `step(state, rules, frame_input)`, integers only, updating the state in place.

Order within a tick: paddles move, then the ball (walls reflect it exactly, the paddle faces are
swept so no speed can tunnel through them), then scoring and serving, then the end of the match.

A finished match is frozen: `step` only counts the frame, nothing else changes. Sessions stop at
the end anyway; freezing keeps `state.frame` equal to the number of steps taken in every case.
"""

from __future__ import annotations

from lockstep import rng as _rng
from lockstep.rules import Rules
from lockstep.state import State


def _fold(y: int, y_max: int) -> int:
    """Reflect a vertical position off the walls at 0 and `y_max` (one reflection suffices)."""
    if y < 0:
        return -y
    if y > y_max:
        return 2 * y_max - y
    return y


def bounce_vy(rules: Rules, ball_y: int, paddle_y: int) -> int:
    """Vertical speed after a paddle hit: proportional to how far off-centre the ball met it."""
    offset = (2 * ball_y + rules.ball_size) - (2 * paddle_y + rules.paddle_h)
    reach = rules.paddle_h + rules.ball_size  # |offset| at the very ends of the paddle
    vy = offset * rules.bounce_vy_max // reach
    return max(-rules.bounce_vy_max, min(rules.bounce_vy_max, vy))


def step(s: State, rules: Rules, frame_input: int) -> None:
    """Advance `s` by one tick with both players' inputs packed as in `lockstep.inputs`."""
    s.frame += 1
    if s.over:
        return

    # Paddles: bit 0 up, bit 1 down; both cancel out.
    speed = rules.paddle_speed
    top = rules.field_h - rules.paddle_h
    move = ((frame_input >> 1) & 1) - (frame_input & 1)
    if move:
        y = s.paddle_l + move * speed
        s.paddle_l = 0 if y < 0 else top if y > top else y
    move = ((frame_input >> 3) & 1) - ((frame_input >> 2) & 1)
    if move:
        y = s.paddle_r + move * speed
        s.paddle_r = 0 if y < 0 else top if y > top else y

    if s.serve_timer:
        s.serve_timer -= 1
        if not s.serve_timer:
            _serve(s, rules)
    else:
        _move_ball(s, rules)

    if rules.frame_limit and s.frame >= rules.frame_limit:
        s.over = 1


def _serve(s: State, rules: Rules) -> None:
    s.rng = _rng.next_state(s.rng)
    bits = _rng.output(s.rng)
    span = 2 * rules.serve_vy_max + 1
    s.ball_vx = rules.ball_speed_start if bits & 1 else -rules.ball_speed_start
    s.ball_vy = ((bits >> 1) % span) - rules.serve_vy_max
    s.rally = 0


def _move_ball(s: State, rules: Rules) -> None:
    x0 = s.ball_x
    y0 = s.ball_y
    vx = s.ball_vx
    vy = s.ball_vy
    size = rules.ball_size
    y_max = rules.field_h - size
    x1 = x0 + vx
    y1 = y0 + vy
    if y1 < 0:
        y1 = -y1
        vy = -vy
    elif y1 > y_max:
        y1 = 2 * y_max - y1
        vy = -vy

    if vx < 0:
        face = rules.paddle_margin + rules.paddle_w
        # Swept contact: the ball's leading edge crosses the face during this tick.
        if x0 >= face > x1:
            yc = _fold(y0 + s.ball_vy * (x0 - face) // (x0 - x1), y_max)
            paddle = s.paddle_l
            if yc + size > paddle and yc < paddle + rules.paddle_h:
                s.rally += 1
                vx = min(rules.ball_speed_start + s.rally * rules.ball_speed_step, rules.ball_speed_max)
                x1 = 2 * face - x1
                vy = bounce_vy(rules, yc, paddle)
    elif vx > 0:
        face = rules.field_w - rules.paddle_margin - rules.paddle_w
        lead0 = x0 + size
        lead1 = x1 + size
        if lead0 <= face < lead1:
            yc = _fold(y0 + s.ball_vy * (face - lead0) // (lead1 - lead0), y_max)
            paddle = s.paddle_r
            if yc + size > paddle and yc < paddle + rules.paddle_h:
                s.rally += 1
                vx = -min(rules.ball_speed_start + s.rally * rules.ball_speed_step, rules.ball_speed_max)
                x1 = 2 * face - lead1 - size
                vy = bounce_vy(rules, yc, paddle)

    if x1 + size <= 0:
        _point(s, rules, right_scored=True)
    elif x1 >= rules.field_w:
        _point(s, rules, right_scored=False)
    else:
        s.ball_x = x1
        s.ball_y = y1
        s.ball_vx = vx
        s.ball_vy = vy


def _point(s: State, rules: Rules, right_scored: bool) -> None:
    if right_scored:
        s.score_r += 1
    else:
        s.score_l += 1
    s.ball_x = (rules.field_w - rules.ball_size) // 2
    s.ball_y = (rules.field_h - rules.ball_size) // 2
    s.ball_vx = 0
    s.ball_vy = 0
    s.rally = 0
    if s.score_l >= rules.points_to_win or s.score_r >= rules.points_to_win:
        s.over = 1
        s.serve_timer = 0
    else:
        s.serve_timer = max(rules.serve_delay_frames, 1)
