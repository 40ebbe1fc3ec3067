"""Swept contact: whatever the speed, a ball whose path crosses a paddle face on the paddle is returned."""

from hypothesis import given
from hypothesis import strategies as st

from lockstep.rules import UNIT, Rules
from lockstep.sim import step
from lockstep.state import initial_state

RULES = Rules(ball_speed_max=150 * UNIT)  # far faster than any paddle is thick


@given(st.data())
def test_ball_crossing_a_paddle_face_on_the_paddle_is_returned(data):
    r = RULES
    side = data.draw(st.sampled_from([0, 1]), label="side")
    speed = data.draw(st.integers(1, r.ball_speed_max), label="speed")
    vy = data.draw(st.integers(-r.bounce_vy_max, r.bounce_vy_max), label="vy")
    paddle = data.draw(st.integers(0, r.field_h - r.paddle_h), label="paddle")
    y_max = r.field_h - r.ball_size
    if side == 0:
        face = r.paddle_margin + r.paddle_w
        # Start anywhere from touching the face to one full step away from it.
        x0 = face + data.draw(st.integers(0, speed - 1), label="gap")
        vx = -speed
        crossing_steps_num, crossing_steps_den = x0 - face, speed
    else:
        face = r.field_w - r.paddle_margin - r.paddle_w
        x0 = face - r.ball_size - data.draw(st.integers(0, speed - 1), label="gap")
        vx = speed
        crossing_steps_num, crossing_steps_den = face - (x0 + r.ball_size), speed
    # Choose y so that at the moment of crossing the ball overlaps the paddle, on a straight path.
    yc = data.draw(
        st.integers(max(0, paddle - r.ball_size + 1), min(y_max, paddle + r.paddle_h - 1)), label="yc"
    )
    y0 = yc - vy * crossing_steps_num // crossing_steps_den
    if not 0 <= y0 <= y_max or not 0 <= y0 + vy <= y_max:
        return  # that path would meet a wall within the tick: outside this straight-path property
    s = initial_state(r, 0)
    s.serve_timer = 0
    s.ball_x, s.ball_y, s.ball_vx, s.ball_vy = x0, y0, vx, vy
    s.paddle_l = s.paddle_r = paddle
    step(s, r, 0)
    assert s.score_l == 0 and s.score_r == 0
    assert (s.ball_vx > 0) if side == 0 else (s.ball_vx < 0), "the ball must come back"
    assert s.rally == 1
    if side == 0:
        assert s.ball_x >= face
    else:
        assert s.ball_x + r.ball_size <= face


@given(st.integers(0, 480 * UNIT - 64 * UNIT), st.integers(1, 150 * UNIT))
def test_ball_missing_the_paddle_scores(paddle, speed):
    r = RULES
    s = initial_state(r, 0)
    s.serve_timer = 0
    s.paddle_l = paddle
    # Aim well clear of the paddle, straight at the left wall.
    s.ball_y = paddle + r.paddle_h + r.ball_size if paddle < r.field_h // 2 else paddle - 2 * r.ball_size
    s.ball_x = r.paddle_margin + r.paddle_w + 1
    s.ball_vx, s.ball_vy = -speed, 0
    for _ in range(2 + (r.field_w // speed)):
        step(s, r, 0)
        if s.score_r:
            break
    assert s.score_r == 1


def test_bounce_angle_depends_on_where_the_ball_hits():
    r = Rules()
    angles = []
    for offset in (-r.ball_size + UNIT, r.paddle_h // 2 - r.ball_size // 2, r.paddle_h - UNIT):
        s = initial_state(r, 0)
        s.serve_timer = 0
        face = r.paddle_margin + r.paddle_w
        s.ball_x, s.ball_vx, s.ball_vy = face + 2 * UNIT, -4 * UNIT, 0
        s.ball_y = s.paddle_l + offset
        step(s, r, 0)
        angles.append(s.ball_vy)
    assert angles[0] < 0 == angles[1] < angles[2], angles


def test_walls_reflect_exactly():
    r = Rules()
    s = initial_state(r, 0)
    s.serve_timer = 0
    s.ball_y, s.ball_vy, s.ball_vx = 3 * UNIT, -5 * UNIT, 0
    step(s, r, 0)
    assert (s.ball_y, s.ball_vy) == (2 * UNIT, 5 * UNIT)
    bottom = r.field_h - r.ball_size
    s.ball_y, s.ball_vy = bottom - UNIT, 3 * UNIT
    step(s, r, 0)
    assert (s.ball_y, s.ball_vy) == (bottom - 2 * UNIT, -3 * UNIT)


def test_rally_speeds_up_to_the_cap():
    r = Rules()
    s = initial_state(r, 0)
    speeds = []
    for _ in range(200):
        s.serve_timer = 0
        face = r.paddle_margin + r.paddle_w
        s.ball_x, s.ball_vx, s.ball_vy = face + UNIT, -2 * UNIT, 0
        s.ball_y = s.paddle_l + r.paddle_h // 2
        step(s, r, 0)
        speeds.append(s.ball_vx)
    assert speeds == sorted(speeds)
    assert speeds[0] == r.ball_speed_start + r.ball_speed_step
    assert speeds[-1] == r.ball_speed_max
